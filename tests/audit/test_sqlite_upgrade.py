"""A log made by schema version 0 (before the DPO's searches) is upgraded in place when
the gateway opens it, and only then can the DPO's tools search it.

The old log is made here from the DDL a version-0 log holds (`SCHEMA_V0`, captured from
one) and entries written as that version wrote them: chained, under a signed checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditError
from audit.query import EntryFilter, entries_with_subject_refs, page_requests
from audit.reader import AuditReader
from audit.store import group_checkpoint
from audit.tree import CompactRange
from tests.audit.audit_support import ORIGIN, WallClock, make_record, open_store, verify
from tests.audit.test_sqlite_schema import SCHEMA, SCHEMA_V0

OLD_ENTRIES = 30


def make_v0_log(db: Path, key: Ed25519PrivateKey) -> list[bytes]:
    """A log of schema version 0 with `OLD_ENTRIES` entries; their bodies."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        for kind in ("table", "index", "view", "trigger"):
            for item_kind, _, _, sql in SCHEMA_V0:
                if item_kind == kind and sql is not None:
                    conn.execute(sql)
        tree, prev, bodies = CompactRange(), GENESIS_PREV, []
        for seq in range(1, OLD_ENTRIES + 1):
            refs = [f"psn:dpo:{seq % 7}", f"psn:dpo:{seq % 7}", f"psn:bsn:{seq}"]  # one twice
            body = make_record(seq, subject_refs=refs).body()
            conn.execute(
                "INSERT INTO commit_groups (seq, prev, body) VALUES (?, ?, ?)", (seq, prev, body)
            )
            prev = entry_leaf_hash(seq, prev, body)
            tree.append(prev)
            bodies.append(body)
        checkpoint = group_checkpoint(tree, origin=ORIGIN, log_key=key, now=WallClock())
        conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", checkpoint)
        conn.commit()
    finally:
        conn.close()
    return bodies


def catalog(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(db)
    try:
        return {
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
            "columns": conn.execute("PRAGMA table_xinfo(entries)").fetchall(),
            "objects": sorted(
                (kind, name)
                for kind, name in conn.execute("SELECT type, name FROM sqlite_master").fetchall()
            ),
        }
    finally:
        conn.close()


def refs(db: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT ref, seq FROM subject_refs ORDER BY ref, seq").fetchall()
    finally:
        conn.close()


def test_a_version_0_log_is_upgraded_once_when_the_gateway_opens_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    make_v0_log(db, key)
    assert catalog(db)["version"] == 0
    # Verify reads a version-0 log as it is; the DPO's searches say what to do.
    assert verify(db, key).entries == OLD_ENTRIES
    with AuditReader(db) as reader, pytest.raises(AuditError) as refused:
        page_requests(reader, EntryFilter())
    assert "has not been upgraded for the DPO's searches yet: start the gateway once" in str(
        refused.value
    )

    caplog.set_level(logging.INFO, logger="audit.storage.sqlite.schema")
    with open_store(db, key) as store:
        asyncio.run(store.append([make_record(OLD_ENTRIES + 1)]))
    upgraded = [r.getMessage() for r in caplog.records if "upgraded" in r.getMessage()]
    assert len(upgraded) == 1
    assert "to schema version 1" in upgraded[0]
    assert f"{OLD_ENTRIES} entries indexed" in upgraded[0]

    # The same columns, indexes, tables and triggers as a log made new, and the version.
    new = tmp_path / "new.sqlite3"
    with open_store(new, key):
        pass
    assert catalog(db) == catalog(new)
    assert catalog(db)["objects"] == sorted((kind, name) for kind, name, _, _ in SCHEMA)
    # Every old body's references, once per entry; the new entry's by the trigger.
    expected = {(f"psn:dpo:{seq % 7}", seq) for seq in range(1, OLD_ENTRIES + 1)}
    expected |= {(f"psn:bsn:{seq}", seq) for seq in range(1, OLD_ENTRIES + 1)}
    expected.add((f"psn:dpo:{OLD_ENTRIES + 1}", OLD_ENTRIES + 1))
    assert refs(db) == sorted(expected)
    assert verify(db, key).entries == OLD_ENTRIES + 1

    with AuditReader(db) as reader:
        page = page_requests(reader, EntryFilter(case_ref="CTI-2026-0042"), limit=50)
        assert [g.entries[0].seq for g in page.groups] == list(range(OLD_ENTRIES + 1, 0, -1))
        found = entries_with_subject_refs(reader, ["psn:dpo:3"])
        assert [e.seq for e in found] == [s for s in range(1, OLD_ENTRIES + 1) if s % 7 == 3]

    caplog.clear()
    with open_store(db, key):
        pass
    assert not [r for r in caplog.records if "upgraded" in r.getMessage()]  # once only
    assert refs(db) == sorted(expected)


def test_the_trigger_that_fills_the_references_is_made_anew_at_open(tmp_path: Path) -> None:
    from tests.audit.audit_support import attack

    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    with open_store(db, key):
        pass
    attack(db, "DROP TRIGGER entries_refs")
    with open_store(db, key) as store:
        asyncio.run(store.append([make_record(1)]))
    assert refs(db) == [("psn:dpo:1", 1)]


def test_the_reference_and_cosignature_tables_are_append_only(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    with open_store(db, key) as store:
        asyncio.run(store.append([make_record(1)]))
        asyncio.run(store.add_cosignature(1, "w", b"\x00\x00\x00\x01", "— w x", "t"))
    conn = sqlite3.connect(db)
    try:
        for table, statement in (
            ("subject_refs", "UPDATE subject_refs SET seq = 2"),
            ("subject_refs", "DELETE FROM subject_refs"),
            ("cosignatures", "UPDATE cosignatures SET size = 2"),
            ("cosignatures", "DELETE FROM cosignatures"),
        ):
            with pytest.raises(sqlite3.DatabaseError, match=f"{table} are append-only"):
                conn.execute(statement)
        with pytest.raises(sqlite3.DatabaseError, match="cosignatures are append-only"):
            conn.execute(
                "INSERT OR REPLACE INTO cosignatures VALUES (1, 'w', x'00000001', 'forged', 't')"
            )
    finally:
        conn.close()
