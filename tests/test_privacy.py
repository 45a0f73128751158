"""Privacy by construction: no identifier or disclosed value in the log or the audit DB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from tests.gateway_support import GHOST, Deployment

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


# Identifiers a partner puts where they do not belong: refusals must not keep them.
REFUSED_BSN = "999995017"  # synthetic; passes the eleven-test
REFUSED_NAME = "Verkeerd Geplaatst"
REFUSED_V_NUMBER = "8765432109"


def refused_values(gateway: Deployment) -> set[str]:
    """Send bodies full of identifiers in the wrong fields, so that refusal entries (and
    a summary, at shutdown) and security log lines are written; return the identifiers.

    nctv: a partner no other test of the session refuses, so its refusals are within
    the rate and each has an entry."""
    ids = [REFUSED_BSN, REFUSED_V_NUMBER, REFUSED_NAME]
    everywhere = {
        "purpose": REFUSED_BSN,
        "case_ref": REFUSED_BSN,
        "justification": f"{REFUSED_NAME} {REFUSED_BSN}",
        "subject": {"bsn": REFUSED_BSN, "name": REFUSED_NAME, "v_number": REFUSED_V_NUMBER},
        "datasets": [REFUSED_BSN, f"x{REFUSED_BSN}/y", f"v{REFUSED_V_NUMBER}/z"],
        REFUSED_BSN: REFUSED_NAME,
    }
    misplaced = {
        "purpose": f"p{REFUSED_BSN}",  # well-formed names, with identifiers in them
        "case_ref": "CTI-2026-0779",
        "justification": JUSTIFICATION,
        "subject": {"bsn": REFUSED_BSN},
        "datasets": [f"ind/{REFUSED_V_NUMBER}"],
    }
    with gateway.client("nctv") as client:
        for body in (everywhere, misplaced):
            assert client.post("/v1/disclosures", json=body).status_code == 422
        # An unknown dataset, guessed with an identifier in its name.
        unknown = {**misplaced, "purpose": "ct-assessment", "datasets": [f"ind/p{REFUSED_BSN}"]}
        assert client.post("/v1/disclosures", json=unknown).status_code == 422
        assert client.get(f"/v1/subjects/{REFUSED_BSN}?name={REFUSED_NAME}").status_code == 404
        text = json.dumps(everywhere).encode()
        assert client.post("/v1/disclosures", content=text).status_code == 415
    with gateway.client(GHOST) as client:  # a security log line
        assert client.post("/v1/disclosures", json=everywhere).status_code == 403
    return set(ids)


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
    values = sent_and_released_values(gateway) | refused_values(gateway)
    assert len(values) > 5
    # The scan covers refusal entries and security log lines: there must be some.
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        kinds = {kind for (kind,) in db.execute("SELECT json_extract(body, '$.kind') FROM entries")}
    assert "refusal" in kinds
    assert any(" doelpoort.security " in line for line in gateway.log.lines)
    database = _database_bytes(gateway.settings.var_dir)
    log_text = "\n".join(
        line for line in gateway.log.lines if line.split(" ", 2)[1].startswith(SERVER_LOGGERS)
    )
    for value in values:
        assert value.encode() not in database, "a raw value reached the audit database"
        assert json.dumps(value)[1:-1].encode() not in database
        assert value not in log_text, "a raw value reached the server log"


def test_audit_entries_hold_subject_pseudonym_and_policy_input(gateway: Deployment) -> None:
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
