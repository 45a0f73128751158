"""compile_bundle: the policy Rego, the register and the catalog's policy document, and a
digest naming exactly that policy set."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.canonical import canonical_json
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy import ENTRYPOINT, compile_bundle, policy_digest
from gateway.policy.bundle import read_policy_set
from tests.policy.policy_support import CONNECTORS, POLICIES, copy_policies, demo_catalog

Partner = dict[str, Any]


def catalog_with(tmp_path: Path, partner: str, edit: Callable[[Partner], object]) -> Catalog:
    """The demo catalog with ``edit`` applied to ``connectors/<partner>.yaml``."""
    connectors = tmp_path / "connectors"
    if not connectors.exists():
        shutil.copytree(CONNECTORS, connectors)
    path = connectors / f"{partner}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return Catalog.load(connectors, tmp_path / "var")


def residence(partner: Partner) -> dict[str, Any]:
    dataset: dict[str, Any] = partner["datasets"]["residence"]
    return dataset


def test_the_real_policies_compile() -> None:
    bundle = compile_bundle(POLICIES, demo_catalog())
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
    assert (
        compile_bundle(POLICIES, demo_catalog()).digest
        == compile_bundle(POLICIES, demo_catalog()).digest
    )
    assert (
        compile_bundle(copy_policies(tmp_path), demo_catalog()).digest
        == compile_bundle(POLICIES, demo_catalog()).digest
    )


def test_digest_ignores_files_that_are_not_policy(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies, demo_catalog()).digest
    (policies / "README.md").write_text("notes\n", encoding="utf-8")
    (policies / "doelpoort" / "draft.rego.bak").write_text("x", encoding="utf-8")
    assert compile_bundle(policies, demo_catalog()).digest == before


def test_rego_tests_are_neither_served_nor_under_the_digest(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    for test in policies.rglob("*_test.rego"):
        test.unlink()
    before = compile_bundle(policies, demo_catalog())
    # Even a test that would not compile: it is never part of the bundle.
    (policies / "doelpoort" / "extra_test.rego").write_text("package x\ntest_ if {", "utf-8")
    after = compile_bundle(policies, demo_catalog())
    assert after.digest == before.digest
    assert after.modules == before.modules
    assert not any(name.endswith("_test.rego") for name, _ in after.sources)


def test_digest_changes_with_any_rego_change(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies, demo_catalog()).digest
    deny = policies / "doelpoort" / "deny.rego"
    deny.write_text(deny.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
    after_edit = compile_bundle(policies, demo_catalog()).digest
    assert after_edit != before
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.extra\n\nx := 1\n", encoding="utf-8"
    )
    assert compile_bundle(policies, demo_catalog()).digest not in (before, after_edit)


def test_digest_changes_with_a_register_change(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies, demo_catalog()).digest
    register = policies / "register.yaml"
    text = register.read_text(encoding="utf-8")
    register.write_text(text.replace("retention_days: 365", "retention_days: 366"), "utf-8")
    assert compile_bundle(policies, demo_catalog()).digest != before


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
        compile_bundle(policies, demo_catalog())


def test_no_rego_at_all_is_a_configuration_error(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "register.yaml").write_text("purposes: {}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"no \.rego"):
        compile_bundle(policies, demo_catalog())


def test_a_missing_register_is_a_configuration_error(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    (policies / "register.yaml").unlink()
    with pytest.raises(ConfigurationError, match="register"):
        compile_bundle(policies, demo_catalog())


def test_an_invalid_register_is_a_configuration_error(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    register = policies / "register.yaml"
    text = register.read_text(encoding="utf-8")
    register.write_text(text.replace("excluded_domains:", "excluded_domain:"), "utf-8")
    with pytest.raises(ConfigurationError, match="excluded_domain"):
        compile_bundle(policies, demo_catalog())


def test_the_sources_are_the_policy_rego_the_register_and_the_catalog_document() -> None:
    bundle = compile_bundle(POLICIES, demo_catalog())
    paths = [path for path, _ in bundle.sources]
    assert paths == sorted(paths)
    assert set(paths) == {
        "doelpoort/deny.rego",
        "doelpoort/disclosure.rego",
        "register.yaml",
        "catalog.json",
    }
    sources = dict(bundle.sources)
    assert sources["register.yaml"] == (POLICIES / "register.yaml").read_text(encoding="utf-8")
    assert sources["catalog.json"].encode() == canonical_json(demo_catalog().policy_document())
    assert bundle.digest == policy_digest(bundle.sources)
    assert bundle.sources == read_policy_set(POLICIES, demo_catalog())
    assert dict(bundle.modules) == {p: c for p, c in bundle.sources if p.endswith(".rego")}


def test_the_catalog_document_holds_what_policies_read_and_nothing_of_the_connectors() -> None:
    document = json.loads(dict(compile_bundle(POLICIES, demo_catalog()).sources)["catalog.json"])
    assert document["partners"]["ind"] == {"roles": ["ct-infobox", "laov"]}
    assert document["partners"]["voorbeeldbank"] == {"roles": ["fec-obliged-entity"]}
    assert document["datasets"]["ind/residence"] == {
        "id": "ind/residence",
        "provider": "ind",
        "domain": "immigration",
        "fields": {
            "v_number": {"type": "string", "category": "identifier"},
            "bsn": {"type": "string", "category": "identifier"},
            "name": {"type": "string", "category": "identity"},
            "date_of_birth": {"type": "date", "category": "identity"},
            "nationality": {"type": "string", "category": "identity"},
            "address": {"type": "address", "category": "address"},
            "residence_status": {"type": "string", "category": "immigration"},
            "lawful_residence": {"type": "boolean", "category": "immigration"},
            "status_since": {"type": "date", "category": "immigration"},
        },
        "identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
        "facts": {"no_lawful_residence": {"field": "lawful_residence", "true_if": [False]}},
    }
    vocabulary = document["vocabulary"]
    assert "immigration" in vocabulary["domains"]
    assert vocabulary["categories"]["criminal"] == {"sensitive": True}
    assert vocabulary["categories"]["travel"] == {"sensitive": False}
    text = json.dumps(document)
    for absent in ("connector", "demo/", ".jsonl", "certificates", "description"):
        assert absent not in text


@pytest.mark.parametrize(
    ("partner", "edit"),
    [
        # The bank granted the police's role: it could receive police data.
        ("voorbeeldbank", lambda p: p["roles"].append("police")),
        ("ind", lambda p: residence(p)["fields"]["nationality"].update(category="identifier")),
        ("ind", lambda p: residence(p)["fields"]["status_since"].update(type="string")),
        ("ind", lambda p: residence(p).update(domain="police")),
        ("ind", lambda p: residence(p)["identity_keys"].pop()),
        ("ind", lambda p: residence(p)["fields"].pop("address")),
        # Eligibility for vertrek would follow another value.
        ("ind", lambda p: residence(p)["facts"]["no_lawful_residence"].update(true_if=[True])),
    ],
    ids=["role", "category", "type", "domain", "identity-key", "field", "fact"],
)
def test_what_policies_read_from_the_catalog_changes_the_digest(
    tmp_path: Path, partner: str, edit: Callable[[Partner], object]
) -> None:
    before = compile_bundle(POLICIES, demo_catalog()).digest
    assert compile_bundle(POLICIES, catalog_with(tmp_path, partner, edit)).digest != before


def _http(partner: Partner, url: str) -> None:
    residence(partner)["connector"] = {"kind": "http", "url": url}


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: residence(p).update(connector={"kind": "file", "path": "elsewhere.jsonl"}),
        lambda p: residence(p).update(description="described otherwise"),
        lambda p: p.update(name="another name"),
        lambda p: p.update(certificates=[{"sha256": "ab" * 32}]),
    ],
    ids=["path", "description", "name", "pinned-certificate"],
)
def test_what_policies_do_not_read_leaves_the_digest_alone(
    tmp_path: Path, edit: Callable[[Partner], object]
) -> None:
    before = compile_bundle(POLICIES, demo_catalog()).digest
    assert compile_bundle(POLICIES, catalog_with(tmp_path, "ind", edit)).digest == before


def test_a_connector_url_leaves_the_digest_alone(tmp_path: Path) -> None:
    one = catalog_with(tmp_path, "ind", lambda p: _http(p, "https://ind.example/residence"))
    other = catalog_with(tmp_path, "ind", lambda p: _http(p, "https://other.example/v2"))
    assert compile_bundle(POLICIES, one).digest == compile_bundle(POLICIES, other).digest


def test_rego_tests_are_neither_compiled_nor_covered(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    before = compile_bundle(policies, demo_catalog())
    # Not even valid Rego: a test file never stops the policy from compiling.
    (policies / "doelpoort" / "disclosure_test.rego").write_text(
        "package doelpoort.disclosure_test\n\ntest_broken if {\n", encoding="utf-8"
    )
    after = compile_bundle(policies, demo_catalog())
    assert after.digest == before.digest
    assert after.sources == before.sources
    assert after.modules == before.modules
