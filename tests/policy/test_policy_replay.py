"""``doelpoort policy replay``: a candidate policy set against a real log's decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.reader import AuditReader
from gateway._cli import app
from gateway.settings import Settings
from tests.policy.logged_decisions import seed_log
from tests.policy.policy_support import copy_policies, edit_register

runner = CliRunner()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return seed_log(tmp_path_factory.mktemp("replay"))


def replay(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["policy", "replay", "--var-dir", str(settings.var_dir), "--workers", "2", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def replay_json(settings: Settings, *args: str) -> dict[str, Any]:
    code, out, err = replay(settings, "--json", *args)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def groups(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["purpose"], g["requester"]): g for g in report["groups"]}


def test_the_unchanged_policy_replays_every_decision_without_a_flip(settings: Settings) -> None:
    before = settings.audit_db_path.read_bytes()
    code, out, err = replay(settings)
    assert code == 0, err
    assert "replayed 14 decisions: 14 unchanged, 0 flipped; 0 entries skipped" in out
    report = replay_json(settings)
    assert report["summary"] == {
        "entries": 14,
        "before_since": 0,
        "replayed": 14,
        "unchanged": 14,
        "flipped": 0,
        "skipped": {},
    }
    assert all(g["flips"] == {} and g["datasets"] == {} for g in report["groups"])
    # Read only: the log is byte for byte what it was.
    assert settings.audit_db_path.read_bytes() == before


def test_a_dropped_field_shows_as_changed_ops_of_its_purpose_only(
    settings: Settings, tmp_path: Path
) -> None:
    candidate = copy_policies(tmp_path)

    def drop_name(register: dict[str, Any]) -> None:
        del register["purposes"]["vertrek"]["datasets"]["ind/residence"]["field_ops"]["name"]

    edit_register(candidate, drop_name)
    report = replay_json(settings, "--policies", str(candidate))
    assert report["summary"]["flipped"] == 2
    assert report["summary"]["unchanged"] == 12
    found = groups(report)
    vertrek = found[("vertrek", "dtv")]
    assert vertrek["replayed"] == 4
    assert vertrek["flips"] == {"field ops": 2}
    assert vertrek["datasets"] == {
        "ind/residence": {
            "flips": {"field ops": 2},
            "reasons": {},
            "field_ops": {"name": {"keep → (not released)": 2}},
        }
    }
    assert all(g["flipped"] == 0 for key, g in found.items() if key != ("vertrek", "dtv"))
    code, out, _ = replay(settings, "--policies", str(candidate))
    assert code == 0
    assert "vertrek / dtv: 4 replayed, 2 flipped (2 field ops)" in out
    assert "name: keep → (not released) (2)" in out


def test_a_narrowed_grant_flips_allow_to_deny_for_that_requester(
    settings: Settings, tmp_path: Path
) -> None:
    candidate = copy_policies(tmp_path)

    def without_nctv(register: dict[str, Any]) -> None:
        grant = register["purposes"]["ct-assessment"]["datasets"]["fiu/transactions"]
        grant["requesters"].remove("nctv")
        grant.get("requester_field_ops", {}).pop("nctv", None)  # its own ops go with it

    edit_register(candidate, without_nctv)
    code, out, err = replay(settings, "--policies", str(candidate))
    assert code == 0, err
    assert "ct-assessment / nctv: 2 replayed, 2 flipped (2 allow→deny)" in out
    report = replay_json(settings, "--policies", str(candidate))
    nctv = groups(report)[("ct-assessment", "nctv")]
    assert nctv["datasets"]["fiu/transactions"]["reasons"] == {
        "purpose ct-assessment does not cover fiu/transactions for nctv": 2
    }
    assert report["summary"]["flipped"] == 2
    # The text and the JSON count the same.
    assert "replayed 14 decisions: 12 unchanged, 2 flipped" in out


def test_since_replays_only_the_later_decisions(settings: Settings) -> None:
    report = replay_json(settings, "--since", "2026-12-01")
    assert report["summary"]["replayed"] == 7
    assert report["summary"]["before_since"] == 7
    assert replay_json(settings, "--since", "2026-12-02T09:00:01Z")["summary"]["replayed"] == 0
    code, _, err = replay(settings, "--since", "last week")
    assert code == 2
    assert "--since" in err


def test_a_candidate_that_fails_shows_errors_not_decisions(
    settings: Settings, tmp_path: Path
) -> None:
    candidate = copy_policies(tmp_path)
    rule = candidate / "doelpoort" / "deny.rego"
    # A built-in error for the bank's inputs only: to_number of a word.
    rule.write_text(
        rule.read_text(encoding="utf-8")
        + '\ndeny contains "x" if {\n\tinput.requester.id == "voorbeeldbank"\n'
        + '\tto_number("abc") > 0\n}\n',
        encoding="utf-8",
    )
    report = replay_json(settings, "--policies", str(candidate))
    bank = groups(report)
    assert bank[("tf-screening", "voorbeeldbank")]["flips"] == {"allow→error": 2}
    assert bank[("ct-assessment", "voorbeeldbank")]["flips"] == {"deny→error": 2}
    assert report["summary"]["flipped"] == 4


def test_entries_that_are_no_decision_are_skipped_and_counted(tmp_path: Path) -> None:
    from audit.entry import AuditRecord, RefusalRecord
    from audit.store import AuditStore
    from gateway.keys import load_log_key

    settings = seed_log(tmp_path, batches=())
    store = AuditStore.open(
        settings.audit_db_path, log_key=load_log_key(settings.keys_dir), origin=settings.origin
    )
    refusal = RefusalRecord(
        time="2026-12-01T10:00:00Z",
        requester="politie",
        problem="invalid-request",
        status=400,
        method="POST",
        route="/v1/disclosures",
    )
    error = AuditRecord(
        time="2026-12-01T10:00:00Z",
        disclosure_id="urn:uuid:00000000-0000-4000-8000-000000000001",
        requester="politie",
        provider="ind",
        dataset="ind/residence",
        purpose="ct-assessment",
        legal_basis="",
        case_ref="CTI-2026-0042",
        decision="error",
        error="policy-evaluation-error",
    )

    async def append() -> None:
        await store.append([refusal, error])

    import asyncio

    try:
        asyncio.run(append())
    finally:
        store.close()
    report = replay_json(settings)
    assert report["summary"]["replayed"] == 0
    assert report["summary"]["skipped"] == {
        "logged as an error (policy-evaluation-error)": 1,
        "not a decision (refusal entry)": 1,
    }
    with AuditReader(settings.audit_db_path) as reader:
        assert reader.count() == 2
