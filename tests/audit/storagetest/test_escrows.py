"""Escrows kept beside the entries on each backend, and erased when their retention ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import escrow_digest
from audit.errors import AuditError
from audit.retention import ERASE_BATCH
from tests.audit.audit_support import (
    START,
    WallClock,
    append_with_escrows,
    escrow_expiring,
    make_record,
    sealed,
)
from tests.audit.storagetest.doubles import RecordingStorage
from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.support import open_store, reader, verify


def escrows(backend: StorageHarness) -> dict[int, str | None]:
    with reader(backend) as log:
        return {entry.seq: log.escrow(entry.seq) for entry in log.iter_entries()}


def test_an_escrow_is_kept_beside_each_entry_of_its_batch(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key, now=WallClock()) as store:
        append_with_escrows(store)
    assert escrows(backend) == {1: sealed("a"), 2: sealed("a"), 3: None, 4: sealed("b")}
    assert verify(backend, key).entries == 4


def test_only_expired_escrows_are_erased_and_the_log_stays_intact(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    clock = WallClock()
    storage = RecordingStorage(backend.open_storage())
    with open_store(storage, key, now=clock) as store:
        append_with_escrows(store)
        with reader(backend) as log:
            bodies = [entry.body for entry in log.iter_entries()]
        clock.now = START + timedelta(days=180) - timedelta(seconds=1)
        assert asyncio.run(store.erase_expired_escrows()) == 0
        purges = storage.count("purge_erased")
        clock.now = START + timedelta(days=180)
        assert asyncio.run(store.erase_expired_escrows()) == 2
        # The copies the backend keeps outside its tables are purged after an erasure ...
        assert storage.count("purge_erased") == purges + 1
        assert asyncio.run(store.erase_expired_escrows()) == 0  # nothing twice
        assert storage.count("purge_erased") == purges + 1  # ... and only then
        assert escrows(backend) == {1: None, 2: None, 3: None, 4: sealed("b")}
        # The bodies (and so the tree) are as they were; appending goes on.
        with reader(backend) as log:
            assert [entry.body for entry in log.iter_entries()] == bodies
        assert asyncio.run(store.append([make_record(5)])) == [5]
    assert verify(backend, key).entries == 5  # verify raises on a log that is not intact


def test_a_backlog_is_erased_in_batches(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    clock = WallClock()
    backlog = 2 * ERASE_BATCH + 1
    storage = RecordingStorage(backend.open_storage())
    with open_store(storage, key, now=clock) as store:
        escrow = escrow_expiring("c", 1)
        digest = escrow_digest(escrow.sealed)
        records = [make_record(i, escrow_sha256=digest) for i in range(backlog)]
        asyncio.run(store.append(records, escrow))
        clock.now = START + timedelta(days=2)
        assert asyncio.run(store.erase_expired_escrows()) == backlog
        # Three batches: appends may go in between them.
        assert storage.count("erase_expired_escrows") == 3
    assert set(escrows(backend).values()) == {None}


def test_erasing_on_a_closed_store_is_a_clear_error(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key, now=WallClock()) as store:
        pass
    with pytest.raises(AuditError, match="closed"):
        asyncio.run(store.erase_expired_escrows())


def test_appends_go_on_around_an_erasure(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    clock = WallClock()
    with open_store(backend.open_storage(), key, now=clock) as store:
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
    assert verify(backend, key).entries == 54
