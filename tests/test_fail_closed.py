"""Fail closed: policy errors, timeouts, unknown ops and audit failures disclose nothing.

Each case runs a real gateway over a deployment with one real fault in it — a policy
that conflicts, a register naming an operator nobody implements, a timeout too short
for any evaluation, a provider file that is missing, an audit table that refuses
writes — and checks the response and what the audit log kept.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.errors import ConfigurationError
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.audit.audit_support import fail_inserts, stop_failing
from tests.gateway_support import Deployment, copy_tree, make_settings, running_gateway


def ct_request(gateway: Deployment, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0099",
        "justification": "test",
        "subject": gateway.subjects["ct_subject"],
        "datasets": ["ind/residence", "kmar/border-crossings"],
    }
    body.update(extra)
    return body


def decisions(gateway: Deployment) -> list[tuple[str, str | None]]:
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        rows = db.execute(
            "SELECT json_extract(body, '$.decision'), json_extract(body, '$.error') "
            "FROM entries ORDER BY seq"
        ).fetchall()
    return [(str(d), e) for d, e in rows]


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return copy_tree("policies", tmp_path)


def test_policy_conflict_is_503_and_logged(tmp_path: Path, policies: Path) -> None:
    # A second, contradicting definition of the decision: the engine reports a conflict.
    # Only for this request's case: a policy that fails every ct-assessment request would
    # not start at all (its start-up probe fails, tests/policy/test_probe.py).
    (policies / "doelpoort" / "zz_conflict.rego").write_text(
        "package doelpoort.disclosure\n\n"
        'decision := {"allow": true, "reasons": [], "field_ops": {}, "retention_days": 1,'
        ' "legal_basis": "none"} if input.case_ref == "CTI-2026-0099"\n'
    )
    with running_gateway(make_settings(tmp_path / "var", policies_dir=policies)) as gw:
        response = gw.disclose("politie", ct_request(gw))
        assert response.status_code == 503
        assert response.json()["type"].startswith("urn:doelpoort:problem:policy")
        assert "records" not in response.text
        assert [d for d, _ in decisions(gw)] == ["error", "error"]
        # Even a failed decision names the policy bundle that failed to make it.
        with sqlite3.connect(gw.settings.audit_db_path) as db:
            digests = {
                row[0]
                for row in db.execute("SELECT json_extract(body, '$.policy_digest') FROM entries")
            }
        assert digests == {gw.runtime.engine.digest}


def test_unknown_field_op_from_the_policy_is_503(tmp_path: Path, policies: Path) -> None:
    # The policy itself returns an op no operator implements: never a pass-through. Only
    # for this request's case: a policy that does so for every request would not start
    # at all (its start-up probe fails, tests/policy/test_probe.py).
    rego = policies / "doelpoort" / "disclosure.rego"
    original = "field_ops := object.filter(grant_ops, object.keys(input.dataset.fields))"
    assert original in rego.read_text()
    rego.write_text(
        rego.read_text().replace(
            original,
            "field_ops := object.union(object.filter(grant_ops, "
            "object.keys(input.dataset.fields)), shredded)",
        )
    )
    (policies / "doelpoort" / "zz_shred.rego").write_text(
        "package doelpoort.disclosure\n\n"
        "default shredded := {}\n\n"
        'shredded := {"name": "shred"} if input.case_ref == "CTI-2026-0099"\n'
    )
    with running_gateway(make_settings(tmp_path / "var", policies_dir=policies)) as gw:
        response = gw.disclose("politie", ct_request(gw))
        assert response.status_code == 503
        assert response.json()["type"] == "urn:doelpoort:problem:unknown-operator"
        assert "records" not in response.text
        assert {e for _, e in decisions(gw)} == {"unknown-operator"}


def test_unknown_field_op_in_the_register_stops_start_up(tmp_path: Path, policies: Path) -> None:
    register_path = policies / "register.yaml"
    register = yaml.safe_load(register_path.read_text())
    grant = register["purposes"]["ct-assessment"]["datasets"]["ind/residence"]
    grant["field_ops"]["name"] = "shred"
    register_path.write_text(yaml.safe_dump(register))
    settings = make_settings(tmp_path / "var", policies_dir=policies)
    with pytest.raises(ConfigurationError, match="shred"):
        asyncio.run(Runtime.start(settings))


def test_policy_timeout_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var").replace(policy_timeout_s=1e-9)
    with running_gateway(settings) as gw:
        response = gw.disclose("politie", ct_request(gw))
        assert response.status_code == 503
        assert response.json()["type"] == "urn:doelpoort:problem:policy-evaluation-error"
        assert all(d == "error" for d, _ in decisions(gw))


def test_connector_failure_is_a_per_dataset_error(tmp_path: Path) -> None:
    def remove_ind_records(settings: Settings) -> None:
        (settings.demo_data_dir / "ind-residence.jsonl").unlink()

    settings = make_settings(tmp_path / "var")
    with running_gateway(settings, before_start=remove_ind_records) as gw:
        response = gw.disclose("politie", ct_request(gw))
        assert response.status_code == 200, response.text
        results = {r["dataset"]: r for r in response.json()["disclosure"]["results"]}
        assert results["ind/residence"]["decision"] == "error"
        assert results["ind/residence"]["error"]["type"] == (
            "urn:doelpoort:problem:connector-unavailable"
        )
        assert "records" not in results["ind/residence"]
        assert results["kmar/border-crossings"]["decision"] == "allow"
        assert ("error", "connector-unavailable") in decisions(gw)


@pytest.fixture
def audit_gateway(tmp_path: Path) -> Iterator[Deployment]:
    with running_gateway(make_settings(tmp_path / "var")) as gw:
        yield gw


def test_audit_write_failure_discloses_nothing(audit_gateway: Deployment) -> None:
    gw = audit_gateway
    assert gw.disclose("politie", ct_request(gw)).status_code == 200
    with sqlite3.connect(gw.settings.audit_db_path) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON entries "
            "BEGIN SELECT RAISE(ABORT, 'audit store refuses writes'); END"
        )
    response = gw.disclose("politie", ct_request(gw))
    assert response.status_code == 503
    assert response.json()["type"] == "urn:doelpoort:problem:audit-unavailable"
    assert "records" not in response.text
    with gw.client("politie") as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["audit_store"] is False

    with sqlite3.connect(gw.settings.audit_db_path) as db:
        db.execute("DROP TRIGGER refuse")
    recovered = gw.disclose("politie", ct_request(gw))
    assert recovered.status_code == 200
    seqs = [r["audit_seq"] for r in recovered.json()["disclosure"]["results"]]
    assert seqs == [3, 4]  # the failed batch left no gap
    with gw.client("politie") as client:
        assert client.get("/readyz").status_code == 200


def test_an_audit_write_failure_is_logged_once_by_class_not_per_request(
    audit_gateway: Deployment,
) -> None:
    gw = audit_gateway
    assert gw.disclose("politie", ct_request(gw)).status_code == 200
    fail_inserts(gw.settings.audit_db_path)  # SQLite refuses inserts, as a full disk would

    async def concurrently(count: int) -> list[int]:
        paths = gw.paths
        context = gw.ssl_context(paths.partner_cert("politie"), paths.partner_key("politie"))
        async with httpx.AsyncClient(base_url=gw.base_url, verify=context, timeout=10) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/disclosures", json=ct_request(gw)) for _ in range(count))
            )
        return [answer.status_code for answer in answers]

    for _ in range(3):  # several failed groups, of several requests each
        assert set(asyncio.run(concurrently(8))) == {503}
    gc.collect()  # asyncio reports an unread future's exception when it is collected
    stop_failing(gw.settings.audit_db_path)
    assert gw.disclose("politie", ct_request(gw)).status_code == 200

    text = "\n".join(gw.log.lines)
    assert "never retrieved" not in text
    assert "Traceback" not in text
    assert "disk full" not in text  # the error's message is not logged, its class is
    failures = [line for line in gw.log.lines if "audit write of" in line]
    assert len(failures) == 1, failures
    assert "IntegrityError" in failures[0]
    assert sum("audit writes succeed again" in line for line in gw.log.lines) == 1


def test_a_policy_error_tells_the_operator_its_cause_and_the_partner_nothing_more(
    tmp_path: Path, policies: Path
) -> None:
    # A division by zero in a rule that only this request's case reaches (a policy that
    # fails every request would not start: its start-up probe fails; nor would one with a
    # misspelt built-in: `doelpoort policy check` refuses it).
    (policies / "doelpoort" / "zz_typo.rego").write_text(
        "package doelpoort.disclosure\n\n"
        'deny contains "never" if {\n\tinput.case_ref == "CTI-2026-0099"\n'
        "\tcount(input.subject_keys) / 0 > 1\n}\n"
    )
    with running_gateway(make_settings(tmp_path / "var", policies_dir=policies)) as gw:
        response = gw.disclose("politie", ct_request(gw))
        assert response.status_code == 503
        problem = response.json()
        assert problem["detail"] == problem["title"]
        assert "divide" not in response.text
        assert [d for d, _ in decisions(gw)] == ["error", "error"]
        assert any("divide by zero" in line for line in gw.log.lines)
