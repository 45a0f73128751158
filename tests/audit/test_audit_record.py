"""The audit record's canonical body and the leaf bytes of a stored entry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.clock import rfc3339_micro
from audit.entry import (
    GENESIS_PREV,
    AuditRecord,
    LogRecord,
    PolicyChangeRecord,
    RefusalRecord,
    RefusalSummaryRecord,
    entry_leaf_hash,
    leaf_bytes,
    record_from_body,
)
from audit.hasher import leaf_hash
from tests.audit.audit_support import make_record, open_store, verify


def test_body_is_canonical_json_with_every_field() -> None:
    record = make_record(7, field_ops={"z": "keep", "a": "drop"}, reasons=["é", "b"])
    body = record.body()
    content = json.loads(body)
    assert set(content) == {
        "time", "disclosure_id", "requester", "provider", "dataset", "purpose",
        "legal_basis", "case_ref", "decision", "reasons", "field_ops", "record_count",
        "subject_refs", "policy_digest", "records_sha256", "retention_days", "error",
        "policy_input", "escrow_sha256", "escrow_expires", "subject_ref_key", "pseudonym_refs",
    }  # fmt: skip
    # RFC 8785: keys sorted, no whitespace, UTF-8 not escaped, list order kept.
    assert (
        body
        == json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert b'"field_ops":{"a":"drop","z":"keep"}' in body
    assert '"reasons":["é","b"]'.encode() in body


def test_body_is_stable_and_round_trips() -> None:
    record = make_record(3)
    assert record.body() == make_record(3).body()
    assert AuditRecord.from_body(record.body()) == record


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("decision", "maybe"),
        ("time", "2026-11-22T10:00:00+01:00"),
        ("time", "yesterdayZ"),
        ("record_count", -1),
    ],
)
def test_invalid_records_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        make_record(0, **{field: value})


def test_rfc3339_micro_is_rfc3339_utc() -> None:
    moment = datetime(2026, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339_micro(moment) == "2026-11-22T10:00:00.000000Z"
    assert rfc3339_micro(datetime(2026, 1, 1, tzinfo=UTC)).endswith("Z")
    with pytest.raises(ValueError, match="timezone"):
        rfc3339_micro(datetime(2026, 1, 1))


def test_leaf_bytes_layout() -> None:
    prev = bytes(range(32))
    leaf = leaf_bytes(258, prev, b"{}")
    assert leaf == b"\x00\x00\x00\x00\x00\x00\x01\x02" + prev + b"{}"
    assert leaf_bytes(1, GENESIS_PREV, b"x")[8:40] == bytes(32)
    assert entry_leaf_hash(258, prev, b"{}") == leaf_hash(leaf)


@pytest.mark.parametrize(("seq", "prev"), [(0, bytes(32)), (1, bytes(31)), (1, bytes(33))])
def test_leaf_bytes_refuses_bad_seq_or_prev(seq: int, prev: bytes) -> None:
    with pytest.raises(ValueError, match=r"seq|prev"):
        leaf_bytes(seq, prev, b"{}")


def refusal(**overrides: Any) -> RefusalRecord:
    content: dict[str, Any] = {
        "time": "2026-11-22T10:00:00Z",
        "requester": "politie",
        "problem": "unknown-dataset",
        "status": 422,
        "method": "POST",
        "route": "/v1/disclosures",
        "purpose": "ct-assessment",
        "datasets": ["nobody/nothing"],
    }
    return RefusalRecord(**(content | overrides))


def summary(**overrides: Any) -> RefusalSummaryRecord:
    content: dict[str, Any] = {
        "time": "2026-11-22T10:01:00Z",
        "requester": "politie",
        "interval_start": "2026-11-22T10:00:00Z",
        "interval_end": "2026-11-22T10:01:00Z",
        "counts": {"invalid-request": 440},
    }
    return RefusalSummaryRecord(**(content | overrides))


def test_refusal_entries_are_their_own_kind_and_read_back() -> None:
    for record in (refusal(), summary()):
        content = json.loads(record.body())
        assert content["kind"] == record.kind
        assert content["decision"] == "refused"  # the DPO's decision filter finds them
        assert record_from_body(record.body()) == record
    assert set(json.loads(refusal().body())) == {
        "time", "kind", "decision", "requester", "problem", "status", "method", "route",
        "purpose", "datasets", "unrecorded_names",
    }  # fmt: skip


def test_decision_bodies_read_back_as_before() -> None:
    # Bodies written before refusals existed have no kind: they are decisions.
    record = make_record(5)
    assert "kind" not in json.loads(record.body())
    assert record_from_body(record.body()) == record
    assert AuditRecord.from_body(record.body()) == record


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"kind": "gossip", "time": "2026-11-22T10:00:00Z"}', b'{"kind": "refusal"}'],
)
def test_bodies_of_no_known_kind_are_refused(body: bytes) -> None:
    with pytest.raises((ValueError, TypeError)):
        record_from_body(body)


@pytest.mark.parametrize(
    ("make", "field", "value"),
    [
        (refusal, "status", 503),
        (refusal, "decision", "allow"),
        (refusal, "kind", "refusal-summary"),
        (refusal, "time", "yesterdayZ"),
        (refusal, "unrecorded_names", -1),
        (summary, "counts", {}),
        (summary, "counts", {"invalid-request": 0}),
        (summary, "interval_end", "2026-11-22T10:01:00+01:00"),
    ],
)
def test_invalid_refusal_records_are_refused(make: Any, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        make(**{field: value})


def test_refusal_entries_are_chained_verified_and_filtered_like_decisions(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", Ed25519PrivateKey.generate()
    with open_store(db, key) as store:
        records: list[LogRecord] = [make_record(1), refusal(), summary()]
        assert asyncio.run(store.append(records)) == [1, 2, 3]
    report = verify(db, key)  # raises when the log is not intact
    assert report.entries == 3
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT requester, purpose, dataset, decision FROM entries ORDER BY seq"
        ).fetchall()
    assert rows == [
        ("politie", "ct-assessment", "ind/residence", "allow"),
        ("politie", "ct-assessment", None, "refused"),
        ("politie", None, None, "refused"),
    ]


# --- policy changes (gateway/policy_switch.py) -----------------------------------------

OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64


def policy_change(**overrides: Any) -> PolicyChangeRecord:
    content: dict[str, Any] = {
        "time": "2026-11-22T10:02:00Z",
        "trigger": "sighup",
        "source": "directory",
        "outcome": "swapped",
        "old_digest": OLD,
        "new_digest": NEW,
    }
    return PolicyChangeRecord(**(content | overrides))


def test_policy_changes_are_their_own_kind_and_read_back() -> None:
    refused = policy_change(
        outcome="refused", trigger="file-change", reasons=["doelpoort/deny.rego:3:1: syntax"]
    )
    for record in (policy_change(), refused):
        content = json.loads(record.body())
        assert content["kind"] == content["decision"] == "policy-change"
        assert record_from_body(record.body()) == record
    assert set(json.loads(refused.body())) == {
        "time", "kind", "decision", "trigger", "source", "outcome", "old_digest",
        "new_digest", "reasons",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome", "maybe"),
        ("kind", "refusal"),
        ("decision", "refused"),
        ("new_digest", None),  # a swap to no policy set
        ("reasons", ["a swap has no reasons"]),
        ("old_digest", ""),
        ("time", "2026-11-22T10:02:00+01:00"),
    ],
)
def test_invalid_policy_change_records_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=r"policy change|swap|outcome|time"):
        policy_change(**{field: value})


def test_a_refused_policy_change_says_why() -> None:
    with pytest.raises(ValueError, match="reasons"):
        policy_change(outcome="refused", new_digest=None)
    assert policy_change(outcome="refused", new_digest=None, reasons=["no"]).new_digest is None


def test_policy_changes_are_chained_verified_and_filtered(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", Ed25519PrivateKey.generate()
    with open_store(db, key) as store:
        assert asyncio.run(store.append([make_record(1), policy_change()])) == [1, 2]
    assert verify(db, key).entries == 2
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT requester, decision FROM entries ORDER BY seq").fetchall()
    assert rows == [("politie", "allow"), (None, "policy-change")]
