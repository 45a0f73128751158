"""The storage interface itself, on each backend: what the store and reader rely on."""

from __future__ import annotations

import pytest

from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditError
from audit.storage.interface import EntryRow, LogStorage, StoredCheckpoint
from tests.audit.audit_support import make_record
from tests.audit.storagetest.harness import StorageHarness


def chained(
    first: int,
    count: int,
    prev: bytes = GENESIS_PREV,
    *,
    sealed: str | None = None,
    expires: int | None = None,
) -> list[EntryRow]:
    """`count` entry rows from seq `first`, each chained to the one before."""
    rows: list[EntryRow] = []
    for seq in range(first, first + count):
        body = make_record(seq).body()
        rows.append((seq, prev, body, sealed, expires))
        prev = entry_leaf_hash(seq, prev, body)
    return rows


def checkpoint(size: int) -> StoredCheckpoint:
    # The storage keeps checkpoints as given; signing them is the store's business.
    return StoredCheckpoint(size, size.to_bytes(32, "big"), f"note {size}", "2026-12-01T12:00:00Z")


def contents(storage: LogStorage) -> list[tuple[int, bytes, bytes]]:
    return list(storage.entries(1))


def test_a_new_log_is_empty(backend: StorageHarness) -> None:
    storage = backend.open_storage()
    try:
        assert storage.last_entry() is None
        assert storage.latest_checkpoint() is None
        assert contents(storage) == []
    finally:
        storage.close()
    log = backend.open_reader()
    try:
        assert (log.count(), log.checkpoints(), list(log.entries(1))) == (0, [], [])
        assert log.escrow(1) is None
        assert (log.checkpoint(None), log.checkpoint(0)) == (None, None)
    finally:
        log.close()


def test_what_is_written_is_read_back_by_writer_and_reader(backend: StorageHarness) -> None:
    rows = chained(1, 5)
    storage = backend.open_storage()
    try:
        storage.write(rows[:3], checkpoint(3))
        assert storage.latest_checkpoint() == checkpoint(3)
        storage.write(rows[3:], checkpoint(5))
        assert contents(storage) == [row[:3] for row in rows]
        assert list(storage.entries(4)) == [row[:3] for row in rows[3:]]
        assert storage.last_entry() == rows[-1][:3]
        assert storage.latest_checkpoint() == checkpoint(5)
    finally:
        storage.close()
    log = backend.open_reader()
    try:
        assert log.count() == 5
        assert list(log.entries(2)) == [row[:3] for row in rows[1:]]
        assert log.checkpoints() == [checkpoint(3), checkpoint(5)]
        assert isinstance(log.location, str)
    finally:
        log.close()


def test_one_checkpoint_is_read_by_its_size(backend: StorageHarness) -> None:
    rows = chained(1, 5)
    storage = backend.open_storage()
    try:
        storage.write(rows[:3], checkpoint(3))
        storage.write(rows[3:], checkpoint(5))
    finally:
        storage.close()
    log = backend.open_reader()
    try:
        assert log.checkpoint(3) == checkpoint(3)
        assert log.checkpoint(None) == checkpoint(5)
        assert log.checkpoint(4) is None
        # The checkpoint that first vouched for an entry: the smallest that holds it.
        assert [log.covering_checkpoint(seq) for seq in (1, 3, 4, 5, 6)] == [
            checkpoint(3),
            checkpoint(3),
            checkpoint(5),
            checkpoint(5),
            None,
        ]
    finally:
        log.close()


def test_bodies_come_back_byte_for_byte(backend: StorageHarness) -> None:
    # Verification hashes the stored bytes: non-ASCII text must not be re-encoded.
    body = make_record(1, case_ref="CTI-2026-ü€𝄞").body()
    storage = backend.open_storage()
    try:
        storage.write([(1, GENESIS_PREV, body, None, None)], checkpoint(1))
        assert storage.last_entry() == (1, GENESIS_PREV, body)
    finally:
        storage.close()
    log = backend.open_reader()
    try:
        assert list(log.entries(1)) == [(1, GENESIS_PREV, body)]
    finally:
        log.close()


def test_a_write_is_all_or_nothing(backend: StorageHarness) -> None:
    large = 2 * backend.rows_per_statement + 1
    rows = chained(1, large)
    storage = backend.open_storage()
    try:
        storage.write(rows[:1], checkpoint(1))
        backend.fail_writes(purpose="boom")
        last = rows[-1]
        failing = (last[0], last[1], make_record(0, purpose="boom").body(), None, None)
        with pytest.raises(backend.error):
            storage.write([*rows[1:-1], failing], checkpoint(large))
        assert storage.last_entry() == rows[0][:3]
        assert storage.latest_checkpoint() == checkpoint(1)
        backend.stop_failing()
        storage.write(rows[1:], checkpoint(large))
        assert storage.last_entry() == rows[-1][:3]
        assert storage.latest_checkpoint() == checkpoint(large)
    finally:
        storage.close()


