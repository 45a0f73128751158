"""Purposes bound to the subject and the request, over the real mTLS API.

vertrek (LAOV) requires the fact ``no_lawful_residence``, which IND's residence data
declare (connectors/ind.yaml): a lawful resident is refused, a subject IND does not know
gets the very same refusal, a subject without lawful residence gets the data. A provider
failure while fetching the fact fails the request closed. Also: the register's
``requires_justification`` both ways, and its per-requester field ops (the NCTV gets no
amounts).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from gateway.settings import Settings
from tests.gateway_support import Deployment, copy_tree, make_settings, running_gateway

NOT_MET = "the subject does not meet the conditions of purpose vertrek"


def request(purpose: str, subject: dict[str, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purpose": purpose,
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": subject,
    }
    body.update(extra)
    return body


def entries(gateway: Deployment, requester: str, purpose: str) -> list[dict[str, Any]]:
    with sqlite3.connect(gateway.settings.audit_db_path) as db:
        rows = db.execute(
            "SELECT body FROM entries WHERE json_extract(body, '$.requester') = ?"
            " AND json_extract(body, '$.purpose') = ? ORDER BY seq",
            (requester, purpose),
        ).fetchall()
    return [json.loads(body) for (body,) in rows]


# --- subject facts ---------------------------------------------------------------------


def test_a_subject_without_lawful_residence_gets_the_departure_data(gateway: Deployment) -> None:
    response = gateway.disclose("dtv", request("vertrek", gateway.subjects["departure_subject"]))
    assert response.status_code == 200, response.text
    results = {r["dataset"]: r for r in response.json()["disclosure"]["results"]}
    assert results["ind/residence"]["decision"] == "allow"
    [residence] = results["ind/residence"]["records"]
    assert residence["lawful_residence"] is False
    assert results["dji/detention"]["records"]


def test_a_lawful_resident_and_an_unknown_subject_get_the_same_refusal(
    gateway: Deployment,
) -> None:
    lawful = gateway.subjects["lawful_resident"]
    unknown = gateway.subjects["unknown_subject"]
    assert lawful.keys() == unknown.keys() == {"bsn"}  # the same keys: only the subject differs
    refused = gateway.disclose("dtv", request("vertrek", lawful))
    not_known = gateway.disclose("dtv", request("vertrek", unknown))
    assert refused.status_code == not_known.status_code == 403
    assert refused.headers["content-type"] == not_known.headers["content-type"]
    # The problem documents carry no ids: the whole body is the same.
    assert refused.json() == not_known.json()
    problem = refused.json()
    assert problem["type"] == "urn:doelpoort:problem:purpose-denied"
    assert problem["reasons"] == [NOT_MET]
    for value in (*lawful.values(), *unknown.values()):
        assert value not in refused.text


def test_the_kmar_cannot_switch_to_vertrek_for_a_lawful_residents_identity(
    gateway: Deployment,
) -> None:
    # The case: under ct-assessment the KMar gets pseudonyms; under vertrek it
    # would have got name, date of birth and nationality in clear.
    subject = gateway.subjects["lawful_resident"]
    assessed = gateway.disclose("kmar", request("ct-assessment", subject))
    assert assessed.status_code == 200, assessed.text
    switched = gateway.disclose("kmar", request("vertrek", subject))
    assert switched.status_code == 403
    assert switched.json()["reasons"] == [NOT_MET]


def test_a_refusal_for_a_fact_is_logged_per_dataset_with_the_boolean_only(
    gateway: Deployment,
) -> None:
    subject = gateway.subjects["lawful_resident"]
    body = request("vertrek", subject, case_ref="CTI-2026-0713")
    assert gateway.disclose("dji", body).status_code == 403
    logged = [e for e in entries(gateway, "dji", "vertrek") if e["case_ref"] == "CTI-2026-0713"]
    assert {e["dataset"] for e in logged} == {"ind/residence", "dji/detention"}
    for entry in logged:
        assert entry["decision"] == "deny"
        assert entry["reasons"] == [NOT_MET]
        assert entry["policy_input"]["subject_facts"] == {"no_lawful_residence": False}
        text = json.dumps(entry)
        for value in subject.values():
            assert value not in text


def test_no_fact_is_fetched_for_a_requester_without_the_purpose(gateway: Deployment) -> None:
    body = request("vertrek", gateway.subjects["departure_subject"], case_ref="CTI-2026-0714")
    response = gateway.disclose("politie", body)
    assert response.status_code == 403
    assert response.json()["reasons"] == ["purpose vertrek is not granted to politie"]
    logged = [e for e in entries(gateway, "politie", "vertrek") if e["case_ref"] == "CTI-2026-0714"]
    assert logged
    assert all(e["policy_input"]["subject_facts"] == {} for e in logged)


# --- requires_justification ------------------------------------------------------------


@pytest.mark.parametrize("justification", [None, "", "   "])
def test_a_purpose_requiring_a_justification_refuses_a_request_without_one(
    gateway: Deployment, justification: str | None
) -> None:
    body = request("ct-assessment", gateway.subjects["ct_subject"])
    if justification is None:
        del body["justification"]
    else:
        body["justification"] = justification
    response = gateway.disclose("politie", body)
    assert response.status_code == 403, response.text
    assert response.json()["reasons"] == ["purpose ct-assessment requires a justification"]


# --- the register's per-requester field ops --------------------------------------------


def test_the_nctv_gets_transactions_without_amounts(gateway: Deployment) -> None:
    body = request("ct-assessment", gateway.subjects["ct_subject"], datasets=["fiu/transactions"])
    released = {}
    for partner in ("nctv", "politie"):
        response = gateway.disclose(partner, body)
        assert response.status_code == 200, response.text
        [result] = response.json()["disclosure"]["results"]
        assert result["records"]
        released[partner] = {field for record in result["records"] for field in record}
        assert (result["field_ops"]["amount_eur"] == "drop") is (partner == "nctv")
    assert "amount_eur" in released["politie"]
    assert "amount_eur" not in released["nctv"]
    assert released["nctv"] == released["politie"] - {"amount_eur"}


# --- a deployment whose fact provider is down, and whose CT Infobox needs no reason -------


@pytest.fixture(scope="module")
def altered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo deployment with two changes: ct-assessment does not require a
    justification, and IND's residence records (the source of vertrek's fact) are gone."""
    root = tmp_path_factory.mktemp("altered")
    policies = copy_tree("policies", root)
    path = policies / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    register["purposes"]["ct-assessment"]["requires_justification"] = False
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")

    def remove_ind_records(settings: Settings) -> None:
        (settings.demo_data_dir / "ind-residence.jsonl").unlink()

    settings = make_settings(root / "var", policies_dir=policies)
    with running_gateway(settings, before_start=remove_ind_records) as deployment:
        yield deployment


