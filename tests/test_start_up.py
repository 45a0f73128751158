"""Runtime.start only loads: a missing key or a register that does not fit the catalog stops it.

Keys are created by ``doelpoort setup`` (gateway.dev.bootstrap) alone. A gateway that created
them at start-up would silently replace a lost audit key (forking the log) or master
secret (changing every pseudonym).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.reader import AuditReader
from gateway.connectors.catalog import Catalog
from gateway.dev.bootstrap import bootstrap
from gateway.errors import ConfigurationError, PolicySetMismatch
from gateway.policy.bundle import compile_bundle
from gateway.policy.engine import EmbeddedEngine
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.transport.pki_paths import PkiPaths
from tests.gateway_support import copy_tree, make_settings


def _start(settings: Settings) -> None:
    async def start_and_close() -> None:
        runtime = await Runtime.start(settings)
        await runtime.close()

    asyncio.run(start_and_close())


@pytest.fixture(scope="module")
def set_up(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("deployment") / "var")
    bootstrap(settings, echo=lambda _line: None)
    return settings


def _copy_of(settings: Settings, tmp_path: Path) -> Settings:
    """A private copy of the set-up deployment's var/, for a test to break."""
    var = tmp_path / "var"
    shutil.copytree(settings.var_dir, var)
    return settings.with_var_dir(var)


def test_a_set_up_deployment_starts(set_up: Settings, tmp_path: Path) -> None:
    _start(_copy_of(set_up, tmp_path))


@pytest.mark.parametrize(
    ("key_file", "message"),
    [
        pytest.param("master.key", r"no pseudonym master key .*run `doelpoort setup`", id="master"),
        pytest.param("audit-log.key", r"no audit log key .*run `doelpoort setup`", id="audit"),
        pytest.param("receipts/current", r"no receipt signing key .*doelpoort setup", id="receipt"),
        pytest.param(
            "subject-ref.key",
            r"no DPO subject key .*run `doelpoort keys init`.*keys subject-ref --export",
            id="subject",
        ),
    ],
)
def test_a_missing_key_stops_start_up_and_is_not_replaced(
    set_up: Settings, tmp_path: Path, key_file: str, message: str
) -> None:
    settings = _copy_of(set_up, tmp_path)
    path = settings.keys_dir / key_file
    assert path.exists()
    path.unlink()
    before = sorted(p.relative_to(settings.keys_dir) for p in settings.keys_dir.rglob("*"))
    with pytest.raises(ConfigurationError, match=message):
        _start(settings)
    assert not path.exists()
    after = sorted(p.relative_to(settings.keys_dir) for p in settings.keys_dir.rglob("*"))
    assert after == before  # nothing was created in its place


def test_a_failed_start_up_leaves_the_log_free_for_the_next(
    set_up: Settings, tmp_path: Path
) -> None:
    settings = _copy_of(set_up, tmp_path)
    crl = PkiPaths(settings.pki_dir).crl
    good = crl.read_bytes()
    crl.write_text("not a CRL")
    with pytest.raises(ConfigurationError, match=r"revocation list .*crl\.pem cannot be read"):
        _start(settings)
    crl.write_bytes(good)
    _start(settings)  # in the same process: the log's writer lock was not kept


def test_start_up_interrupted_after_opening_the_log_gives_it_back(
    set_up: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _copy_of(set_up, tmp_path)

    async def interrupted(_runtime: Runtime) -> None:
        raise asyncio.CancelledError  # as when the server is stopped during start-up

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "erase_expired_escrows", interrupted)
        with pytest.raises(asyncio.CancelledError):
            _start(settings)
    _start(settings)


def test_start_up_archives_the_policy_set_once(set_up: Settings, tmp_path: Path) -> None:
    settings = _copy_of(set_up, tmp_path)
    _start(settings)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    bundle = compile_bundle(settings.policies_dir, catalog)
    with AuditReader(settings.audit_db_path) as log:
        archived = log.policy_sets()
        assert [found.digest for found in archived] == [bundle.digest]
        assert log.policy_set(bundle.digest) == dict(bundle.sources)
    _start(settings)
    with AuditReader(settings.audit_db_path) as log:
        assert log.policy_sets() == archived  # first used at the first start


