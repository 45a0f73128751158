"""Refusals leave a trace (issue 12): an audit entry for each refusal of a configured
partner, a security log line for each unknown or revoked certificate.

End to end over real mutual TLS against a gateway of this module's own (so the rate of
one partner's refusals is not shared with other modules' tests); each test refuses a
partner of its own for the same reason. The rate itself is tested on the refusal log
with a clock of the test's (tests/test_refusal_rate.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gateway.dev.pki import revoke
from tests.gateway_support import GHOST, Deployment, make_settings, running_gateway

BSN = "999990019"  # synthetic, passes the eleven-test: it must never reach an entry
ROUTE = "/v1/disclosures"


def valid_body(gateway: Deployment, **changes: Any) -> dict[str, Any]:
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "refusal test",
        "subject": gateway.subjects["ct_subject"],
    }
    return body | changes


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_gateway(make_settings(tmp_path_factory.mktemp("var"))) as deployment:
        yield deployment


def bodies(db_path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT body FROM entries ORDER BY seq").fetchall()
    return [json.loads(body) for (body,) in rows]


def refusals_of(gateway: Deployment, requester: str) -> list[dict[str, Any]]:
    # Durable before the answer: there as soon as the response is.
    return [
        body
        for body in bodies(gateway.settings.audit_db_path)
        if body.get("requester") == requester and body.get("decision") == "refused"
    ]


def security_lines(gateway: Deployment) -> list[dict[str, Any]]:
    lines = []
    for line in list(gateway.log.lines):
        _level, name, message = line.split(" ", 2)
        if name == "doelpoort.security":
            lines.append(json.loads(message))
    return lines


def certificate_facts(path: Path) -> tuple[str, str, str]:
    der = ssl.PEM_cert_to_DER_cert(path.read_text())
    cert = x509.load_der_x509_certificate(der)
    return (
        cert.subject.rfc4514_string(),
        format(cert.serial_number, "x"),
        hashlib.sha256(der).hexdigest(),
    )


def test_an_invalid_body_is_an_entry_with_its_names_never_its_values(refusing: Deployment) -> None:
    body = valid_body(
        refusing,
        case_ref=BSN,  # invalid: the 422
        subject={"bsn": BSN},
        datasets=["ind/residence", f"x{BSN}/y", BSN, {"bsn": BSN}],
    )
    with refusing.client("politie") as client:
        assert client.post(ROUTE, json=body).status_code == 422
    (entry,) = refusals_of(refusing, "politie")
    assert entry == {
        "kind": "refusal",
        "decision": "refused",
        "time": entry["time"],
        "requester": "politie",
        "problem": "invalid-request",
        "status": 422,
        "method": "POST",
        "route": ROUTE,
        "purpose": "ct-assessment",
        "datasets": ["ind/residence"],  # well-formed, and no run of digits
        "unrecorded_names": 3,
    }
    assert BSN not in json.dumps(bodies(refusing.settings.audit_db_path))


def test_guessed_dataset_names_are_in_the_log(refusing: Deployment) -> None:
    body = valid_body(refusing, datasets=["ind/residence", "ind/secret-files", "aivd/targets"])
    with refusing.client("ind") as client:
        assert client.post(ROUTE, json=body).status_code == 422
    (entry,) = refusals_of(refusing, "ind")
    assert (entry["problem"], entry["purpose"]) == ("unknown-dataset", "ct-assessment")
    assert entry["datasets"] == ["ind/residence", "ind/secret-files", "aivd/targets"]


def test_a_body_too_large_or_not_json_is_an_entry_without_names(refusing: Deployment) -> None:
    too_large = json.dumps(valid_body(refusing, justification="x" * 70_000))
    with refusing.client("kmar") as client:
        assert (
            client.post(
                ROUTE, content=too_large, headers={"content-type": "application/json"}
            ).status_code
            == 413
        )
        assert (
            client.post(
                ROUTE, content=b"purpose=ct-assessment", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
    entries = refusals_of(refusing, "kmar")
    assert [(e["problem"], e["status"]) for e in entries] == [
        ("payload-too-large", 413),
        ("unsupported-media-type", 415),
    ]
    assert all(e["purpose"] is None and e["datasets"] == [] for e in entries)  # never read


def test_probing_for_routes_and_methods_is_an_entry(refusing: Deployment) -> None:
    with refusing.client("om") as client:
        assert client.get(f"/v1/subjects/{BSN}").status_code == 404
        assert client.get(ROUTE).status_code == 405
        assert client.delete(ROUTE).status_code == 405
    entries = refusals_of(refusing, "om")
    assert [(e["problem"], e["method"], e["route"]) for e in entries] == [
        ("not-found", "GET", None),  # the template matched, never the raw path
        ("method-not-allowed", "GET", ROUTE),
        ("method-not-allowed", "DELETE", ROUTE),
    ]
    assert BSN not in json.dumps(entries)


def test_a_purpose_denial_is_logged_once_as_decisions_not_again_as_a_refusal(
    refusing: Deployment,
) -> None:
    subject = refusing.subjects["bank_customer"]
    response = refusing.disclose("voorbeeldbank", valid_body(refusing, subject=subject))
    assert response.json()["type"] == "urn:doelpoort:problem:purpose-denied"
    assert refusals_of(refusing, "voorbeeldbank") == []


def test_a_revoked_partner_is_an_entry_and_a_security_line(refusing: Deployment) -> None:
    with refusing.client("dji") as client:
        # Revoked after start-up: the handshake still passes, the app refuses (401).
        revoke(refusing.settings.pki_dir, "dji")
        assert client.post(ROUTE, json=valid_body(refusing)).status_code == 401
    (entry,) = refusals_of(refusing, "dji")
    assert (entry["problem"], entry["status"], entry["purpose"]) == ("unauthenticated", 401, None)
    (line,) = [line for line in security_lines(refusing) if line["event"] == "certificate-revoked"]
    subject, serial, fingerprint = certificate_facts(refusing.paths.partner_cert("dji"))
    assert (line["subject"], line["serial"], line["fingerprint"]) == (subject, serial, fingerprint)
    assert line["peer"].startswith("127.0.0.1:")
    assert "revoked" in line["reason"]


def test_an_unknown_peer_is_a_security_line_and_no_entry(refusing: Deployment) -> None:
    with refusing.client(GHOST) as client:
        assert client.post(ROUTE, json=valid_body(refusing)).status_code == 403
        assert client.get("/v1/nothing").status_code == 404  # the answer is as it was
    lines = [line for line in security_lines(refusing) if "CN=ghost" in (line["subject"] or "")]
    assert [line["event"] for line in lines] == ["certificate-unknown-peer"] * 2
    _, serial, fingerprint = certificate_facts(refusing.paths.partner_cert(GHOST))
    assert {(line["serial"], line["fingerprint"]) for line in lines} == {(serial, fingerprint)}
    assert all(line["peer"].startswith("127.0.0.1:") for line in lines)
    assert lines[0]["reason"] == "no configured partner"
    assert refusals_of(refusing, GHOST) == []


def test_a_dpo_on_the_partner_api_is_a_security_line_and_no_entry(refusing: Deployment) -> None:
    with refusing.dpo_client() as client:
        assert client.post(ROUTE, json=valid_body(refusing)).status_code == 403
    (line,) = [line for line in security_lines(refusing) if "CN=dpo" in (line["subject"] or "")]
    assert (line["event"], line["reason"]) == (
        "certificate-unknown-peer",
        "a DPO certificate on the partner API",
    )
    assert refusals_of(refusing, "dpo") == []


def test_beyond_the_rate_refusals_are_counted_into_a_summary_written_at_shutdown(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "var").replace(refusals_per_minute=3)
    misplaced = {"purpose": f"p{BSN}", "case_ref": BSN, "datasets": [f"x{BSN}/y"], BSN: BSN}
    with running_gateway(settings) as gateway, gateway.client("politie") as client:
        for _ in range(8):
            assert client.post(ROUTE, json=misplaced).status_code == 422
        assert len(refusals_of(gateway, "politie")) == 3  # the rest only counted so far
    entries = refusals_of(gateway, "politie")
    assert [e["kind"] for e in entries] == ["refusal"] * 3 + ["refusal-summary"]
    summary = entries[-1]
    assert summary["counts"] == {"invalid-request": 5}
    assert entries[0]["time"] <= summary["interval_start"] <= summary["interval_end"]
    # Neither the entries nor the summary, nor anything logged, kept the identifier.
    stored = b"".join(f.read_bytes() for f in settings.var_dir.glob("audit.sqlite3*"))
    assert BSN.encode() not in stored
    assert not [line for line in gateway.log.lines if BSN in line]
