"""Every search of the DPO's console is an indexed one: no statement a filter runs reads
the whole entries table (SQLite's plan says SEARCH, never SCAN, for it).

Not a timing test: the plan is what decides whether a page stays fast at 1,000,000
entries (bench/dpo.py measures that). Each statement the searches run is captured as it
ran, its parameters in place, and its plan asked of SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import pathname2url

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.query import (
    EntryFilter,
    entries_of_request,
    entries_with_pseudonym_refs,
    entries_with_subject_refs,
    get_entry,
    iter_selection,
    page_requests,
)
from audit.reader import AuditReader
from audit.storage.sqlite.queries import SQLiteQueries
from audit.storage.sqlite.reader import SQLiteReadOnlyStorage
from bench.seed_log import seed_log
from tests.audit.audit_support import ORIGIN

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class TracedStorage(SQLiteReadOnlyStorage):
    """The real read-only storage, its queries' connection noting each statement run."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.statements: list[str] = []

    @contextmanager
    def queries(self) -> Iterator[SQLiteQueries]:
        conn = sqlite3.connect(f"file:{pathname2url(str(self._path))}?mode=ro", uri=True)
        conn.set_trace_callback(self.statements.append)
        try:
            conn.execute("BEGIN")
            yield SQLiteQueries(conn)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plans") / "audit.sqlite3"
    seed_log(path, 2000, log_key=Ed25519PrivateKey.generate(), origin=ORIGIN, now=NOW)
    return path


FILTERS = {
    "none": EntryFilter(),
    "requester": EntryFilter(requester="politie"),
    "provider": EntryFilter(provider="ind"),
    "dataset": EntryFilter(dataset="ind/residence"),
    "purpose": EntryFilter(purpose="vertrek"),
    "decision": EntryFilter(decision="deny"),
    "refused": EntryFilter(decision="refused"),
    "refusal policy": EntryFilter(refusal="policy"),
    "refusal error": EntryFilter(refusal="error"),
    "refusal problem": EntryFilter(refusal="unknown-dataset"),
    "period": EntryFilter(since="2026-05-01", until="2026-06-01T00:00:00Z"),
    "case_ref": EntryFilter(case_ref="POL-2026-0001"),
    "policy_digest": EntryFilter(policy_digest="sha256:" + "0" * 64),
    "disclosure_id": EntryFilter(disclosure_id="urn:uuid:00000000-0000-4000-8000-000000000000"),
    "kind": EntryFilter(kind="policy-change"),
    "kind decision": EntryFilter(kind="decision"),
    "combined": EntryFilter(requester="politie", purpose="ct-assessment", decision="deny"),
    "combined with period": EntryFilter(
        requester="kmar", dataset="kmar/passenger-records", since="2026-03-01", until="2026-09-01"
    ),
    "refusal with requester": EntryFilter(refusal="invalid-request", requester="om"),
}


BY_SEQ_ALONE = {"none", "period", "kind decision"}
"""Filters with no column to narrow by (a period is a range of seq): a search by seq."""


def plans(path: Path, statements: list[str]) -> list[tuple[str, list[str]]]:
    conn = sqlite3.connect(path)
    try:
        return [
            (sql, [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()])
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
        ]
    finally:
        conn.close()


def table_scans(plan: list[str]) -> list[str]:
    """Steps that read a whole table (a SCAN of a subquery's rows is not one)."""
    return [step for step in plan if step.startswith("SCAN") and "subquery" not in step]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_is_an_indexed_search(seeded: Path, name: str) -> None:
    flt = FILTERS[name]
    storage = TracedStorage(seeded)
    with AuditReader(storage) as reader:
        first = page_requests(reader, flt, limit=5)
        page_requests(reader, flt, before=first.next_before or 1500, limit=5)
        for _ in iter_selection(reader, flt):
            pass
    assert storage.statements
    for sql, plan in plans(seeded, storage.statements):
        assert not table_scans(plan), f"{sql}\n{plan}"
        if name not in BY_SEQ_ALONE:  # a filter column's index narrows every search
            assert not [step for step in plan if "PRIMARY KEY (rowid>" in step], f"{sql}\n{plan}"


def test_an_entry_a_request_and_the_reference_searches_are_indexed(seeded: Path) -> None:
    storage = TracedStorage(seeded)
    with AuditReader(storage) as reader:
        entry = get_entry(reader, 1000)
        assert entry is not None
        disclosure = getattr(entry.record, "disclosure_id", "urn:uuid:none")
        entries_of_request(reader, disclosure)
        entries_with_subject_refs(reader, ["psn:" + "1" * 32, "psn:" + "2" * 32])
        entries_with_pseudonym_refs(reader, ["psn:" + "3" * 32])
    for sql, plan in plans(seeded, storage.statements):
        assert not table_scans(plan), f"{sql}\n{plan}"
