"""Re-identification overseen: an escrow leaves the gateway only after its release is a
committed audit entry; pseudonym search finds entries through the keyed index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from audit.entry import (
    AuditRecord,
    ReidentificationRecord,
    escrow_digest,
    record_from_body,
)
from audit.reader import AuditReader
from tests.audit.audit_support import fail_inserts, stop_failing
from tests.gateway_support import Deployment, make_settings, running_gateway

REASON = "complaint K-17 of the data subject, forwarded by the supervisor"


@dataclass(frozen=True)
class Released:
    gateway: Deployment
    seq: int  # an entry that released pseudonyms, with an escrow
    pseudonym: str  # one of them
    disclosure_id: str
    other_seq: int  # an entry of another request, released to another partner


def _ask(gateway: Deployment, partner: str, datasets: list[str]) -> Any:
    response = gateway.disclose(
        partner,
        {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0888",
            "justification": "escrow API test",
            "subject": gateway.subjects["ct_subject"],
            "datasets": datasets,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["disclosure"]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    settings = make_settings(tmp_path_factory.mktemp("escrows") / "var")
    with running_gateway(settings) as gateway:
        first = _ask(gateway, "politie", ["ind/residence"])
        (result,) = first["results"]
        pseudonym = result["records"][0]["name"]
        assert pseudonym.startswith("psn:")
        second = _ask(gateway, "kmar", ["ind/residence"])
        yield Released(
            gateway,
            result["audit_seq"],
            pseudonym,
            first["id"],
            second["results"][0]["audit_seq"],
        )


def _entries(gateway: Deployment) -> dict[int, bytes]:
    with AuditReader(gateway.settings.audit_db_path) as reader:
        return {e.seq: e.body for e in reader.iter_entries()}


def test_the_release_is_recorded_before_the_escrow_is_returned(released: Released) -> None:
    gateway = released.gateway
    with gateway.dpo_client() as dpo:
        response = dpo.post(f"/dpo/api/escrows/{released.seq}", json={"reason": REASON})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert answer["seq"] == answer["entry"]["seq"] == released.seq
    record = record_from_body(answer["entry"]["body"])
    assert isinstance(record, AuditRecord)
    assert record.escrow_sha256 == escrow_digest(answer["escrow"])
    entries = _entries(gateway)
    assert entries[released.seq] == answer["entry"]["body"].encode()
    release = record_from_body(entries[answer["reidentification_seq"]])
    assert isinstance(release, ReidentificationRecord)
    assert (release.dpo, release.entry_seq, release.disclosure_id, release.reason) == (
        "dpo",
        released.seq,
        released.disclosure_id,
        REASON,
    )
    assert (release.kind, release.decision) == ("reidentification", "reidentification")
    assert answer["reidentification_seq"] > released.seq


def test_no_release_when_the_audit_write_fails(released: Released) -> None:
    gateway = released.gateway
    before = _entries(gateway)
    fail_inserts(gateway.settings.audit_db_path)
    try:
        with gateway.dpo_client() as dpo:
            response = dpo.post(f"/dpo/api/escrows/{released.seq}", json={"reason": REASON})
        assert response.status_code == 503
        assert response.json()["type"] == "urn:doelpoort:problem:audit-unavailable"
        assert "escrow" not in response.json()
        assert "v1." not in response.text
    finally:
        stop_failing(gateway.settings.audit_db_path)
    assert _entries(gateway) == before
    with gateway.dpo_client() as dpo:  # the store recovers; the next release is recorded
        again = dpo.post(f"/dpo/api/escrows/{released.seq}", json={"reason": REASON})
    assert again.status_code == 200, again.text
    assert again.json()["reidentification_seq"] == max(before) + 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "schema"),
        ({"reason": "   "}, "schema"),
        ({"reason": "x" * 501}, "schema"),
        ({"reason": "who is BSN 999900997"}, "schema"),
        ({"reason": REASON, "pseudonym": "psn:x"}, "schema"),
    ],
)
def test_a_release_needs_a_reason_without_an_identifier(
    released: Released, body: dict[str, Any], detail: str
) -> None:
    before = _entries(released.gateway)
    with released.gateway.dpo_client() as dpo:
        response = dpo.post(f"/dpo/api/escrows/{released.seq}", json=body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]
    assert "999900997" not in response.text
    assert _entries(released.gateway) == before


def test_entries_without_an_escrow_to_release_get_a_clear_problem(released: Released) -> None:
    gateway = released.gateway
    with gateway.dpo_client() as dpo:
        missing = dpo.post("/dpo/api/escrows/999999", json={"reason": REASON})
        assert missing.status_code == 404
        assert "no entry 999999" in missing.json()["detail"]
        beyond = dpo.post(f"/dpo/api/escrows/{2**64}", json={"reason": REASON})
        assert beyond.status_code == 422
        # A re-identification entry is no disclosure: it has no escrow.
        last = max(_entries(gateway))
        if not isinstance(record_from_body(_entries(gateway)[last]), ReidentificationRecord):
            assert dpo.post(f"/dpo/api/escrows/{released.seq}", json={"reason": REASON})
            last = max(_entries(gateway))
        none = dpo.post(f"/dpo/api/escrows/{last}", json={"reason": REASON})
    assert none.status_code == 422
    problem = none.json()
    assert problem["type"] == "urn:doelpoort:problem:no-escrow"
    assert f"entry {last} records no disclosure" in problem["detail"]
    assert response_is_problem(none)


def response_is_problem(response: Any) -> bool:
    return bool(response.headers["content-type"] == "application/problem+json")


def test_a_partner_gets_403_and_nothing(released: Released) -> None:
    before = _entries(released.gateway)
    with released.gateway.client("politie") as partner:
        response = partner.post(f"/dpo/api/escrows/{released.seq}", json={"reason": REASON})
        assert response.status_code == 403
        assert response.json()["type"] == "urn:doelpoort:problem:dpo-only"
        query = {"pseudonym": released.pseudonym}
        assert partner.post("/dpo/api/search", json=query).status_code == 403
        assert partner.post("/dpo/search", data=query).status_code == 403
        assert partner.get("/dpo/search").status_code == 403
    after = _entries(released.gateway)
    # Its refusals are logged as such; no release.
    new = [record_from_body(after[seq]) for seq in sorted(set(after) - set(before))]
    assert all(r.decision == "refused" for r in new)
    assert len(new) == 4


# -- pseudonym search ---------------------------------------------------------------------


def test_a_pseudonym_leads_to_the_entries_that_released_it_only(released: Released) -> None:
    with released.gateway.dpo_client() as dpo:
        response = dpo.post("/dpo/api/search", json={"pseudonym": released.pseudonym})
    assert response.status_code == 200, response.text
    found = response.json()
    assert [e["seq"] for e in found["entries"]] == [released.seq]
    (entry,) = found["entries"]
    assert entry["requester"] == "politie"
    assert entry["purpose"] == "ct-assessment"
    assert entry["dataset"] == "ind/residence"
    assert entry["decision"] == "allow"
    assert entry["disclosure_id"] == released.disclosure_id
    assert entry["escrow"] == "sealed"
    assert entry["time"].endswith("Z")
    assert found["requests"] == 1
    # The same subject under kmar's domain has another pseudonym: not found by this one.
    assert released.other_seq not in [e["seq"] for e in found["entries"]]


def test_a_disclosure_id_leads_to_its_entries(released: Released) -> None:
    with released.gateway.dpo_client() as dpo:
        response = dpo.post("/dpo/api/search", json={"disclosure_id": released.disclosure_id})
    assert [e["seq"] for e in response.json()["entries"]] == [released.seq]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"pseudonym": "psn:zz"},
        {"pseudonym": "999900997"},
        {"disclosure_id": "urn:uuid:nope"},
        {"pseudonym": "psn:" + "0" * 32, "disclosure_id": "urn:uuid:" + "0" * 36},
    ],
)
def test_a_bad_search_gets_422(released: Released, body: dict[str, str]) -> None:
    with released.gateway.dpo_client() as dpo:
        response = dpo.post("/dpo/api/search", json=body)
        page = dpo.post("/dpo/search", data=body)
    assert response.status_code == 422
    assert "999900997" not in response.text
    assert page.status_code == 422
    assert "one of them" in page.text


def test_the_search_page(released: Released) -> None:
    with released.gateway.dpo_client() as dpo:
        form = dpo.get("/dpo/search")
        assert form.status_code == 200
        assert 'action="/dpo/search"' in form.text
        assert dpo.get("/dpo/api/search").json()["entries"] is None
        page = dpo.post("/dpo/search", data={"pseudonym": released.pseudonym})
    assert page.status_code == 200
    assert f"<td>{released.seq}</td>" in page.text
    assert "ct-assessment" in page.text
    assert "sealed" in page.text