def test_a_changed_archive_stops_start_up(set_up: Settings, tmp_path: Path) -> None:
    # The archive could no longer show the text of the set the gateway would serve with.
    settings = _copy_of(set_up, tmp_path)
    _start(settings)
    with sqlite3.connect(settings.audit_db_path) as db:
        db.execute("DROP TRIGGER policy_sets_no_update")
        db.execute("UPDATE policy_sets SET sources = replace(sources, 'keep', 'drop')")
    db.close()
    for _ in range(2):  # the log is given back each time: the second start fails alike
        with pytest.raises(PolicySetMismatch, match="does not match its digest"):
            _start(settings)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[EmbeddedEngine]:
    """Every policy engine start-up builds from now on, to see that each was closed."""
    engines: list[EmbeddedEngine] = []

    class RecordedEngine(EmbeddedEngine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr("gateway.runtime.EmbeddedEngine", RecordedEngine)
    return engines


def test_a_failed_start_up_closes_the_policy_engine_it_built(
    set_up: Settings, tmp_path: Path, built: list[EmbeddedEngine]
) -> None:
    settings = _copy_of(set_up, tmp_path)
    PkiPaths(settings.pki_dir).crl.write_text("not a CRL")  # read after the engine is built
    with pytest.raises(ConfigurationError, match="revocation list"):
        _start(settings)
    assert len(built) == 1
    assert not built[0].ready()  # its worker pool was shut down, not left behind


def _edit_register(policies: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = policies / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(register)
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")


def _ind_residence_ops(register: dict[str, Any]) -> dict[str, str]:
    ops: dict[str, str] = register["purposes"]["ct-assessment"]["datasets"]["ind/residence"][
        "field_ops"
    ]
    return ops


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda r: _ind_residence_ops(r).update(nationalty="keep"),
            r"purpose ct-assessment, dataset ind/residence: field nationalty is not a field",
            id="misspelled-field",
        ),
        pytest.param(
            lambda r: _ind_residence_ops(r).update(nationality="generalise:year"),
            r"purpose ct-assessment, dataset ind/residence: field nationality: op generalise",
            id="op-unfit-for-type",
        ),
        pytest.param(
            lambda r: r["purposes"]["vertrek"]["datasets"].update(
                {"dji/detentoin": {"field_ops": {"name": "keep"}}}
            ),
            r"purpose vertrek, dataset dji/detentoin: the connector catalog has no such dataset",
            id="unknown-dataset",
        ),
        pytest.param(
            lambda r: r["purposes"]["vertrek"].update(requester_roles=["loav"]),
            r"purpose vertrek: no partner of the connector catalog holds role loav",
            id="unknown-role",
        ),
        pytest.param(
            lambda r: r["purposes"]["vertrek"].update(requires_facts=["no_lawful_residense"]),
            r"purpose vertrek: requires_facts: fact no_lawful_residense is declared by no",
            id="undeclared-fact",
        ),
        pytest.param(
            lambda r: r["purposes"]["vertrek"].update(allowed_domains=["imigration"]),
            r"purpose vertrek: allowed_domains\.0: unknown domain 'imigration'",
            id="domain-outside-the-vocabulary",
        ),
        pytest.param(
            lambda r: r["purposes"]["ct-assessment"]["datasets"]["politie/incidents"].pop(
                "clear_reasons"
            ),
            r"purpose ct-assessment, dataset politie/incidents: field offence_category is"
            r" criminal data \(a sensitive",
            id="sensitive-in-clear-without-reason",
        ),
        pytest.param(
            lambda r: r["purposes"]["ct-assessment"]["datasets"]["fiu/transactions"].update(
                requester_field_ops={"nctvv": {"amount_eur": "drop"}}
            ),
            r"purpose ct-assessment, dataset fiu/transactions: requester_field_ops\.nctvv:"
            r" nctvv is not a partner",
            id="requester-ops-for-no-partner",
        ),
    ],
)
def test_a_register_that_does_not_fit_the_catalog_stops_start_up(
    set_up: Settings,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    policies = copy_tree("policies", tmp_path)
    _edit_register(policies, edit)
    settings = make_settings(_copy_of(set_up, tmp_path).var_dir, policies_dir=policies)
    with pytest.raises(ConfigurationError, match=r"register\.yaml: " + message):
        _start(settings)


def _residence_fact(fact: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(ind: dict[str, Any]) -> None:
        ind["datasets"]["residence"]["facts"]["no_lawful_residence"] = fact

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            _residence_fact({"field": "lawful_residense", "true_if": [False]}),
            r"ind\.yaml: datasets\.residence\.facts\.no_lawful_residence: field"
            r" 'lawful_residense' is not a field of the dataset",
            id="fact-on-an-undeclared-field",
        ),
        pytest.param(
            _residence_fact({"field": "lawful_residence", "true_if": ["false"]}),
            r"ind\.yaml: datasets\.residence\.facts\.no_lawful_residence: true_if\.0 is not a"
            r" boolean, as field 'lawful_residence' is",
            id="true-if-of-the-wrong-type",
        ),
        pytest.param(
            _residence_fact({"field": "status_since", "true_if": ["2026-02-31"]}),
            r"true_if\.0 is not a date, as field 'status_since' is",
            id="true-if-no-date",
        ),
        pytest.param(
            lambda ind: ind["datasets"]["residence"].update(domain="imigration"),
            r"ind\.yaml: datasets\.residence\.domain: unknown domain 'imigration' \(known:",
            id="domain-outside-the-vocabulary",
        ),
    ],
)
def test_a_catalog_with_a_bad_fact_or_name_stops_start_up(
    set_up: Settings,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    connectors = copy_tree("connectors", tmp_path)
    path = connectors / "ind.yaml"
    ind = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(ind)
    path.write_text(yaml.safe_dump(ind, sort_keys=False), encoding="utf-8")
    settings = make_settings(_copy_of(set_up, tmp_path).var_dir, connectors_dir=connectors)
    with pytest.raises(ConfigurationError, match=message) as caught:
        _start(settings)
    assert "\n" not in caught.value.detail


def test_a_catalog_without_its_vocabulary_stops_start_up(set_up: Settings, tmp_path: Path) -> None:
    connectors = copy_tree("connectors", tmp_path)
    (connectors / "vocabulary.yaml").unlink()
    settings = make_settings(_copy_of(set_up, tmp_path).var_dir, connectors_dir=connectors)
    with pytest.raises(ConfigurationError, match=r"vocabulary\.yaml: not found: the catalog"):
        _start(settings)


@pytest.mark.parametrize(
    ("files", "cause"),
    [
        pytest.param(
            {"doelpoort/disclosure.rego": "package doelpoort.disclosure\n\nnothing := 1\n"},
            "no rule defines the entrypoint data.doelpoort.disclosure.decision",
            id="no-decision-rule",
        ),
        pytest.param(
            {
                "doelpoort/extra.rego": "package doelpoort.disclosure\n\nimport rego.v1\n\n"
                'deny contains sprintff("%s", [input.purpose]) if true\n'
            },
            "doelpoort/extra.rego:5:15: sprintff is not a built-in function",
            id="misspelt-built-in",
        ),
        pytest.param(
            {
                "doelpoort/extra.rego": "package doelpoort.disclosure\n\nimport rego.v1\n\n"
                'deny contains "no role" if not role_grantd\n'
            },
            "doelpoort/extra.rego:5:32: role_grantd is not defined",
            id="misspelt-rule-reference",  # compiles, and would deny every request
        ),
    ],
)
def test_a_policy_set_with_a_finding_stops_start_up(
    set_up: Settings,
    tmp_path: Path,
    built: list[EmbeddedEngine],
    files: dict[str, str],
    cause: str,
) -> None:
    # Each compiles; each would fail or deny every request. Start-up runs `doelpoort
    # policy check` first (gateway/policy/check.py) and stops, listing the findings.
    policies = copy_tree("policies", tmp_path)
    if "doelpoort/disclosure.rego" in files:
        for rego in policies.rglob("*.rego"):
            rego.unlink()
    for name, text in files.items():
        (policies / name).write_text(text, encoding="utf-8")
    settings = make_settings(_copy_of(set_up, tmp_path).var_dir, policies_dir=policies)
    with pytest.raises(ConfigurationError) as caught:
        _start(settings)
    assert "the policy set is refused" in caught.value.detail
    assert "`doelpoort policy check`" in caught.value.detail
    assert cause in caught.value.detail
    assert built == []  # refused before the serving engine was built


# --- the certificates a gateway admits (issue 12) -------------------------------------


def test_a_gateway_that_could_admit_no_certificate_does_not_start(
    set_up: Settings, tmp_path: Path
) -> None:
    # A development PKI from before the issuance register, and no pinned certificates:
    # every client would be refused. Start-up says what to do instead.
    settings = _copy_of(set_up, tmp_path)
    PkiPaths(settings.pki_dir).issued.unlink()
    with pytest.raises(ConfigurationError, match=r"issued\.jsonl is missing.*pki init"):
        _start(settings)


def test_without_a_register_pinned_certificates_suffice_to_start(
    set_up: Settings, tmp_path: Path
) -> None:
    # A deployment with its own CA: no register, its partners' certificates pinned.
    settings = _copy_of(set_up, tmp_path)
    PkiPaths(settings.pki_dir).issued.unlink()
    connectors = copy_tree("connectors", tmp_path)
    with (connectors / "politie.yaml").open("a", encoding="utf-8") as yaml_file:
        yaml_file.write(f"certificates:\n  - spki_sha256: {'ab' * 32}\n")
    _start(make_settings(settings.var_dir, connectors_dir=connectors))


def test_a_register_out_of_form_stops_start_up(set_up: Settings, tmp_path: Path) -> None:
    settings = _copy_of(set_up, tmp_path)
    issued = PkiPaths(settings.pki_dir).issued
    issued.write_bytes(issued.read_bytes() + b'{"event": "issued"}\n')
    with pytest.raises(ConfigurationError, match=r"issuance register .*: line \d+: issued\."):
        _start(settings)
