"""POST /v1/disclosures end to end: real mTLS, real policies, real audit log."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from audit.reader import AuditReader
from gateway.canonical import canonical_json
from gateway.signing import verify_receipt
from tests.gateway_support import GHOST, Deployment, b64url_decode, verify_with_plain_cryptography


def request(purpose: str, subject: dict[str, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purpose": purpose,
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": subject,
    }
    body.update(extra)
    return body


def results_by_dataset(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {r["dataset"]: r for r in response.json()["disclosure"]["results"]}


def audit_rows(gateway: Deployment, seqs: list[int]) -> list[str]:
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        marks = ",".join("?" * len(seqs))
        rows = db.execute(f"SELECT body FROM entries WHERE seq IN ({marks})", seqs).fetchall()  # noqa: S608
    return [row[0] for row in rows]


def test_ct_assessment_releases_minimised_records(gateway: Deployment) -> None:
    subject = gateway.subjects["ct_subject"]
    response = gateway.disclose("politie", request("ct-assessment", subject))
    assert response.status_code == 200, response.text
    body = response.json()
    disclosure = body["disclosure"]
    assert disclosure["requester"] == "politie"
    assert disclosure["purpose"] == "ct-assessment"
    assert disclosure["id"].startswith("urn:uuid:")
    assert disclosure["policy_digest"].startswith("sha256:")
    results = results_by_dataset(response)
    residence = results["ind/residence"]
    assert residence["decision"] == "allow"
    assert residence["field_ops"]["name"] == "pseudonymise"
    assert residence["records"], "the CT subject is known to IND"
    record = residence["records"][0]
    # Exactly the fields the policy names, in the form it names.
    assert set(record) == set(residence["field_ops"]) - {
        f for f, op in residence["field_ops"].items() if op == "drop"
    }
    assert record["name"].startswith("psn:")
    assert len(record["date_of_birth"]) == 4
    assert "status_since" not in record  # not named by the register: dropped
    assert all(isinstance(r["audit_seq"], int) for r in results.values())
    # Nothing raw leaves: the subject's identifiers appear nowhere in the response.
    for value in subject.values():
        assert value not in response.text


def test_receipt_verifies_independently(gateway: Deployment) -> None:
    response = gateway.disclose("politie", request("ct-assessment", gateway.subjects["ct_subject"]))
    body = response.json()
    with gateway.client("politie") as client:
        jwks = client.get("/.well-known/jwks.json").json()
    assert verify_with_plain_cryptography(body["jws"], jwks) == body["disclosure"]
    assert verify_receipt(body["jws"], jwks) == body["disclosure"]
    # What is signed is the RFC 8785 form of exactly the disclosure the response carries.
    assert b64url_decode(body["jws"].split(".")[1]) == canonical_json(body["disclosure"])


def test_dataset_outside_the_grant_is_denied_with_reason(gateway: Deployment) -> None:
    body = request(
        "ct-assessment",
        gateway.subjects["ct_subject"],
        datasets=["ind/residence", "fiu/transactions"],
    )
    response = gateway.disclose("ind", body)
    assert response.status_code == 200
    results = results_by_dataset(response)
    assert results["ind/residence"]["decision"] == "allow"
    fiu = results["fiu/transactions"]
    assert fiu["decision"] == "deny"
    assert "records" not in fiu
    assert any("fiu/transactions" in reason for reason in fiu["reasons"])


def test_pseudonyms_are_stable_per_domain_and_unlinkable_across(gateway: Deployment) -> None:
    subject = gateway.subjects["ct_subject"]
    body = request("ct-assessment", subject, datasets=["ind/residence"])

    def name_pseudonym(partner: str) -> str:
        response = gateway.disclose(partner, body)
        assert response.status_code == 200, response.text
        return str(results_by_dataset(response)["ind/residence"]["records"][0]["name"])

    assert name_pseudonym("politie") == name_pseudonym("politie")
    assert name_pseudonym("politie") != name_pseudonym("kmar")


def test_vertrek_never_releases_security_data(gateway: Deployment) -> None:
    subject = gateway.subjects["departure_subject"]
    allowed = gateway.disclose("dtv", request("vertrek", subject))
    assert allowed.status_code == 200, allowed.text
    results = results_by_dataset(allowed)
    assert set(results) <= {"ind/residence", "dji/detention"}
    # Identity, residence and detention facts only: no criminal, financial or
    # intelligence field, and no BSN (not needed for departure).
    departure_fields = {
        "v_number",
        "name",
        "date_of_birth",
        "nationality",
        "residence_status",
        "lawful_residence",
        "status_since",
        "facility",
        "expected_release",
    }
    released = {field for r in results.values() for rec in r["records"] for field in rec}
    assert released
    assert released <= departure_fields
    refused = gateway.disclose(
        "dtv",
        request(
            "vertrek",
            subject,
            datasets=["aivd/ct-signals", "politie/incidents", "fiu/transactions"],
        ),
    )
    assert refused.status_code == 403
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "urn:doelpoort:problem:purpose-denied"
    assert len(problem["reasons"]) >= 3


def test_tf_screening_gives_the_bank_pseudonyms_and_an_indicator(gateway: Deployment) -> None:
    response = gateway.disclose(
        "voorbeeldbank", request("tf-screening", gateway.subjects["bank_customer"])
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["disclosure"]["results"]
    assert result["dataset"] == "fiu/transactions"
    for record in result["records"]:
        assert set(record) <= {"bsn", "iban", "tf_indicator"}
        assert all(str(record[k]).startswith("psn:") for k in ("bsn", "iban") if k in record)
        assert isinstance(record["tf_indicator"], bool)


def test_purpose_not_granted_is_403_and_logged(gateway: Deployment) -> None:
    response = gateway.disclose(
        "voorbeeldbank", request("ct-assessment", gateway.subjects["bank_customer"])
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["status"] == 403
    assert any("not granted to voorbeeldbank" in r for r in problem["reasons"])
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        (denials,) = db.execute(
            "SELECT count(*) FROM entries WHERE json_extract(body, '$.requester') = 'voorbeeldbank'"
            " AND json_extract(body, '$.decision') = 'deny'"
        ).fetchone()
    assert denials >= 1


def test_unknown_purpose_is_denied_and_logged(gateway: Deployment) -> None:
    response = gateway.disclose(
        "politie", request("no-such-purpose", gateway.subjects["ct_subject"])
    )
    assert response.status_code == 403
    assert any("no-such-purpose" in r for r in response.json()["reasons"])
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        (logged,) = db.execute(
            "SELECT count(*) FROM entries WHERE json_extract(body, '$.purpose') = 'no-such-purpose'"
            " AND json_extract(body, '$.decision') = 'deny'"
        ).fetchone()
    assert logged == 1


def test_pnr_request_is_minimised(gateway: Deployment) -> None:
    response = gateway.disclose("kmar", request("pnr-request", gateway.subjects["passenger"]))
    assert response.status_code == 200, response.text
    (result,) = response.json()["disclosure"]["results"]
    for record in result["records"]:
        assert "seat" not in record
        assert "payment_method" not in record
        assert record["name"].startswith("psn:")


def test_every_reported_decision_is_in_the_audit_log(gateway: Deployment) -> None:
    response = gateway.disclose("politie", request("ct-assessment", gateway.subjects["ct_subject"]))
    results = response.json()["disclosure"]["results"]
    bodies = audit_rows(gateway, [r["audit_seq"] for r in results])
    assert len(bodies) == len(results)
    disclosure_id = response.json()["disclosure"]["id"]
    assert all(disclosure_id in b for b in bodies)


def test_a_disclosure_is_answered_only_under_a_signed_checkpoint(gateway: Deployment) -> None:
    # Its entries were committed with the checkpoint that covers them: there is no
    # moment at which they are outside one, not even in the gateway's first second.
    response = gateway.disclose("politie", request("ct-assessment", gateway.subjects["ct_subject"]))
    assert response.status_code == 200, response.text
    newest = max(r["audit_seq"] for r in response.json()["disclosure"]["results"])
    with AuditReader(gateway.settings.audit_db_path) as reader:
        covered = max((c.size for c in reader.checkpoints()), default=0)
    assert covered >= newest


def test_unconfigured_partner_gets_403(gateway: Deployment) -> None:
    body = request("ct-assessment", gateway.subjects["ct_subject"])
    response = gateway.disclose(GHOST, body)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:doelpoort:problem:unknown-peer"
    with gateway.client(GHOST) as client:
        # Nor the side endpoints; and its body is not even looked at (no 415 or 413).
        for path in ("/openapi.json", "/.well-known/jwks.json"):
            assert client.get(path).status_code == 403, path
        refused = client.post("/v1/disclosures", content=b"x" * 100_000)
        assert refused.status_code == 403


def test_dpo_certificate_is_not_a_partner(gateway: Deployment) -> None:
    with gateway.dpo_client() as client:
        response = client.post(
            "/v1/disclosures", json=request("ct-assessment", gateway.subjects["ct_subject"])
        )
    assert response.status_code == 403


def test_no_client_certificate_fails_the_handshake(gateway: Deployment) -> None:
    with (
        httpx.Client(base_url=gateway.base_url, verify=gateway.ssl_context()) as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get("/healthz")


def test_identity_comes_from_the_certificate_only(gateway: Deployment) -> None:
    body = request("tf-screening", gateway.subjects["bank_customer"])
    body_with_claim = dict(body, requester="voorbeeldbank")
    with gateway.client("politie") as client:
        # A client cannot name itself: unknown fields are refused outright...
        assert client.post("/v1/disclosures", json=body_with_claim).status_code == 422
        # ...and headers claiming another identity change nothing.
        response = client.post(
            "/v1/disclosures",
            json=body,
            headers={"x-forwarded-client-cert": "urn:doelpoort:partner:voorbeeldbank"},
        )
    assert response.status_code == 403  # politie has no tf-screening grant


def test_jwks_health_and_readiness(gateway: Deployment) -> None:
    with gateway.client("politie") as client:
        jwks = client.get("/.well-known/jwks.json").json()
        assert jwks["keys"][0]["alg"] == "EdDSA"
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"policy_engine": True, "audit_store": True}
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/disclosures"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # A justification is the register's to require (requires_justification), not the API's.
    assert set(request_schema["required"]) == {"purpose", "case_ref", "subject"}
    assert "Subject" in document["components"]["schemas"]
    # Metrics are not the partners' to see (tests/test_ops.py).
    assert "/metrics" not in document["paths"]


def test_metrics_count_requests_and_decisions(gateway: Deployment) -> None:
    gateway.disclose("politie", request("ct-assessment", gateway.subjects["ct_subject"]))
    with gateway.ops_client() as client:
        text = client.get("/metrics").text
    assert 'doelpoort_requests_total{route="/v1/disclosures",status="200"}' in text
    assert 'doelpoort_decisions_total{outcome="allow"}' in text
    assert "doelpoort_policy_seconds_bucket" in text
    assert "doelpoort_audit_seconds_bucket" in text
    for value in gateway.subjects["ct_subject"].values():
        assert value not in text
