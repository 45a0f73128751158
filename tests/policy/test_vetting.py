"""Vetting a candidate policy set (gateway/policy/vetting.py) and where candidates come
from (gateway/policy/sources.py): with the real policies, the real catalog and regopy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from audit.clock import utc_now
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy.bundle import PolicyBundle, compile_bundle
from gateway.policy.engine import EmbeddedEngine, PolicyEngine
from gateway.policy.opa_bundle import generate_signing_key, write_bundle
from gateway.policy.sources import (
    BundleSource,
    Candidate,
    DirectorySource,
    policy_source,
)
from gateway.policy.vetting import (
    VETTING_STEPS,
    Refused,
    Step,
    Unchanged,
    Vetted,
    Vetting,
    policy_check,
    rego_tests_step,
    vet,
)
from gateway.settings import PROJECT_ROOT, Settings
from tests.gateway_support import copy_tree
from tests.policy.policy_support import demo_catalog

UNKNOWN_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog.load(PROJECT_ROOT / "connectors", tmp_path_factory.mktemp("var"))


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return copy_tree("policies", tmp_path)


def run_vet(
    directory: Path,
    catalog: Catalog,
    *,
    kind: str = "directory",
    revision: str | None = None,
    pinned: str | None = None,
    serving: str | None = None,
    steps: Sequence[Step] = VETTING_STEPS,
) -> Vetted | Refused | Unchanged:
    """Vet ``directory``; a vetted engine is checked to decide, then closed."""

    async def embedded(bundle: PolicyBundle) -> PolicyEngine:
        return EmbeddedEngine(bundle)

    async def run() -> Vetted | Refused | Unchanged:
        result = await vet(
            Candidate(kind, directory, revision=revision),  # type: ignore[arg-type]
            catalog,
            new_engine=embedded,
            clock=utc_now,
            pinned=pinned,
            serving=serving,
            steps=steps,
        )
        if isinstance(result, Vetted):
            assert result.engine.ready()
            await result.engine.aclose()
        return result

    return asyncio.run(run())


def edit_register(policies: Path, edit: object) -> None:
    path = policies / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(register)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")


def test_the_shipped_policies_pass(catalog: Catalog) -> None:
    result = run_vet(PROJECT_ROOT / "policies", catalog)
    assert isinstance(result, Vetted)
    assert result.bundle.digest == compile_bundle(PROJECT_ROOT / "policies", demo_catalog()).digest


def test_a_syntax_error_is_refused_naming_file_and_line(policies: Path, catalog: Catalog) -> None:
    rego = policies / "doelpoort" / "deny.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\ndeny contains if {\n", encoding="utf-8")
    result = run_vet(policies, catalog)
    assert isinstance(result, Refused)
    assert result.digest is None  # it never compiled into a policy set
    assert any(r.startswith("doelpoort/deny.rego:") for r in result.reasons), result.reasons


def test_a_register_naming_an_unknown_dataset_is_refused(policies: Path, catalog: Catalog) -> None:
    edit_register(
        policies,
        lambda r: r["purposes"]["vertrek"]["datasets"].update(
            {"dji/detentoin": {"field_ops": {"name": "keep"}}}
        ),
    )
    result = run_vet(policies, catalog)
    assert isinstance(result, Refused)
    assert result.digest == compile_bundle(policies, demo_catalog()).digest
    assert result.reasons == (
        f"{policies / 'register.yaml'}: purpose vertrek, dataset dji/detentoin: the connector "
        "catalog has no such dataset",
    )


def test_a_policy_with_a_check_finding_is_refused(policies: Path, catalog: Catalog) -> None:
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.disclosure\n\nimport rego.v1\n\n"
        'deny contains sprintff("%s", [input.purpose]) if true\n',
        encoding="utf-8",
    )
    result = run_vet(policies, catalog)
    assert isinstance(result, Refused)
    assert any(
        reason.startswith("doelpoort/extra.rego:5:") and "sprintff" in reason
        for reason in result.reasons
    ), result.reasons


def test_a_policy_whose_probe_fails_is_refused(policies: Path, catalog: Catalog) -> None:
    # Sound to the static check; fails only when evaluated (a division by zero).
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.disclosure\n\nimport rego.v1\n\n"
        "zero := count(input.subject_keys) - count(input.subject_keys)\n\n"
        'deny contains sprintf("%d", [1 / zero]) if true\n',
        encoding="utf-8",
    )
    result = run_vet(policies, catalog)
    assert isinstance(result, Refused)
    (reason,) = result.reasons
    assert reason.startswith("the policy gives no valid decision for a probe input")


def test_a_pinned_digest_refuses_every_other_set(policies: Path, catalog: Catalog) -> None:
    digest = compile_bundle(policies, demo_catalog()).digest
    assert isinstance(run_vet(policies, catalog, pinned=digest), Vetted)
    refused = run_vet(policies, catalog, pinned=UNKNOWN_DIGEST)
    assert isinstance(refused, Refused)
    assert refused.digest == digest
    assert refused.reasons == (
        f"its digest {digest} is not the pinned {UNKNOWN_DIGEST} (DOELPOORT_POLICY_DIGEST)",
    )


def test_a_bundle_whose_files_are_not_its_manifests_revision_is_refused(
    policies: Path, catalog: Catalog
) -> None:
    digest = compile_bundle(policies, demo_catalog()).digest
    assert isinstance(run_vet(policies, catalog, kind="bundle", revision=digest), Vetted)
    refused = run_vet(policies, catalog, kind="bundle", revision=UNKNOWN_DIGEST)
    assert isinstance(refused, Refused)
    assert "manifest names revision " + UNKNOWN_DIGEST in refused.reasons[0]


def test_the_serving_set_is_unchanged_and_not_vetted_again(
    policies: Path, catalog: Catalog
) -> None:
    digest = compile_bundle(policies, demo_catalog()).digest
    assert run_vet(policies, catalog, serving=digest) == Unchanged(digest)


def test_a_step_that_breaks_refuses_the_set(policies: Path, catalog: Catalog) -> None:
    def broken(vetting: Vetting) -> list[str]:
        raise KeyError("a value the step read")

    result = run_vet(policies, catalog, steps=[*VETTING_STEPS, broken])
    assert isinstance(result, Refused)
    assert result.reasons == ("vetting step broken failed (KeyError)",)


def test_the_first_refusing_step_stops_vetting(policies: Path, catalog: Catalog) -> None:
    ran: list[str] = []

    def first(vetting: Vetting) -> list[str]:
        ran.append("first")
        return ["no"]

    def second(vetting: Vetting) -> list[str]:
        ran.append("second")
        return []

    assert isinstance(run_vet(policies, catalog, steps=[first, second]), Refused)
    assert ran == ["first"]


def test_reasons_are_bounded(policies: Path, catalog: Catalog) -> None:
    result = run_vet(policies, catalog, steps=[lambda _v: ["x" * 2000] * 50])
    assert isinstance(result, Refused)
    assert len(result.reasons) == 21
    assert all(len(r) <= 500 for r in result.reasons)


# -- the adapters the checker and the test runner plug in with -------------------------


@dataclass(frozen=True)
class Report:
    ok: bool
    failed: list[str]
    errors: int


def test_policy_checks_findings_are_the_reasons(policies: Path, catalog: Catalog) -> None:
    text = (policies / "doelpoort" / "deny.rego").read_text(encoding="utf-8")
    (policies / "doelpoort" / "deny.rego").write_text(
        text.replace("not role_granted", "not role_grantd", 1), encoding="utf-8"
    )
    result = run_vet(policies, catalog, steps=[policy_check])
    assert isinstance(result, Refused)
    assert any("role_grantd is not defined" in reason for reason in result.reasons)
    assert isinstance(
        run_vet(copy_tree("policies", policies.parent / "clean"), catalog, steps=[policy_check]),
        Vetted,
    )


def test_failing_rego_tests_refuse_a_directory_but_a_bundle_carries_none(
    policies: Path, catalog: Catalog
) -> None:
    failing = rego_tests_step(lambda _directory: Report(False, ["test_a", "test_b"], 1))
    result = run_vet(policies, catalog, steps=[failing])
    assert isinstance(result, Refused)
    assert result.reasons[0].startswith("its Rego tests do not pass: 2 failed, 1 errors")
    digest = compile_bundle(policies, demo_catalog()).digest
    assert isinstance(
        run_vet(policies, catalog, kind="bundle", revision=digest, steps=[failing]), Vetted
    )
    passing = rego_tests_step(lambda _directory: Report(True, [], 0))
    assert isinstance(run_vet(policies, catalog, steps=[passing]), Vetted)


# -- sources ---------------------------------------------------------------------------


def test_a_directorys_fingerprint_changes_with_its_files(policies: Path) -> None:
    source = DirectorySource(policies)
    before = source.fingerprint()
    assert before == source.fingerprint()
    rego = policies / "doelpoort" / "deny.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    edited = source.fingerprint()
    assert edited != before
    (policies / "doelpoort" / "extra.rego").write_text("package x\n", encoding="utf-8")
    added = source.fingerprint()
    assert added != edited
    (policies / "doelpoort" / "extra.rego").unlink()
    assert source.fingerprint() not in (added, before)
    assert DirectorySource(policies / "missing").fingerprint() == ()


def test_a_directory_is_its_own_candidate(policies: Path) -> None:
    with DirectorySource(policies).open() as candidate:
        assert candidate == Candidate("directory", policies)
        assert candidate.describe(f"{policies}/register.yaml: x") == f"{policies}/register.yaml: x"


def test_an_unpacked_bundles_paths_are_named_as_the_bundles(tmp_path: Path) -> None:
    candidate = Candidate("bundle", tmp_path / "unpacked", "sha256:x", tmp_path / "p.tar.gz")
    message = f"{tmp_path / 'unpacked' / 'register.yaml'}: purpose x"
    assert candidate.describe(message) == f"{tmp_path / 'p.tar.gz'}!register.yaml: purpose x"


def test_the_settings_name_the_source(tmp_path: Path) -> None:
    settings = Settings.from_env().replace(policies_dir=tmp_path)
    assert policy_source(settings) == DirectorySource(tmp_path)
    bundle, key = tmp_path / "policies.tar.gz", tmp_path / "policies.pub"
    signed = settings.replace(policy_bundle=bundle, policy_bundle_key=key)
    assert policy_source(signed) == BundleSource(bundle, key)
    with pytest.raises(ConfigurationError, match="only accepted signed"):
        policy_source(settings.replace(policy_bundle=bundle))
    with pytest.raises(ConfigurationError, match="DOELPOORT_POLICY_BUNDLE is not"):
        policy_source(settings.replace(policy_bundle_key=key))


def _signed_bundle(tmp_path: Path, *, signed: bool = True) -> tuple[Path, Path]:
    """The shipped policy set as an OPA bundle (signed, or not) and the deployment's key."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    generate_signing_key(private, public)
    bundle = tmp_path / "policies.tar.gz"
    key = private.read_bytes() if signed else None
    write_bundle(compile_bundle(PROJECT_ROOT / "policies", demo_catalog()), bundle, signing_key=key)
    return bundle, public


