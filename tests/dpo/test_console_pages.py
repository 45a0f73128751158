"""The console's pages through their JSON twins (and a few of their HTML forms), over real
mutual TLS with the DPO's certificate, on a log seeded through the partner API."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.entry import AuditRecord, entry_leaf_hash, record_from_body
from audit.reader import AuditReader
from gateway.dpo.console import _escrow_status
from gateway.dpo.explanation import explain_entry
from gateway.dpo.integrity import IntegrityMonitor
from gateway.errors import PROBLEM_TYPE_PREFIX
from tests.audit.audit_support import attack
from tests.dpo.console_support import Seeded
from tests.gateway_support import Deployment

Console = tuple[Deployment, Seeded]


def get(deployment: Deployment, path: str, **params: Any) -> httpx.Response:
    with deployment.dpo_client() as dpo:
        return dpo.get(path, params=params)


def every_request(deployment: Deployment, **params: Any) -> list[dict[str, Any]]:
    """Every request the list shows for ``params``, page after page."""
    shown: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        page = get(
            deployment, "/dpo/api/requests", **params, **({"before": before} if before else {})
        )
        assert page.status_code == 200, page.text
        body = page.json()
        shown.extend(body["requests"])
        before = body["page"]["next_before"]
        if before is None:
            return shown


def all_records(deployment: Deployment) -> list[tuple[int, Any]]:
    with AuditReader(deployment.settings.audit_db_path) as reader:
        return [(e.seq, record_from_body(e.body)) for e in reader.iter_entries()]


def test_the_list_groups_entries_by_request_over_every_page(seeded_console: Console) -> None:
    deployment, seeded = seeded_console
    shown = every_request(deployment)
    keys = [request["key"] for request in shown]
    assert len(keys) == len(set(keys)), "no request twice across pages"
    assert len(shown) == seeded.disclosures + seeded.refusals
    seqs = [e["seq"] for request in shown for e in request["entries"]]
    assert sorted(seqs) == [seq for seq, _ in all_records(deployment)]
    times = [request["time"] for request in shown]
    assert times == sorted(times, reverse=True), "newest first"
    for request in shown:
        if request["kind"] == "decision":
            assert {e["kind"] for e in request["entries"]} == {"decision"}
            assert request["dataset_decisions"] == len(request["entries"])
            assert request["link"] == f"/dpo/requests/{request['disclosure_id']}"
        else:
            assert request["dataset_decisions"] == 0


def test_denials_are_counted_as_requests_and_as_entries(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    denied = every_request(deployment, decision="deny")
    denied_entries = [
        seq for seq, record in all_records(deployment) if getattr(record, "decision", "") == "deny"
    ]
    assert len(denied) < len(denied_entries)  # several denied datasets in one request
    assert sum(e["decision"] == "deny" for request in denied for e in request["entries"]) == len(
        denied_entries
    )
    page = get(deployment, "/dpo/api/requests", decision="deny").json()["page"]
    assert page["matching_entries"] <= page["entries"]


@pytest.mark.parametrize(
    ("name", "value", "holds"),
    [
        ("requester", "ind", lambda r: r["requester"] == "ind"),
        ("purpose", "vertrek", lambda r: r["purpose"] == "vertrek"),
        ("provider", "fiu", lambda r: any(e.get("provider") == "fiu" for e in r["entries"])),
        (
            "dataset",
            "fiu/transactions",
            lambda r: any(
                "fiu/transactions" in (e.get("dataset"), *e.get("datasets", ()))
                for e in r["entries"]
            ),
        ),
        ("decision", "refused", lambda r: r["kind"] in ("refusal", "refusal-summary")),
        ("kind", "refusal", lambda r: r["kind"] == "refusal"),
        (
            "refusal",
            "unknown-dataset",
            lambda r: r["entries"][0].get("problem") == "unknown-dataset",
        ),
        ("refusal", "dpo-only", lambda r: r["entries"][0].get("problem") == "dpo-only"),
        ("refusal", "policy", lambda r: any(e["decision"] == "deny" for e in r["entries"])),
        ("case_ref", "DEMO-2026-0002", lambda r: r["case_ref"] == "DEMO-2026-0002"),
    ],
)
def test_each_filter_selects_what_it_names(
    seeded_console: Console, name: str, value: str, holds: Any
) -> None:
    deployment, _seeded = seeded_console
    shown = every_request(deployment, **{name: value})
    assert shown, f"the seeded log has requests for {name}={value}"
    assert all(holds(request) for request in shown)
    assert len(shown) < len(every_request(deployment))


def test_period_and_policy_digest_filters(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    everything = every_request(deployment)
    digest = deployment.runtime.engine.digest
    by_digest = every_request(deployment, policy_digest=digest)
    assert {r["kind"] for r in by_digest} == {"decision"}
    assert len(by_digest) == sum(r["kind"] == "decision" for r in everything)
    assert every_request(deployment, policy_digest="sha256:" + "0" * 64) == []
    oldest = min(r["time"] for r in everything)
    assert every_request(deployment, until=oldest) == []
    assert len(every_request(deployment, since=oldest)) == len(everything)
    assert len(every_request(deployment, since=oldest[:10])) == len(everything)  # a date


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"kind": "decisions"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-12-01T10:00:00"}, "since"),  # no offset: which zone?
        ({"since": "2026-12-02", "until": "2026-12-01"}, "since"),
        ({"requester": "Politie"}, "requester"),
        ({"dataset": "fiu"}, "dataset"),
        ({"policy_digest": "sha256:abc"}, "policy_digest"),
        ({"case_ref": "x" * 200}, "case_ref"),
        ({"case_ref": "111222333"}, "case_ref"),  # a BSN typed into the box: never echoed
        ({"refusal": "<script>"}, "refusal"),
        ({"before": "0"}, "before"),
        ({"before": "-3"}, "before"),
        ({"before": "²"}, "before"),
        ({"before": "9" * 30}, "before"),
    ],
)
def test_a_bad_filter_value_is_a_422_never_a_500(
    seeded_console: Console, params: dict[str, str], names: str
) -> None:
    deployment, _seeded = seeded_console
    response = get(deployment, "/dpo/api/requests", **params)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE_PREFIX + "invalid-request"
    assert names in problem["detail"]
    for value in params.values():
        if len(value) > 3:
            assert value not in problem["detail"], "the value is not echoed"
    page = get(deployment, "/dpo/requests", **params)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert names in page.text
    assert "<script>" not in page.text


def test_a_request_and_its_entries(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    (request,) = every_request(deployment, case_ref="DEMO-2026-0002")
    detail = get(deployment, request["link"].replace("/dpo/", "/dpo/api/", 1))
    assert detail.status_code == 200
    shown = detail.json()["request"]
    assert shown["requester"] == "ind"
    assert shown["legal_basis"]
    assert shown["policy_digest"] == deployment.runtime.engine.digest
    decisions = {e["dataset"]: e["decision"] for e in shown["entries"]}
    assert decisions["fiu/transactions"] == "deny"
    assert "allow" in decisions.values()
    html = get(deployment, request["link"])
    assert html.status_code == 200
    assert "fiu/transactions" in html.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/dpo/api/requests/urn:uuid:00000000-0000-4000-8000-000000000000", 404),
        ("/dpo/api/requests/not-a-uuid", 422),
        ("/dpo/api/entries/999999", 404),
        ("/dpo/api/entries/0", 422),
        ("/dpo/api/entries/seven", 422),
        ("/dpo/api/policy-sets/sha256:" + "0" * 64, 404),
        ("/dpo/api/policy-sets/latest", 422),
        ("/dpo/entries/999999", 404),
        ("/dpo/policy-sets/latest", 422),
    ],
)
def test_what_is_not_there_or_not_well_formed(
    seeded_console: Console, path: str, status: int
) -> None:
    deployment, _seeded = seeded_console
    response = get(deployment, path)
    assert response.status_code == status, response.text
    if "/api/" in path:
        assert response.headers["content-type"] == "application/problem+json"
    else:
        assert response.headers["content-type"].startswith("text/html")


def test_an_allowed_entry_is_explained_by_its_archived_policy_set(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    seq = next(
        seq
        for seq, record in all_records(deployment)
        if isinstance(record, AuditRecord) and record.decision == "allow" and record.escrow_sha256
    )
    entry = get(deployment, f"/dpo/api/entries/{seq}").json()
    assert entry["seq"] == seq
    assert entry["record"]["policy_input"]["purpose"] == entry["record"]["purpose"]
    explanation = entry["explanation"]
    assert explanation["status"] == "explained"
    assert explanation["decision"] == "allow"
    assert explanation["reproduced"] is True
    released = {f["field"]: f["op"] for f in explanation["explanation"]["fields"] if f["op"]}
    assert released == {k: v for k, v in entry["record"]["field_ops"].items() if v != "drop"}
    digests = entry["digests"]
    assert digests["policy_digest"] == deployment.runtime.engine.digest
    assert digests["records_sha256"] == entry["record"]["records_sha256"]
    assert digests["escrow_sha256"].startswith("sha256:")
    assert entry["escrow"]["status"] == "held"
    assert entry["policy_set_link"] == f"/dpo/policy-sets/{digests['policy_digest']}"
    with AuditReader(deployment.settings.audit_db_path) as reader:
        sizes = [c.size for c in reader.checkpoints()]
        stored = next(e for e in reader.iter_entries(seq))
    assert digests["leaf_hash"] == entry_leaf_hash(seq, stored.prev, stored.body).hex()
    assert entry["checkpoint"]["size"] == min(size for size in sizes if size >= seq)


def test_a_denied_entry_names_the_rule_of_its_reason(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    seq, record = next(
        (seq, record)
        for seq, record in all_records(deployment)
        if isinstance(record, AuditRecord) and record.decision == "deny"
    )
    explanation = get(deployment, f"/dpo/api/entries/{seq}").json()["explanation"]
    assert explanation["status"] == "explained"
    assert explanation["reproduced"] is True
    denials = explanation["explanation"]["denials"]
    assert [d["reason"] for d in denials] == record.reasons
    assert all(d["rules"] for d in denials)
    page = get(deployment, f"/dpo/entries/{seq}")
    assert "<dt>Denied</dt>" in page.text
    assert denials[0]["rules"][0] in page.text


def test_a_refusal_entry_has_no_decision_to_explain(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    seq = next(
        seq for seq, record in all_records(deployment) if getattr(record, "kind", "") == "refusal"
    )
    entry = get(deployment, f"/dpo/api/entries/{seq}").json()
    assert entry["kind"] == "refusal"
    assert "explanation" not in entry
    assert entry["checkpoint"]["size"] >= seq
    assert get(deployment, f"/dpo/entries/{seq}").status_code == 200


def test_an_entry_whose_policy_set_is_not_archived(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    record = next(
        record for _seq, record in all_records(deployment) if isinstance(record, AuditRecord)
    )
    foreign = dataclasses.replace(record, policy_digest="sha256:" + "1" * 64)
    found = asyncio.run(explain_entry(deployment.settings.audit_db_path, 1, foreign))
    assert found["status"] == "not-archived"
    assert "older than the archive" in found["detail"]
    bare = dataclasses.replace(record, policy_input={})
    assert asyncio.run(explain_entry(deployment.settings.audit_db_path, 1, bare))["status"] == (
        "no-input"
    )


def test_escrow_status_held_erased_or_missing(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    record = next(
        record
        for _seq, record in all_records(deployment)
        if isinstance(record, AuditRecord) and record.escrow_sha256
    )
    assert _escrow_status(record, held=True)["status"] == "held"
    # Its retention has not ended: an escrow gone now was not erased by the gateway.
    assert _escrow_status(record, held=False)["status"] == "missing"
    ended = dataclasses.replace(record, escrow_expires=1)
    erased = _escrow_status(ended, held=False)
    assert erased["status"] == "erased"
    assert "1970-01-01" in erased["text"]
    none = dataclasses.replace(record, escrow_sha256=None, escrow_expires=None)
    assert _escrow_status(none, held=False)["status"] == "none"


def test_the_policy_set_page_shows_the_archived_files(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    digest = deployment.runtime.engine.digest
    shown = get(deployment, f"/dpo/api/policy-sets/{digest}").json()
    paths = [f["path"] for f in shown["files"]]
    assert "register.yaml" in paths
    assert "catalog.json" in paths
    assert any(path.endswith(".rego") for path in paths)
    assert shown["serving"] is True
    register = next(f["text"] for f in shown["files"] if f["path"] == "register.yaml")
    assert register == (deployment.settings.policies_dir / "register.yaml").read_text()
    page = get(deployment, f"/dpo/policy-sets/{digest}")
    assert "register.yaml" in page.text


def test_the_overview_counts_requests_and_dataset_decisions(seeded_console: Console) -> None:
    deployment, seeded = seeded_console
    overview = get(deployment, "/dpo/api/").json()
    records = all_records(deployment)
    assert overview["log"]["entries"] == len(records)
    assert overview["log"]["latest_checkpoint"]["size"] == len(records)
    today = overview["periods"][0]
    assert today["label"] == "today"
    decisions = [r for _seq, r in records if isinstance(r, AuditRecord)]
    assert today["dataset_decisions"] == len(decisions)
    assert today["requests"] == seeded.disclosures + seeded.refusals
    assert today["refused_requests"] == seeded.refusals
    assert overview["periods"][1]["label"] == "this week"


def test_verify_now_runs_a_verification_of_the_whole_log(seeded_console: Console) -> None:
    deployment, seeded = seeded_console
    with deployment.dpo_client() as dpo:
        started = dpo.post("/dpo/api/integrity/verify")
        assert started.status_code == 202
        assert started.json()["trigger"] == "dpo"
        integrity: IntegrityMonitor = deployment.app.state.dpo_integrity
        integrity.wait(timeout=60)
        status = dpo.get("/dpo/api/integrity").json()
        form = dpo.post("/dpo/integrity/verify")
    verification = status["verification"]
    assert verification["intact"] is True
    assert verification["entries"] == deployment.runtime.audit.size
    assert verification["checkpoints"] >= 1
    assert verification["trigger"] == "dpo"
    assert status["latest_checkpoint"]["size"] == deployment.runtime.audit.size
    (cosigned,) = status["cosignatures"]
    assert cosigned["witness"] == seeded.witness
    assert cosigned["size"] == seeded.cosigned_size
    assert cosigned["line"].startswith(f"— {seeded.witness} ")
    assert form.status_code == 303
    assert form.headers["location"] == "/dpo/integrity"


def test_another_sites_form_cannot_start_a_verification(seeded_console: Console) -> None:
    deployment, _seeded = seeded_console
    with deployment.dpo_client() as dpo:
        response = dpo.post("/dpo/integrity/verify", headers={"origin": "https://evil.example"})
        same_site = dpo.post("/dpo/integrity/verify", headers={"origin": deployment.base_url})
    assert response.status_code == 403
    assert same_site.status_code == 303


def test_a_changed_entry_is_named_as_the_first_bad_seq(
    seeded_console: Console, tmp_path: Path
) -> None:
    deployment, _seeded = seeded_console
    denied = next(
        seq for seq, record in all_records(deployment) if getattr(record, "decision", "") == "deny"
    )
    copy = tmp_path / "audit.sqlite3"
    with (
        sqlite3.connect(deployment.settings.audit_db_path) as live,
        sqlite3.connect(copy) as target,
    ):
        live.backup(target)
    # As an attacker with file access would: past the append-only triggers.
    attack(copy, "UPDATE entries SET body = replace(body, 'deny', 'allow') WHERE seq = ?", denied)
    checker = IntegrityMonitor(copy, deployment.settings.keys_dir, deployment.settings.origin)
    checker.start("dpo")
    result = checker.wait(timeout=60)
    assert result is not None
    assert result.intact is False
    assert result.first_bad_seq == denied
    assert result.failure
    missing = IntegrityMonitor(
        tmp_path / "none.sqlite3", deployment.settings.keys_dir, deployment.settings.origin
    )
    missing.start("dpo")
    gone = missing.wait(timeout=60)
    assert gone is not None
    assert gone.intact is False
    assert gone.first_bad_seq is None
