"""The audit store on a real SQLite file: group commit, durability, failure, checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit.state
import audit.storage.sqlite.writer
import audit.store
from audit.checkpoint import open_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.reader import AuditReader
from audit.store import AuditStore
from gateway.errors import AuditError
from tests.audit.audit_support import (
    ORIGIN,
    FakeClock,
    attack,
    fail_inserts,
    forge_unchained_entry,
    make_record,
    open_store,
    stop_failing,
    verify,
    write_log,
)
from tests.audit.reference_tree import reference_root


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "audit.sqlite3"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_concurrent_appends_share_commits(db: Path, key: Ed25519PrivateKey) -> None:
    tasks, per_task = 100, 2

    async def run(store: AuditStore) -> list[list[int]]:
        async def one(i: int) -> list[int]:
            return await store.append([make_record(i * per_task + j) for j in range(per_task)])

        return await asyncio.gather(*(one(i) for i in range(tasks)))

    with open_store(db, key) as store:
        results = asyncio.run(run(store))
        assert store.commit_count < tasks
        assert store.size == tasks * per_task
        assert store.healthy()
    for seqs in results:
        assert seqs == list(range(seqs[0], seqs[0] + per_task))  # a batch stays together
    assert sorted(s for seqs in results for s in seqs) == list(range(1, tasks * per_task + 1))
    assert verify(db, key).entries == tasks * per_task


def test_entries_survive_reopen_and_the_chain_continues(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 3)
    with open_store(db, key) as store:
        assert store.size == 3
        assert asyncio.run(store.append([make_record(10), make_record(11)])) == [4, 5]
    with AuditReader(db) as reader:
        entries = list(reader.iter_entries())
        assert reader.count() == 5
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev == GENESIS_PREV
    leaves: list[bytes] = []
    for entry in entries:
        if leaves:
            assert entry.prev == leaves[-1]
        leaves.append(entry_leaf_hash(entry.seq, entry.prev, entry.body))
    assert entries[3].body == make_record(10).body()
    report = verify(db, key)
    assert (report.entries, report.uncovered_tail) == (5, 0)
    assert report.root == reference_root(leaves)


def test_iter_entries_streams_from_a_start(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 5)
    with AuditReader(db) as reader:
        assert [e.seq for e in reader.iter_entries(start=4)] == [4, 5]


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


def test_write_failure_fails_the_batch_and_marks_unhealthy(
    db: Path, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        # A real failure inside SQLite: a trigger that aborts, as a full disk would.
        fail_inserts(db, purpose="boom")
        with pytest.raises(AuditError) as failed:
            await store.append([make_record(2), make_record(3, purpose="boom")])
        assert isinstance(failed.value.__cause__, sqlite3.Error)
        assert not store.healthy()
        assert store.size == 1
        stop_failing(db)
        assert await store.append([make_record(4)]) == [2]  # no gap: state rolled back
        assert store.healthy()

    with open_store(db, key) as store:
        asyncio.run(run(store))
    assert verify(db, key).entries == 2
    assert "audit write of 2 entries failed" in caplog.text
    for fragment in ("psn:dpo:", "urn:uuid:", "CTI-2026", "politie"):
        assert fragment not in caplog.text  # the store never logs bodies


def test_a_group_larger_than_one_insert_is_one_transaction(
    db: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit.storage.sqlite.writer, "MAX_ROWS_PER_INSERT", 3)

    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(i) for i in range(7)]) == list(range(1, 8))
        # A failure in the third INSERT of a group takes the first two back with it.
        fail_inserts(db, purpose="boom")
        batch = [make_record(10 + i) for i in range(6)] + [make_record(16, purpose="boom")]
        with pytest.raises(AuditError):
            await store.append(batch)
        assert store.size == 7
        stop_failing(db)
        assert await store.append([make_record(20)]) == [8]

    with open_store(db, key) as store:
        asyncio.run(run(store))
    with AuditReader(db) as reader:
        assert reader.count() == 8
    assert verify(db, key).entries == 8


def test_a_transaction_left_open_is_rolled_back_before_the_next_write(
    db: Path, key: Ed25519PrivateKey
) -> None:
    async def run(store: AuditStore) -> None:
        # What a ROLLBACK that failed would leave behind on the store's connection.
        conn = store._storage.connection  # type: ignore[attr-defined]
        conn.execute("BEGIN")
        conn.execute("INSERT INTO entries (seq, prev, body) VALUES (1, zeroblob(32), '{}')")
        assert await store.append([make_record(1)]) == [1]

    with open_store(db, key) as store:
        asyncio.run(run(store))
        # "Durable" means another connection sees it, and it is the real entry.
        with AuditReader(db) as reader:
            assert [e.body for e in reader.iter_entries()] == [make_record(1).body()]
    assert verify(db, key).entries == 1


def landed_behind_the_stores_back(db: Path, seq: int, record: int) -> None:
    """Commit entry `seq` correctly chained from a second connection: a failed commit of
    the store's that reached the disk all the same looks exactly like this."""
    conn = sqlite3.connect(db)
    try:
        prev, body = conn.execute(
            "SELECT prev, CAST(body AS BLOB) FROM entries WHERE seq = ?", (seq - 1,)
        ).fetchone()
        last_leaf = entry_leaf_hash(seq - 1, prev, body)
        new_body = make_record(record).body().decode()
        conn.execute(
            "INSERT INTO entries (seq, prev, body) VALUES (?, ?, ?)", (seq, last_leaf, new_body)
        )
        conn.commit()
    finally:
        conn.close()