def test_a_signed_bundle_is_vetted_like_the_directory(tmp_path: Path, catalog: Catalog) -> None:
    bundle, public = _signed_bundle(tmp_path)
    with BundleSource(bundle, public).open() as candidate:
        assert candidate.revision == compile_bundle(PROJECT_ROOT / "policies", catalog).digest
        result = run_vet(candidate.directory, catalog, kind="bundle", revision=candidate.revision)
    assert isinstance(result, Vetted)
    assert result.bundle.digest == candidate.revision


def test_an_unsigned_or_foreign_signed_bundle_is_refused(tmp_path: Path) -> None:
    unsigned, public = _signed_bundle(tmp_path / "unsigned", signed=False)
    with (
        pytest.raises(ConfigurationError, match="signature"),
        BundleSource(unsigned, public).open(),
    ):
        pass
    foreign, _their_key = _signed_bundle(tmp_path / "foreign")
    _, our_key = _signed_bundle(tmp_path / "ours")
    with pytest.raises(ConfigurationError), BundleSource(foreign, our_key).open():
        pass


def test_a_bundle_fingerprint_changes_with_the_bundle(tmp_path: Path) -> None:
    bundle, key = tmp_path / "policies.tar.gz", tmp_path / "policies.pub"
    bundle.write_bytes(b"one")
    key.write_bytes(b"key")
    source = BundleSource(bundle, key)
    before = source.fingerprint()
    bundle.write_bytes(b"two, longer")
    assert source.fingerprint() != before


def test_bundle_members_stay_inside_the_unpacked_directory() -> None:
    from gateway.policy.sources import _member_path

    bundle = Path("policies.tar.gz")
    assert str(_member_path(bundle, "doelpoort/deny.rego")) == "doelpoort/deny.rego"
    for name in ("../escape.rego", "/etc/passwd", "a//b", "a/./b", "", "a\\..\\b", "a\x00"):
        with pytest.raises(ConfigurationError, match="outside its root"):
            _member_path(bundle, name)
