"""The console's exports over real mTLS: the filter page and its twin, streamed downloads
of a filtered selection in each format, 4xx for bad filters, 403 for a partner."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from audit.clock import rfc3339, utc_now
from tests.gateway_support import Deployment


def disclosure(purpose: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": subject,
    }


@pytest.fixture(scope="module")
def since(gateway: Deployment) -> str:
    """A moment before two fresh disclosure requests: one released, one refused."""
    moment = rfc3339(utc_now())
    ok = gateway.disclose("politie", disclosure("ct-assessment", gateway.subjects["ct_subject"]))
    assert ok.status_code == 200, ok.text
    refused = gateway.disclose(
        "voorbeeldbank", disclosure("ct-assessment", gateway.subjects["bank_customer"])
    )
    assert refused.status_code == 403
    return moment


def test_jsonl_of_a_filtered_selection(gateway: Deployment, since: str) -> None:
    with gateway.dpo_client() as dpo:
        response = dpo.get(
            "/dpo/exports/jsonl", params={"since": since, "requester": "voorbeeldbank"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == (
        'attachment; filename="doelpoort-audit.jsonl"'
    )
    entries = [json.loads(line) for line in response.text.splitlines()]
    assert entries, "the refused request's decisions are in the selection"
    assert {e["requester"] for e in entries} == {"voorbeeldbank"}
    assert {e["decision"] for e in entries} == {"deny"}
    assert all(len(e["leaf_hash"]) == 64 and e["seq"] > 0 for e in entries)
    assert all(e["time"] >= since for e in entries)


def test_csv_and_logboek_of_the_same_selection(gateway: Deployment, since: str) -> None:
    params = {"since": since, "requester": "politie", "decision": "allow"}
    with gateway.dpo_client() as dpo:
        as_csv = dpo.get("/dpo/exports/csv", params=params)
        as_logboek = dpo.get("/dpo/exports/logboek", params=params)
    assert as_csv.status_code == as_logboek.status_code == 200
    rows = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    assert rows
    assert {(row["requester"], row["decision"]) for row in rows} == {("politie", "allow")}
    records = [json.loads(line) for line in as_logboek.text.splitlines()]
    spans = {r["span_id"] for r in records if "parent_span_id" not in r}
    assert len(spans) == len(rows)  # one Logboek record per entry (plus subject children)
    assert {r["status"] for r in records} == {"Ok"}
    assert len({r["trace_id"] for r in records}) == 1  # one request
    for record in records:
        assert record["attributes"]["dpl.core.data_subject_id_type"] == "dpo-subject-ref"
        assert record["attributes"]["dpl.core.processing_activity_id"].endswith("#ct-assessment")


def test_the_exports_page_and_its_twin(gateway: Deployment) -> None:
    with gateway.dpo_client() as dpo:
        page = dpo.get("/dpo/exports", params={"requester": "politie"})
        twin = dpo.get("/dpo/api/exports", params={"requester": "politie"})
    assert page.status_code == 200
    assert 'formaction="/dpo/exports/logboek"' in page.text
    assert 'href="/dpo/exports/csv?requester=politie"' in page.text
    assert twin.json()["filters"] == {"requester": "politie"}
    assert [f["format"] for f in twin.json()["formats"]] == ["jsonl", "csv", "logboek"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/dpo/exports/xml", 422),
        ("/dpo/exports/jsonl?since=yesterday", 422),
        ("/dpo/exports/jsonl?until=2026-01-01T10:00:00", 422),
        ("/dpo/exports/jsonl?case_ref=111222333", 422),
    ],
)
def test_bad_formats_and_filters_are_4xx(gateway: Deployment, path: str, status: int) -> None:
    with gateway.dpo_client() as dpo:
        response = dpo.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ["/dpo/exports", "/dpo/api/exports", "/dpo/exports/jsonl"])
def test_a_partner_gets_403_on_every_export_route(gateway: Deployment, path: str) -> None:
    with gateway.client("politie") as partner:
        response = partner.get(path)
    assert response.status_code == 403
    assert response.json()["type"].endswith("dpo-only")
