"""The reference tables are filled from each stored body, in the entry's own statement:
``subject_refs`` and ``pseudonym_refs`` (a body without the list adds nothing), each
reference once per entry, and found again by the storage's search."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.reader import AuditReader
from audit.storage.interface import EntryRow, StoredCheckpoint
from audit.storage.sqlite.writer import SQLiteStorage
from tests.audit.audit_support import make_record

# Bodies as the store writes them; pseudonym_refs as records carrying them write it.
BODIES = [
    json.loads(make_record(1, subject_refs=["s:a", "s:b"]).body()) | {"pseudonym_refs": ["p:1"]},
    json.loads(make_record(2, subject_refs=["s:a", "s:a"]).body()),  # no pseudonym_refs
    json.loads(make_record(3, subject_refs=[]).body()) | {"pseudonym_refs": ["p:1", "p:2", 7]},
]


def write(path: Path, bodies: list[dict[str, object]], *, group: bool) -> None:
    rows: list[EntryRow] = []
    prev = GENESIS_PREV
    for seq, content in enumerate(bodies, start=1):
        body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        rows.append((seq, prev, body, None, None))
        prev = entry_leaf_hash(seq, prev, body)
    storage = SQLiteStorage.open(path)
    try:
        checkpoint = StoredCheckpoint(len(rows), bytes(32), "note", "2026-12-01T00:00:00Z")
        if group:  # one statement, through the commit_groups view
            storage.write(rows, checkpoint)
        else:  # a large group's path: INSERTs into entries in one transaction
            storage.connection.execute("BEGIN")
            for row in rows:
                storage.connection.execute(
                    "INSERT INTO entries (seq, prev, body, escrow, escrow_expires) "
                    "VALUES (?, ?, CAST(? AS TEXT), ?, ?)",
                    row,
                )
            storage.connection.execute("COMMIT")
    finally:
        storage.close()


def table(path: Path, name: str) -> list[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT ref, seq FROM {name} ORDER BY ref, seq").fetchall()  # noqa: S608
    finally:
        conn.close()


def test_each_bodys_references_are_indexed_once_per_entry(tmp_path: Path) -> None:
    for group in (True, False):
        path = tmp_path / f"{group}.sqlite3"
        write(path, BODIES, group=group)
        assert table(path, "subject_refs") == [("s:a", 1), ("s:a", 2), ("s:b", 1)]
        # Text references only (a number in the list is no reference).
        assert table(path, "pseudonym_refs") == [("p:1", 1), ("p:1", 3), ("p:2", 3)]
        with AuditReader(path) as reader, reader.queries() as queries:
            assert [row[0] for row in queries.with_refs("pseudonym_refs", ["p:1"])] == [1, 3]
            assert [row[0] for row in queries.with_refs("pseudonym_refs", ["p:2", "p:9"])] == [3]
            assert [row[0] for row in queries.with_refs("subject_refs", ["s:b"])] == [1]
            assert queries.with_refs("subject_refs", []) == []


def test_the_upgrade_fills_both_tables_from_the_stored_bodies(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    write(path, BODIES, group=True)
    conn = sqlite3.connect(path)
    try:  # back to a log of version 0: no reference tables, no trigger
        conn.executescript(
            "DROP TRIGGER entries_refs; DROP TABLE subject_refs; DROP TABLE pseudonym_refs; "
            "PRAGMA user_version = 0;"
        )
    finally:
        conn.close()
    SQLiteStorage.open(path).close()  # the writer's open upgrades it
    assert table(path, "subject_refs") == [("s:a", 1), ("s:a", 2), ("s:b", 1)]
    assert table(path, "pseudonym_refs") == [("p:1", 1), ("p:1", 3), ("p:2", 3)]
