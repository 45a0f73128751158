"""Escrows kept beside the audit entries, and erased when their retention ends."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import StoredEscrow, escrow_digest
from audit.reader import AuditReader
from audit.storage.sqlite.statements import insert_entries
from audit.storage.tables import STORED_COLUMNS
from audit.store import AuditStore
from gateway.errors import AuditError
from tests.audit.audit_support import make_record, open_store, verify

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class WallClock:
    """The store's wall clock (UTC datetimes), moved only by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def sealed(tag: str) -> str:
    # Stands in for a sealed box: the store treats an escrow as opaque text.
    return "v1." + (tag * 40)[:120]


def escrow_expiring(tag: str, days: int) -> StoredEscrow:
    return StoredEscrow(sealed(tag), int((START + timedelta(days=days)).timestamp()))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "audit.sqlite3"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def escrows(db: Path) -> dict[int, str | None]:
    with AuditReader(db) as reader:
        return {entry.seq: reader.escrow(entry.seq) for entry in reader.iter_entries()}


def file_bytes(db: Path) -> bytes:
    """The database file and its WAL, as someone with the disk would read them."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def append_with_escrows(store: AuditStore) -> None:
    async def run() -> None:
        short = escrow_expiring("a", 180)
        await store.append(
            [make_record(1, escrow_sha256=escrow_digest(short.sealed)), make_record(2)], short
        )
        await store.append([make_record(3)])  # a disclosure without escrow
        long = escrow_expiring("b", 365)
        await store.append([make_record(4, escrow_sha256=escrow_digest(long.sealed))], long)

    asyncio.run(run())


def test_an_escrow_is_kept_beside_each_entry_of_its_batch(db: Path, key: Ed25519PrivateKey) -> None:
    with open_store(db, key, now=WallClock()) as store:
        append_with_escrows(store)
    assert escrows(db) == {1: sealed("a"), 2: sealed("a"), 3: None, 4: sealed("b")}
    assert verify(db, key).entries == 4


def test_only_expired_escrows_are_erased_and_the_log_stays_intact(
    db: Path, key: Ed25519PrivateKey
) -> None:
    clock = WallClock()
    with open_store(db, key, now=clock) as store:
        append_with_escrows(store)
        with AuditReader(db) as reader:
            bodies = [entry.body for entry in reader.iter_entries()]
        clock.now = START + timedelta(days=180) - timedelta(seconds=1)
        assert asyncio.run(store.erase_expired_escrows()) == 0
        clock.now = START + timedelta(days=180)
        assert asyncio.run(store.erase_expired_escrows()) == 2
        assert asyncio.run(store.erase_expired_escrows()) == 0  # nothing twice
        assert escrows(db) == {1: None, 2: None, 3: None, 4: sealed("b")}
        # Gone from the file and its WAL, not merely unlinked.
        on_disk = file_bytes(db)
        assert sealed("a").encode() not in on_disk
        assert sealed("b").encode() in on_disk
        # The bodies (and so the tree) are as they were; appending goes on.
        with AuditReader(db) as reader:
            assert [entry.body for entry in reader.iter_entries()] == bodies
        assert asyncio.run(store.append([make_record(5)])) == [5]
    assert verify(db, key).entries == 5  # verify raises on a log that is not intact


def test_a_backlog_is_erased_in_batches(
    db: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.retention.ERASE_BATCH", 2)
    clock = WallClock()
    with open_store(db, key, now=clock) as store:

        async def run() -> None:
            for i in range(5):
                escrow = escrow_expiring(str(i), 1)
                await store.append(
                    [make_record(i, escrow_sha256=escrow_digest(escrow.sealed))], escrow
                )

        asyncio.run(run())
        clock.now = START + timedelta(days=2)
        assert asyncio.run(store.erase_expired_escrows()) == 5
    assert set(escrows(db).values()) == {None}


def test_the_table_lets_an_escrow_be_erased_and_nothing_else_changed(
    db: Path, key: Ed25519PrivateKey
) -> None:
    with open_store(db, key, now=WallClock()) as store:
        append_with_escrows(store)
    conn = sqlite3.connect(db)
    try:
        refused = [
            "UPDATE entries SET escrow = 'v1.forged' WHERE seq = 1",
            "UPDATE entries SET escrow_expires = escrow_expires + 86400 WHERE seq = 1",
            "UPDATE entries SET escrow = NULL WHERE seq = 1",  # half an erasure
            "UPDATE entries SET body = '{}', escrow = NULL, escrow_expires = NULL WHERE seq = 1",
            "DELETE FROM entries WHERE seq = 1",
            # REPLACE deletes without firing the DELETE trigger: refused at the INSERT.
            "INSERT OR REPLACE INTO entries (seq, prev, body, escrow, escrow_expires) "
            "SELECT seq, prev, body, 'v1.forged', 4102444800 FROM entries WHERE seq = 1",
            "INSERT OR REPLACE INTO checkpoints SELECT size, root, note, 'then' FROM checkpoints",
        ]
        for statement in refused:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
        conn.execute("UPDATE entries SET escrow = NULL, escrow_expires = NULL WHERE seq = 4")
        conn.commit()
    finally:
        conn.close()
    assert escrows(db)[4] is None
    assert escrows(db)[1] == sealed("a")
    assert verify(db, key).entries == 4


def test_a_log_from_before_the_escrow_column_is_refused_clearly(
    db: Path, key: Ed25519PrivateKey
) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, prev BLOB, body TEXT)")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(AuditError, match="earlier version") as caught:
        AuditStore.open(db, log_key=key, origin="o.example/log")
    assert "escrow" in caught.value.detail


def test_erasing_on_a_closed_store_is_a_clear_error(db: Path, key: Ed25519PrivateKey) -> None:
    with open_store(db, key, now=WallClock()) as store:
        pass
    with pytest.raises(AuditError, match="closed"):
        asyncio.run(store.erase_expired_escrows())


def test_the_insert_names_every_stored_column() -> None:
    assert STORED_COLUMNS == ("seq", "prev", "body", "escrow", "escrow_expires")
    assert f"({', '.join(STORED_COLUMNS)})" in insert_entries(1)


def test_a_reader_holding_the_wal_only_delays_its_truncation(
    db: Path, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = WallClock()
    with open_store(db, key, now=clock) as store:
        append_with_escrows(store)
        clock.now = START + timedelta(days=180)
        reader = sqlite3.connect(db)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM entries").fetchone()  # holds a snapshot
            assert asyncio.run(store.erase_expired_escrows()) == 2
            assert "could not be truncated" in caplog.text
            assert escrows(db)[1] is None
        finally:
            reader.rollback()
            reader.close()
        # The next sweep has nothing to erase, but still owes the truncation.
        assert asyncio.run(store.erase_expired_escrows()) == 0
        assert sealed("a").encode() not in file_bytes(db)


def test_the_next_store_truncates_a_wal_the_last_one_could_not(
    db: Path, key: Ed25519PrivateKey
) -> None:
    clock = WallClock()
    with open_store(db, key, now=clock) as store:
        append_with_escrows(store)
    clock.now = START + timedelta(days=180)
    reader = sqlite3.connect(db)
    try:
        with open_store(db, key, now=clock) as store:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM entries").fetchone()  # holds a snapshot
            assert asyncio.run(store.erase_expired_escrows()) == 2
        # The reader outlived the store, so the WAL (and the erased escrow in it) did too.
        reader.rollback()
        assert sealed("a").encode() in file_bytes(db)
        with open_store(db, key, now=clock) as store:
            assert asyncio.run(store.erase_expired_escrows()) == 0
            assert sealed("a").encode() not in file_bytes(db)
    finally:
        reader.close()


def test_appends_go_on_around_an_erasure(db: Path, key: Ed25519PrivateKey) -> None:
    clock = WallClock()
    with open_store(db, key, now=clock) as store:
        append_with_escrows(store)
        clock.now = START + timedelta(days=400)

        async def run() -> tuple[int, list[list[int]]]:
            erasure = asyncio.ensure_future(store.erase_expired_escrows())
            appends = [store.append([make_record(100 + i)]) for i in range(50)]
            seqs = await asyncio.gather(*appends)
            return await erasure, seqs

        erased, seqs = asyncio.run(run())
        assert erased == 3
        assert sorted(s for batch in seqs for s in batch) == list(range(5, 55))
        assert store.healthy()
    assert verify(db, key).entries == 54