def test_a_failed_commit_that_landed_is_picked_up_before_the_next_write(
    db: Path, key: Ed25519PrivateKey
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        fail_inserts(db, purpose="boom")
        with pytest.raises(AuditError):
            await store.append([make_record(2, purpose="boom")])
        assert not store.healthy()
        # Seq 2 lands after all; without a rebuild, the store would write seq 2 again
        # and fail on every later append until restarted.
        landed_behind_the_stores_back(db, 2, record=2)
        stop_failing(db)
        assert await store.append([make_record(3)]) == [3]
        assert store.healthy()
        assert store.size == 3
        assert await store.append([make_record(4), make_record(5)]) == [4, 5]

    with open_store(db, key) as store:
        asyncio.run(run(store))
    report = verify(db, key)
    assert (report.entries, report.uncovered_tail) == (5, 0)


def test_a_failed_rebuild_keeps_the_store_unhealthy(
    db: Path, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        fail_inserts(db)
        with pytest.raises(AuditError):
            await store.append([make_record(2)])
        stop_failing(db)
        # Meanwhile a row that does not chain appears: the state cannot be rebuilt.
        forge_unchained_entry(db, 2)
        for i in range(2):
            with pytest.raises(AuditError, match="could not be written"):
                await store.append([make_record(3 + i)])
            assert not store.healthy()
        assert store.size == 1

    with open_store(db, key) as store:
        asyncio.run(run(store))
    assert "audit state could not be rebuilt: AuditError" in caplog.text
    assert "not intact near seq 2" in caplog.text


def count_full_rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, note each time the store re-reads the whole table."""
    calls: list[int] = []
    load_state = audit.state.load_state

    def counted(storage: Any) -> Any:
        calls.append(1)
        return load_state(storage)

    monkeypatch.setattr(audit.store, "load_state", counted)
    return calls


def test_a_failed_commit_that_landed_is_recognised_by_its_last_entry(
    db: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        storage = store._storage
        transaction = storage.write

        def commit_then_fail(*args: Any) -> None:
            transaction(*args)
            raise sqlite3.OperationalError("disk I/O error")  # reported after the COMMIT

        monkeypatch.setattr(storage, "write", commit_then_fail)
        with pytest.raises(AuditError):
            await store.append([make_record(2), make_record(3)])
        assert not store.healthy()
        monkeypatch.setattr(storage, "write", transaction)
        rebuilds = count_full_rebuilds(monkeypatch)
        assert await store.append([make_record(4)]) == [4]
        assert store.healthy()
        assert rebuilds == []  # the last entry told which state the table holds

    with open_store(db, key) as store:
        asyncio.run(run(store))
    assert verify(db, key).entries == 4


def test_a_failed_rebuild_is_retried_once_per_interval(
    db: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()

    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        fail_inserts(db)
        with pytest.raises(AuditError):
            await store.append([make_record(2)])
        stop_failing(db)
        forge_unchained_entry(db, 2)
        rebuilds = count_full_rebuilds(monkeypatch)
        for i in range(3):
            with pytest.raises(AuditError, match="could not be written"):
                await store.append([make_record(3 + i)])
        assert len(rebuilds) == 1
        clock.advance(60)
        with pytest.raises(AuditError, match="could not be written"):
            await store.append([make_record(6)])
        assert len(rebuilds) == 2
        assert not store.healthy()

    with open_store(db, key, clock=clock, checkpoint_interval_s=60) as store:
        asyncio.run(run(store))


def test_a_checkpoint_that_cannot_be_signed_fails_the_batch(
    db: Path, key: Ed25519PrivateKey
) -> None:
    def broken_clock() -> datetime:
        raise RuntimeError("clock unavailable")  # needed to stamp the checkpoint

    async def run(store: AuditStore) -> None:
        with pytest.raises(AuditError):
            await store.append([make_record(1)])
        assert not store.healthy()

    with open_store(db, key, checkpoint_every=1, now=broken_clock) as store:
        asyncio.run(run(store))
        with AuditReader(db) as reader:
            assert reader.count() == 0


def test_an_idle_log_gets_a_checkpoint_without_further_appends(
    db: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []
    transaction = audit.storage.sqlite.writer.SQLiteStorage.write

    def recorded(storage: Any, *args: Any) -> None:
        writers.append(threading.current_thread().name)
        transaction(storage, *args)

    monkeypatch.setattr(audit.storage.sqlite.writer.SQLiteStorage, "write", recorded)

    async def run(store: AuditStore) -> None:
        await store.append([make_record(1)])
        # The idle timer fires after checkpoint_interval_s on the event loop.
        for _ in range(100):
            await asyncio.sleep(0.01)
            with AuditReader(db) as reader:
                if reader.checkpoints():
                    return
        raise AssertionError("no idle checkpoint")

    with open_store(db, key, checkpoint_interval_s=0.02, clock=time.monotonic) as store:
        asyncio.run(run(store))
        with AuditReader(db) as reader:
            assert [c.size for c in reader.checkpoints()] == [1]
    # Every write, the idle checkpoint's too, ran on the SQLite thread, not the loop.
    assert len(writers) == 2
    assert all(name.startswith("audit") for name in writers)


def test_every_waiter_of_a_failed_commit_gets_audit_error(db: Path, key: Ed25519PrivateKey) -> None:
    async def run(store: AuditStore) -> list[object]:
        return await asyncio.gather(
            *(store.append([make_record(i)]) for i in range(20)), return_exceptions=True
        )

    with open_store(db, key) as store:
        fail_inserts(db)
        results = asyncio.run(run(store))
        assert all(isinstance(r, AuditError) for r in results)
        assert not store.healthy()
        assert store.size == 0


def test_a_record_that_cannot_be_encoded_is_an_audit_error(
    db: Path, key: Ed25519PrivateKey
) -> None:
    with open_store(db, key) as store:
        bad = make_record(1, policy_input={"score": float("nan")})
        with pytest.raises(AuditError, match="encoded as JSON"):
            asyncio.run(store.append([make_record(0), bad]))
        assert store.size == 0
        assert store.healthy()


def test_checkpoints_every_n_entries_and_on_close(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 7, every=3)
    with AuditReader(db) as reader:
        stored = reader.checkpoints()
    assert [c.size for c in stored] == [3, 6, 7]
    for c in stored:
        cp = open_checkpoint(c.note, "test.doelpoort.local/audit", key.public_key(), ORIGIN)
        assert (cp.size, cp.root) == (c.size, c.root)
        assert c.created_at.endswith("Z")


def test_checkpoint_after_the_interval(db: Path, key: Ed25519PrivateKey) -> None:
    clock = FakeClock()

    async def run(store: AuditStore) -> None:
        await store.append([make_record(1), make_record(2)])
        clock.advance(0.5)
        await store.append([make_record(3)])
        with AuditReader(db) as reader:
            assert reader.checkpoints() == []
        clock.advance(0.6)
        await store.append([make_record(4)])
        with AuditReader(db) as reader:
            assert [c.size for c in reader.checkpoints()] == [4]

    with open_store(db, key, clock=clock, checkpoint_interval_s=1.0) as store:
        asyncio.run(run(store))


def test_no_new_checkpoint_when_nothing_was_added(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 2)
    with open_store(db, key):
        pass
    with AuditReader(db) as reader:
        assert [c.size for c in reader.checkpoints()] == [2]


def test_close_is_idempotent_and_refuses_appends(db: Path, key: Ed25519PrivateKey) -> None:
    with open_store(db, key) as store:
        store.close()
        store.close()
        assert not store.healthy()
        with pytest.raises(AuditError, match="closed"):
            asyncio.run(store.append([make_record(1)]))
    assert asyncio.run(_append_nothing(db, key)) == []


async def _append_nothing(db: Path, key: Ed25519PrivateKey) -> list[int]:
    with open_store(db, key) as store:
        return await store.append([])


def test_open_refuses_a_log_that_is_not_intact(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 4)
    attack(db, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = 2")
    with pytest.raises(AuditError, match="near seq 3"):
        AuditStore.open(db, log_key=key, origin=ORIGIN)


def test_open_refuses_an_origin_no_checkpoint_can_carry(db: Path, key: Ed25519PrivateKey) -> None:
    # The origin is also the checkpoint key's name, which has no spaces or '+'.
    with pytest.raises(ValueError, match="key names"):
        AuditStore.open(db, log_key=key, origin="two words")
    with pytest.raises(ValueError, match="origin"):
        AuditStore.open(db, log_key=key, origin="two\nlines")
    assert not db.exists()


def test_open_refuses_a_log_shorter_than_its_checkpoint(db: Path, key: Ed25519PrivateKey) -> None:
    write_log(db, key, 4)
    attack(db, "DELETE FROM entries WHERE seq = 4")
    with pytest.raises(AuditError, match="near seq 4"):
        AuditStore.open(db, log_key=key, origin=ORIGIN)


def test_open_refuses_the_log_of_another_deployment(db: Path, key: Ed25519PrivateKey) -> None:
    # Appending under another key would fork the log: none of it would verify any more.
    write_log(db, key, 4)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(AuditError, match="not this deployment's"):
        AuditStore.open(db, log_key=other, origin=ORIGIN)
    with pytest.raises(AuditError, match="not this deployment's"):
        AuditStore.open(db, log_key=key, origin="elsewhere.example/audit")
    with open_store(db, key) as store:  # its own deployment opens it as before
        assert store.size == 4


def test_reader_never_creates_a_database(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit database"):
        AuditReader(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_reader_reads_while_the_store_writes(db: Path, key: Ed25519PrivateKey) -> None:
    async def run(store: AuditStore) -> None:
        await store.append([make_record(1)])
        with AuditReader(db) as reader:
            assert reader.count() == 1
            await store.append([make_record(2)])
            assert [e.seq for e in reader.iter_entries()] == [1, 2]

    with open_store(db, key) as store:
        asyncio.run(run(store))


def test_a_log_has_one_writer(db: Path, key: Ed25519PrivateKey) -> None:
    # Each store keeps the log's head in memory: a second writer would collide with it
    # on every append, so it is refused at open, and the lock goes with the first.
    with open_store(db, key):
        with pytest.raises(AuditError, match="another process is writing"):
            AuditStore.open(db, log_key=key, origin=ORIGIN)
        with AuditReader(db) as reader:  # readers (the DPO's tools) are not held up
            assert reader.count() == 0
    with open_store(db, key) as store:
        assert asyncio.run(store.append([make_record(1)])) == [1]


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
