"""What only the SQLite backend does: its file, WAL, triggers, lock and old schemas.

Everything a backend must do is in the storage suite (tests/audit/storagetest), which
runs on SQLite too; these are the SQLite log's own properties, seen in the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.errors import AuditError
from audit.reader import AuditReader
from audit.storage.sqlite.statements import insert_entries
from audit.storage.tables import STORED_COLUMNS
from audit.store import AuditStore
from tests.audit.audit_support import (
    ORIGIN,
    START,
    WallClock,
    append_with_escrows,
    make_record,
    open_store,
    sealed,
    verify,
)


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


def test_database_is_wal_and_filter_columns_follow_the_body(
    db: Path, key: Ed25519PrivateKey
) -> None:
    with open_store(db, key) as store:
        record = make_record(1, requester="kmar", purpose="vertrek", decision="deny")
        asyncio.run(store.append([record]))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        row = conn.execute(
            "SELECT requester, provider, dataset, purpose, decision, time FROM entries"
        ).fetchone()
        assert row == ("kmar", "ind", "ind/residence", "vertrek", "deny", record.time)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM entries WHERE requester = 'kmar'"
        ).fetchall()
        assert "ix_entries_requester" in str(plan)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE entries SET body = '{}'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM checkpoints")
    finally:
        conn.close()


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


def test_the_insert_names_every_stored_column() -> None:
    assert STORED_COLUMNS == ("seq", "prev", "body", "escrow", "escrow_expires")
    assert f"({', '.join(STORED_COLUMNS)})" in insert_entries(1)


def test_an_erased_escrow_is_gone_from_the_file_and_its_wal(
    db: Path, key: Ed25519PrivateKey
) -> None:
    clock = WallClock()
    with open_store(db, key, now=clock) as store:
        append_with_escrows(store)
        assert sealed("a").encode() in file_bytes(db)
        clock.now = START + timedelta(days=180)
        assert asyncio.run(store.erase_expired_escrows()) == 2
        # Overwritten (secure_delete) and the WAL truncated, not merely unlinked.
        on_disk = file_bytes(db)
        assert sealed("a").encode() not in on_disk
        assert sealed("b").encode() in on_disk


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


def test_open_refuses_an_origin_no_checkpoint_can_carry(db: Path, key: Ed25519PrivateKey) -> None:
    # The origin is also the checkpoint key's name, which has no spaces or '+'.
    with pytest.raises(ValueError, match="key names"):
        AuditStore.open(db, log_key=key, origin="two words")
    with pytest.raises(ValueError, match="origin"):
        AuditStore.open(db, log_key=key, origin="two\nlines")
    assert not db.exists()  # refused before the file is made


def test_reader_never_creates_a_database(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit database"):
        AuditReader(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_the_writer_lock_is_held_across_processes(db: Path, key: Ed25519PrivateKey) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from audit.storage.sqlite.lock import lock_writer; "
            "from pathlib import Path; lock_writer(Path(sys.argv[1])); "
            "print('locked', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AuditError, match="another process is writing"):
            AuditStore.open(db, log_key=key, origin=ORIGIN)
    finally:
        holder.communicate("")  # the holder exits; the OS drops its lock
    with open_store(db, key):
        pass


APPENDER = """
import asyncio, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from audit.store import AuditStore
from tests.audit.audit_support import ORIGIN, make_record

key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[2]))
store = AuditStore.open(Path(sys.argv[1]), log_key=key, origin=ORIGIN)

async def append_forever():
    appended = 0
    while True:  # eight requests at a time, as a busy gateway's would come
        await asyncio.gather(*(store.append([make_record(appended + i)]) for i in range(8)))
        appended += 8
        if appended == 8:
            print("appended", flush=True)

asyncio.run(append_forever())
"""


def test_a_gateway_killed_in_its_first_second_leaves_a_log_that_verifies(
    db: Path, key: Ed25519PrivateKey
) -> None:
    # Before every commit carried its checkpoint, the first one came a second after the
    # first entry (or at close): a gateway killed before then left entries that no
    # checkpoint covered, and verify called the log tampered at seq 1.
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    appender = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(db), raw.hex()],
        cwd=Path(__file__).resolve().parents[2],  # the repository, for `tests`
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert appender.stdout is not None
        assert appender.stdout.readline().strip() == "appended"
        time.sleep(0.1)  # more groups commit; one may be in flight when it dies
    finally:
        appender.kill()  # SIGKILL: no close, no last checkpoint
        appender.communicate()
    report = verify(db, key)
    assert report.entries >= 8
    assert report.checkpoints >= 1
    with open_store(db, key) as store:  # and the next start takes it up
        assert store.size == report.entries
        assert asyncio.run(store.append([make_record(0)])) == [report.entries + 1]
