"""Exports: JSONL, CSV (RFC 4180) and Logboek Dataverwerkingen records, streamed in
constant memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import entry_leaf_hash
from audit.export import (
    CSV_COLUMNS,
    SUBJECT_ID_TYPE,
    export_csv,
    export_jsonl,
    export_logboek,
)
from audit.query import EntryFilter, LoggedEntry, iter_selection
from audit.reader import AuditReader
from bench.seed_log import seed_log
from tests.audit.audit_support import ORIGIN
from tests.audit.log_builder import DIGEST_A, LogBuilder

TIME = "2026-03-04T12:00:00Z"
NOW = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builder = LogBuilder()
    builder.request(
        TIME,
        decisions=(("ind", "ind/residence", "allow"), ("kmar", "kmar/border-crossings", "deny")),
        field_ops={"name": "pseudonymise", "nationality": "keep"},
        reasons=['the reason says "why", with a comma'],
        subject_refs=["ref-bsn", "ref-name+dob"],
    )
    builder.request(TIME, decisions=(("fiu", "fiu/transactions", "error"),), subject_refs=[])
    builder.refusal(TIME, "dji", "unknown-dataset", purpose="vertrek", datasets=["a/b", "c/d"])
    builder.summary(TIME, "dji", {"invalid-request": 2})
    builder.reidentification(TIME, "dpo", entry_seq=1)
    key = Ed25519PrivateKey.generate()
    return builder.write(tmp_path_factory.mktemp("export") / "audit.sqlite3", key)


def entries(path: Path) -> list[LoggedEntry]:
    with AuditReader(path) as reader:
        return list(iter_selection(reader, EntryFilter()))


def joined(chunks: Iterator[bytes]) -> str:
    return b"".join(chunks).decode("utf-8")


def test_jsonl_is_one_object_per_entry_with_seq_leaf_hash_and_fields(log: Path) -> None:
    stored = entries(log)
    lines = joined(export_jsonl(stored)).splitlines()
    assert len(lines) == len(stored) == 6
    for line, entry in zip(lines, stored, strict=True):
        obj = json.loads(line)
        assert obj.pop("seq") == entry.seq
        assert obj.pop("leaf_hash") == entry_leaf_hash(entry.seq, entry.prev, entry.body).hex()
        assert obj == json.loads(entry.body)  # exactly what the entry holds


def test_csv_has_a_header_and_flat_rfc4180_rows(log: Path) -> None:
    stored = entries(log)
    text = joined(export_csv(stored))
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(stored)
    first = rows[0]
    assert first["kind"] == "decision"
    assert first["seq"] == "1"
    assert first["reasons"] == 'the reason says "why", with a comma'
    assert first["field_ops"] == "name=pseudonymise | nationality=keep"
    assert first["subject_refs"] == "ref-bsn | ref-name+dob"
    assert json.loads(first["policy_input"]) == {"purpose": "ct-assessment"}
    assert first["other"] == ""
    refusal = rows[3]
    assert (refusal["kind"], refusal["problem"], refusal["datasets"]) == (
        "refusal",
        "unknown-dataset",
        "a/b | c/d",
    )
    assert rows[4]["counts"] == "invalid-request=2"
    reid = rows[5]
    assert (reid["kind"], reid["dpo"], reid["entry_seq"]) == ("reidentification", "dpo", "1")


def test_logboek_records_follow_the_standards_fields(log: Path) -> None:
    stored = entries(log)
    records = [json.loads(line) for line in joined(export_logboek(stored)).splitlines()]
    # One per entry, and one more for each of the first request's second subject reference.
    assert len(records) == len(stored) + 2
    allow, second_subject, deny, _, error, refusal, summary, reid = records
    leaf = entry_leaf_hash(stored[0].seq, stored[0].prev, stored[0].body)
    body = json.loads(stored[0].body)
    assert allow["trace_id"] == uuid.UUID(body["disclosure_id"].removeprefix("urn:uuid:")).hex
    assert len(allow["trace_id"]) == 32
    assert allow["span_id"] == leaf[:8].hex()
    assert deny["trace_id"] == allow["trace_id"]  # one request, one trace
    assert deny["span_id"] != allow["span_id"]
    assert (allow["status"], deny["status"], error["status"]) == ("Ok", "Unset", "Error")
    assert error["attributes"]["exception.type"] == "connector-error"
    assert allow["start_time"] == allow["end_time"] == "2026-03-04T12:00:00.000Z"
    assert allow["attributes"] == {
        "dpl.core.processing_activity_id": (
            f"urn:doelpoort:purpose-register:{DIGEST_A}#ct-assessment"
        ),
        "dpl.core.data_subject_id": "ref-bsn",
        "dpl.core.data_subject_id_type": SUBJECT_ID_TYPE,
    }
    assert second_subject["parent_span_id"] == allow["span_id"]
    assert second_subject["attributes"]["dpl.core.data_subject_id"] == "ref-name+dob"
    assert "parent_span_id" not in allow
    assert "dpl.core.data_subject_id" not in error["attributes"]  # no subject reference
    assert refusal["attributes"]["dpl.core.processing_activity_id"] == (
        "urn:doelpoort:purpose-register#vertrek"
    )
    assert summary["attributes"]["dpl.core.processing_activity_id"] == (
        "urn:doelpoort:activity:refusal"
    )
    assert refusal["trace_id"] != summary["trace_id"]
    assert (reid["name"], reid["status"]) == ("reidentification", "Ok")
    assert reid["attributes"] == {
        "dpl.core.processing_activity_id": "urn:doelpoort:activity:reidentification"
    }
    assert allow["resource"] == {"attributes": {"service.name": "doelpoort"}}
    for record in records:
        assert set(record) <= {
            "trace_id",
            "span_id",
            "parent_span_id",
            "status",
            "name",
            "start_time",
            "end_time",
            "resource",
            "attributes",
        }


def _peak_while_exporting(path: Path, export: str) -> int:
    exporters = {"jsonl": export_jsonl, "csv": export_csv, "logboek": export_logboek}
    with AuditReader(path) as reader:
        tracemalloc.start()
        try:
            chunks = exporters[export](iter_selection(reader, EntryFilter()))
            size = sum(len(chunk) for chunk in chunks)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert size > 0
    return peak


SIZES = (3_000, 12_000)
"""Both well above the rows a selection fetches from SQLite at a time (1024), so each
holds a full batch of them: only what grows with the selection would tell them apart."""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Realistic signed logs of each size (`bench.seed_log`)."""
    logs = {}
    for n in SIZES:
        path = tmp_path_factory.mktemp(f"seeded-{n}") / "audit.sqlite3"
        seed_log(path, n, log_key=Ed25519PrivateKey.generate(), origin=ORIGIN, now=NOW)
        logs[n] = path
    return logs


@pytest.mark.parametrize("export", ["jsonl", "csv", "logboek"])
def test_exports_stream_in_constant_memory(seeded: dict[int, Path], export: str) -> None:
    peaks = {n: _peak_while_exporting(seeded[n], export) for n in SIZES}
    # Four times the entries; the peak stays that of a chunk (allowing for noise).
    assert peaks[SIZES[1]] < 1.5 * peaks[SIZES[0]], peaks
