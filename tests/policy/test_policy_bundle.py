"""compile_bundle: every .rego plus the register, and a digest naming exactly that policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigurationError
from gateway.policy import ENTRYPOINT, compile_bundle, policy_digest
from tests.policy.policy_support import POLICIES, copy_policies


def test_the_real_policies_compile() -> None:
    bundle = compile_bundle(POLICIES)
    assert bundle.entrypoint == ENTRYPOINT == "doelpoort/disclosure/decision"
    assert {name for name, _ in bundle.modules} >= {
        "doelpoort/disclosure.rego",
        "doelpoort/deny.rego",
    }
    assert bundle.compile()[1].ok()
    assert "ct-assessment" in bundle.data["register"]["purposes"]
    assert bundle.digest.startswith("sha256:")
    assert len(bundle.digest) == len("sha256:") + 64


def test_digest_is_stable_and_independent_of_location(tmp_path: Path) -> None:
    assert compile_bundle(POLICIES).digest == compile_bundle(POLICIES).digest
    assert compile_bundle(copy_policies(tmp_path)).digest == compile_bundle(POLICIES).digest


def test_digest_ignores_files_that_are_not_policy(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies).digest
    (policies / "README.md").write_text("notes\n", encoding="utf-8")
    (policies / "doelpoort" / "draft.rego.bak").write_text("x", encoding="utf-8")
    assert compile_bundle(policies).digest == before


def test_rego_tests_are_neither_served_nor_under_the_digest(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    for test in policies.rglob("*_test.rego"):
        test.unlink()
    before = compile_bundle(policies)
    # Even a test that would not compile: it is never part of the bundle.
    (policies / "doelpoort" / "extra_test.rego").write_text("package x\ntest_ if {", "utf-8")
    after = compile_bundle(policies)
    assert after.digest == before.digest
    assert after.modules == before.modules
    assert not any(name.endswith("_test.rego") for name, _ in after.sources)


def test_digest_changes_with_any_rego_change(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies).digest
    deny = policies / "doelpoort" / "deny.rego"
    deny.write_text(deny.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
    after_edit = compile_bundle(policies).digest
    assert after_edit != before
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.extra\n\nx := 1\n", encoding="utf-8"
    )
    assert compile_bundle(policies).digest not in (before, after_edit)


def test_digest_changes_with_a_register_change(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies).digest
    register = policies / "register.yaml"
    text = register.read_text(encoding="utf-8")
    register.write_text(text.replace("retention_days: 365", "retention_days: 366"), "utf-8")
    assert compile_bundle(policies).digest != before


def test_digest_encoding_is_unambiguous() -> None:
    # Moving bytes between a path and its content, or between files, changes the digest.
    assert policy_digest([("a", "bc")]) != policy_digest([("ab", "c")])
    assert policy_digest([("a", "b"), ("c", "d")]) != policy_digest([("a", "bcd")])
    assert policy_digest([("b", "2"), ("a", "1")]) == policy_digest([("a", "1"), ("b", "2")])


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    (policies / "doelpoort" / "broken.rego").write_text(
        "package doelpoort.disclosure\n\nimport rego.v1\n\nbroken if {\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match=r"doelpoort/broken\.rego:5:\d+"):
        compile_bundle(policies)


def test_no_rego_at_all_is_a_configuration_error(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "register.yaml").write_text("purposes: {}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"no \.rego"):
        compile_bundle(policies)


def test_a_missing_register_is_a_configuration_error(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    (policies / "register.yaml").unlink()
    with pytest.raises(ConfigurationError, match="register"):
        compile_bundle(policies)


def test_an_invalid_register_is_a_configuration_error(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    register = policies / "register.yaml"
    text = register.read_text(encoding="utf-8")
    register.write_text(text.replace("excluded_domains:", "excluded_domain:"), "utf-8")
    with pytest.raises(ConfigurationError, match="excluded_domain"):
        compile_bundle(policies)