def test_a_stored_entry_or_checkpoint_is_never_replaced(backend: StorageHarness) -> None:
    rows = chained(1, 2)
    storage = backend.open_storage()
    try:
        storage.write(rows, checkpoint(2))
        forged = (2, rows[1][1], make_record(99).body(), None, None)
        with pytest.raises(backend.error):
            storage.write([forged], checkpoint(3))
        with pytest.raises(backend.error):
            storage.write([], StoredCheckpoint(2, bytes(32), "forged", "then"))
        assert contents(storage) == [row[:3] for row in rows]
        assert storage.latest_checkpoint() == checkpoint(2)
    finally:
        storage.close()


def test_entries_land_only_with_their_checkpoint(backend: StorageHarness) -> None:
    # A group's entries and its checkpoint are one write: a checkpoint the database
    # refuses takes the entries back with it, so none is ever left outside a checkpoint.
    rows = chained(1, 4)
    storage = backend.open_storage()
    try:
        storage.write(rows[:2], checkpoint(2))
        with pytest.raises(backend.error):
            storage.write(rows[2:], StoredCheckpoint(2, bytes(32), "taken", "then"))
        assert storage.last_entry() == rows[1][:3]
        assert storage.latest_checkpoint() == checkpoint(2)
        storage.write(rows[2:], checkpoint(4))
        assert storage.last_entry() == rows[-1][:3]
    finally:
        storage.close()


def test_expired_escrows_are_erased_a_limited_batch_at_a_time(backend: StorageHarness) -> None:
    early = chained(1, 3, sealed="v1.early", expires=1000)
    late = chained(4, 2, prev=entry_leaf_hash(*early[-1][:3]), sealed="v1.late", expires=2000)
    plain = chained(6, 1, prev=entry_leaf_hash(*late[-1][:3]))
    storage = backend.open_storage()
    try:
        storage.write([*early, *late, *plain], checkpoint(6))
        assert storage.erase_expired_escrows(999, 10) == 0
        assert storage.erase_expired_escrows(1000, 2) == 2  # at most `limit`
        assert storage.erase_expired_escrows(1000, 2) == 1
        assert storage.erase_expired_escrows(1000, 2) == 0
        assert storage.purge_erased()
        # Only the escrows went: the entries (what is hashed) are as they were.
        assert contents(storage) == [row[:3] for row in [*early, *late, *plain]]
    finally:
        storage.close()
    log = backend.open_reader()
    try:
        assert {seq: log.escrow(seq) for seq in range(1, 8)} == {
            1: None,
            2: None,
            3: None,
            4: b"v1.late",
            5: b"v1.late",
            6: None,
            7: None,  # no such entry
        }
    finally:
        log.close()


def test_a_log_has_one_writer_until_it_closes(backend: StorageHarness) -> None:
    first = backend.open_storage()
    try:
        with pytest.raises(AuditError):
            backend.open_storage()
        log = backend.open_reader()  # readers are not held up
        log.close()
    finally:
        first.close()
    backend.open_storage().close()


def test_the_writer_reads_only_what_is_committed(backend: StorageHarness) -> None:
    # A transaction left open on the writer's connection (a ROLLBACK that failed) is
    # rolled back before the next read, or the store would take its rows as landed.
    storage = backend.open_storage()
    try:
        backend.leave_transaction_open(storage)
        assert storage.last_entry() is None
        assert contents(storage) == []
    finally:
        storage.close()


def test_a_snapshot_is_the_log_as_it_stood_at_its_first_read(backend: StorageHarness) -> None:
    # Verify reads checkpoints and then entries: whatever the writer commits in between
    # must be in both or in neither, or a log being written to would not check out.
    rows = chained(1, 4)
    storage = backend.open_storage()
    log = backend.open_reader()
    try:
        storage.write(rows[:2], checkpoint(2))
        with log.snapshot() as snapshot:
            assert snapshot.checkpoints() == [checkpoint(2)]
            storage.write(rows[2:], checkpoint(4))  # the writer goes on meanwhile
            assert list(snapshot.entries(1)) == [row[:3] for row in rows[:2]]
            assert snapshot.checkpoints() == [checkpoint(2)]
            half_read = snapshot.entries(1)
            assert next(half_read) == rows[0][:3]  # left open: the snapshot closes it
        with log.snapshot() as snapshot:
            assert snapshot.checkpoints() == [checkpoint(2), checkpoint(4)]
            assert list(snapshot.entries(3)) == [row[:3] for row in rows[2:]]
    finally:
        log.close()
        storage.close()
