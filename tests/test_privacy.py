"""Privacy by construction: no identifier or disclosed value in the log or the audit DB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from tests.gateway_support import Deployment

JUSTIFICATION = "privacy scan: the synthetic subject Fictief Persoon was seen in Utrecht"
# A ct-assessment request without its subject (the telemetry test adds one).
CT_REQUEST = {"purpose": "ct-assessment", "case_ref": "CTI-2026-0778", "justification": "test"}
SERVER_LOGGERS = ("doelpoort", "gateway", "audit", "uvicorn", "regopy")


def sent_and_released_values(gateway: Deployment) -> set[str]:
    """Every identifier the tests send, their justification (free text that may name
    people: only sealed to the DPO), and every string value the gateway released."""
    values: set[str] = {JUSTIFICATION}
    requests = [
        ("politie", "ct-assessment", "ct_subject"),
        ("dtv", "vertrek", "departure_subject"),
        ("voorbeeldbank", "tf-screening", "bank_customer"),
        ("kmar", "pnr-request", "passenger"),
    ]
    for partner, purpose, subject_key in requests:
        subject = gateway.subjects[subject_key]
        values.update(subject.values())
        response = gateway.disclose(
            partner,
            {
                "purpose": purpose,
                "case_ref": "CTI-2026-0777",
                "justification": JUSTIFICATION,
                "subject": subject,
            },
        )
        assert response.status_code == 200, response.text
        for result in response.json()["disclosure"]["results"]:
            for record in result.get("records", []):
                values.update(_strings(record))
    # Short or generic values ("1990", "NL", True) say nothing about a person.
    return {v for v in values if len(v) >= 6 and not v.startswith("psn:")}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _database_bytes(var_dir: Path) -> bytes:
    files = sorted(var_dir.glob("audit.sqlite3*"))
    assert files, "the audit database exists"
    return b"".join(f.read_bytes() for f in files)


def test_no_identifiers_or_values_in_audit_db_or_logs(gateway: Deployment) -> None:
    values = sent_and_released_values(gateway)
    assert len(values) > 5
    database = _database_bytes(gateway.settings.var_dir)
    log_text = "\n".join(
        line for line in gateway.log.lines if line.split(" ", 2)[1].startswith(SERVER_LOGGERS)
    )
    for value in values:
        assert value.encode() not in database, "a raw value reached the audit database"
        assert json.dumps(value)[1:-1].encode() not in database
        assert value not in log_text, "a raw value reached the server log"


def test_audit_entries_hold_subject_pseudonym_and_policy_input(gateway: Deployment) -> None:
    import sqlite3

    subject = gateway.subjects["ct_subject"]
    gateway.disclose(
        "politie",
        {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0778",
            "justification": "audit content",
            "subject": subject,
        },
    )
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        (body,) = db.execute("SELECT body FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    entry = json.loads(body)
    assert entry["subject_refs"]
    assert all(ref.startswith("psn:") for ref in entry["subject_refs"])
    assert entry["policy_input"]["subject_keys"] == sorted(subject)
    assert entry["policy_input"]["requester"]["id"] == "politie"
    assert entry["policy_digest"].startswith("sha256:")
    assert entry["legal_basis"]
    for value in subject.values():
        assert value not in body


class RecordingTracerProvider(trace.TracerProvider):
    """Test double for an OpenTelemetry SDK an operator installs (e.g. by running under
    ``opentelemetry-instrument``): it exports nothing, it only notes who asked for a tracer."""

    def __init__(self) -> None:
        self.asked_by: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked_by.append(instrumenting_module_name)
        return trace.NoOpTracer()


def test_the_frameworks_telemetry_stays_off_when_an_operator_installs_opentelemetry(
    gateway: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI would trace each request and log validation failures, input included, to
    # whatever provider is installed: a system outside the gateway's privacy guarantees.
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    subject = gateway.subjects["ct_subject"]
    ok = gateway.disclose("politie", {**CT_REQUEST, "subject": subject})
    invalid = gateway.disclose("politie", {**CT_REQUEST, "subject": {"bsn": "123456789"}})
    assert (ok.status_code, invalid.status_code) == (200, 422)
    assert provider.asked_by == []
