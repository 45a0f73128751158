"""The audit record's canonical body and the leaf bytes of a stored entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.clock import rfc3339_micro
from audit.entry import GENESIS_PREV, AuditRecord, entry_leaf_hash, leaf_bytes
from audit.hasher import leaf_hash
from tests.audit.audit_support import make_record


def test_body_is_canonical_json_with_every_field() -> None:
    record = make_record(7, field_ops={"z": "keep", "a": "drop"}, reasons=["é", "b"])
    body = record.body()
    content = json.loads(body)
    assert set(content) == {
        "time", "disclosure_id", "requester", "provider", "dataset", "purpose",
        "legal_basis", "case_ref", "decision", "reasons", "field_ops", "record_count",
        "subject_refs", "policy_digest", "records_sha256", "retention_days", "error",
        "policy_input", "escrow_sha256", "escrow_expires",
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