@pytest.mark.parametrize("justification", [None, "", "test: necessary"])
def test_a_purpose_not_requiring_a_justification_allows_a_request_without_one(
    altered: Deployment, justification: str | None
) -> None:
    body = request(
        "ct-assessment", altered.subjects["ct_subject"], datasets=["kmar/border-crossings"]
    )
    if justification is None:
        del body["justification"]
    else:
        body["justification"] = justification
    response = altered.disclose("politie", body)
    assert response.status_code == 200, response.text
    [result] = response.json()["disclosure"]["results"]
    assert result["decision"] == "allow"
    assert result["records"]


def test_a_provider_failure_while_fetching_a_fact_fails_the_request_closed(
    altered: Deployment,
) -> None:
    subject = altered.subjects["departure_subject"]
    body = request("vertrek", subject, case_ref="CTI-2026-0715")
    response = altered.disclose("dtv", body)
    # The connector's own error, as for a dataset withheld; never a 500, never data.
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["type"] == "urn:doelpoort:problem:connector-unavailable"
    assert "ind/residence" in problem["detail"]
    assert "records" not in response.text
    for value in subject.values():
        assert value not in response.text
    # Logged per dataset as an error: dji/detention was not fetched, let alone disclosed.
    logged = [e for e in entries(altered, "dtv", "vertrek") if e["case_ref"] == "CTI-2026-0715"]
    assert {e["dataset"] for e in logged} == {"ind/residence", "dji/detention"}
    for entry in logged:
        assert entry["decision"] == "error"
        assert entry["error"] == "connector-unavailable"
        assert entry["records_sha256"] is None
        assert entry["record_count"] == 0
        assert "a fact purpose vertrek requires could not be fetched" in entry["reasons"]
    assert any("subject fact from ind/residence unavailable" in line for line in altered.log.lines)
    for line in altered.log.lines:
        for value in subject.values():
            assert value not in line
