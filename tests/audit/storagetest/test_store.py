"""`AuditStore` on each backend: group commit, durability, failure, recovery, checkpoints."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import open_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditError
from audit.reader import AuditReader
from audit.store import AuditStore
from audit.verify import verify_log
from tests.audit.audit_support import ORIGIN, append_records, make_record
from tests.audit.reference_tree import reference_root
from tests.audit.storagetest.doubles import (
    FailAfterCommitStorage,
    RecordingStorage,
    WriterGoesOnStorage,
)
from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.support import open_store, reader, verify, write_log


def test_concurrent_appends_share_commits(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    tasks, per_task = 100, 2

    async def run(store: AuditStore) -> list[list[int]]:
        async def one(i: int) -> list[int]:
            return await store.append([make_record(i * per_task + j) for j in range(per_task)])

        return await asyncio.gather(*(one(i) for i in range(tasks)))

    with open_store(backend.open_storage(), key) as store:
        results = asyncio.run(run(store))
        assert store.commit_count < tasks
        assert store.size == tasks * per_task
        assert store.healthy()
    for seqs in results:
        assert seqs == list(range(seqs[0], seqs[0] + per_task))  # a batch stays together
    assert sorted(s for seqs in results for s in seqs) == list(range(1, tasks * per_task + 1))
    assert verify(backend, key).entries == tasks * per_task


def test_entries_survive_reopen_and_the_chain_continues(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    write_log(backend, key, 3)
    with open_store(backend.open_storage(), key) as store:
        assert store.size == 3
        assert asyncio.run(store.append([make_record(10), make_record(11)])) == [4, 5]
    with reader(backend) as log:
        entries = list(log.iter_entries())
        assert log.count() == 5
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev == GENESIS_PREV
    leaves: list[bytes] = []
    for entry in entries:
        if leaves:
            assert entry.prev == leaves[-1]
        leaves.append(entry_leaf_hash(entry.seq, entry.prev, entry.body))
    assert entries[3].body == make_record(10).body()
    report = verify(backend, key)
    assert (report.entries, report.checkpoints) == (5, 4)  # one checkpoint per commit
    assert report.root == reference_root(leaves)


def test_iter_entries_streams_from_a_start(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    write_log(backend, key, 5)
    with reader(backend) as log:
        assert [e.seq for e in log.iter_entries(start=4)] == [4, 5]


def test_write_failure_fails_the_batch_and_marks_unhealthy(
    backend: StorageHarness, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        # A real failure inside the database, as a full disk would cause.
        backend.fail_writes(purpose="boom")
        with pytest.raises(AuditError) as failed:
            await store.append([make_record(2), make_record(3, purpose="boom")])
        assert isinstance(failed.value.__cause__, backend.error)
        assert not store.healthy()
        assert store.size == 1
        backend.stop_failing()
        assert await store.append([make_record(4)]) == [2]  # no gap: state rolled back
        assert store.healthy()

    with open_store(backend.open_storage(), key) as store:
        asyncio.run(run(store))
    assert verify(backend, key).entries == 2
    assert "audit write of 2 entries failed" in caplog.text
    for fragment in ("psn:dpo:", "urn:uuid:", "CTI-2026", "politie"):
        assert fragment not in caplog.text  # the store never logs bodies


def test_a_group_larger_than_one_statement_is_one_transaction(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    # Large enough to take three statements: the last row goes into the third.
    large = 2 * backend.rows_per_statement + 1

    async def run(store: AuditStore) -> None:
        first = await store.append([make_record(i) for i in range(large)])
        assert first == list(range(1, large + 1))
        # A failure in the third statement of a group takes the first two back with it.
        backend.fail_writes(purpose="boom")
        batch = [make_record(large + i) for i in range(large - 1)]
        with pytest.raises(AuditError):
            await store.append([*batch, make_record(2 * large, purpose="boom")])
        assert store.size == large
        backend.stop_failing()
        assert await store.append([make_record(3 * large)]) == [large + 1]

    with open_store(backend.open_storage(), key) as store:
        asyncio.run(run(store))
    with reader(backend) as log:
        assert log.count() == large + 1
    assert verify(backend, key).entries == large + 1


def test_a_transaction_left_open_is_rolled_back_before_the_next_write(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    storage = backend.open_storage()

    async def run(store: AuditStore) -> None:
        backend.leave_transaction_open(storage)
        assert await store.append([make_record(1)]) == [1]

    with open_store(storage, key) as store:
        asyncio.run(run(store))
        # "Durable" means another connection sees it, and it is the real entry.
        with reader(backend) as log:
            assert [e.body for e in log.iter_entries()] == [make_record(1).body()]
    assert verify(backend, key).entries == 1


def test_entries_appended_behind_the_store_are_never_signed(
    backend: StorageHarness, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone without the key appends a well-chained entry while a write of the store
    # fails (or makes it fail by taking its seq). Rebuilding the state from the table
    # would have the next group's checkpoint sign that entry with the real key.
    storage = RecordingStorage(backend.open_storage())

    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        backend.fail_writes(purpose="boom")
        with pytest.raises(AuditError):
            await store.append([make_record(2, purpose="boom")])
        assert not store.healthy()
        backend.append_behind_the_store(make_record(2))
        backend.stop_failing()
        scans, heads = storage.count("entries"), storage.count("last_entry")
        for i in range(3):
            with pytest.raises(AuditError, match="could not be written") as refused:
                await store.append([make_record(3 + i)])
            assert "changed behind the gateway" in str(refused.value.__cause__)
            assert not store.healthy()
        assert store.size == 1
        # The head was read once, and the table never scanned to rebuild from it.
        assert (storage.count("entries"), storage.count("last_entry")) == (scans, heads + 1)

    with open_store(storage, key) as store:
        asyncio.run(run(store))
    with reader(backend) as log:
        assert [c.size for c in log.checkpoints()] == [1]  # nothing signed over seq 2
    found = "after a failed write it ends at seq 2"
    assert found in caplog.text
    assert "had written up to seq 1" in caplog.text
    assert "doelpoort audit verify --log-key" in caplog.text
    assert caplog.text.count(found) == 1  # said once, not per refused append
    with pytest.raises(AuditError, match=r"ends in 1 entry \(seq 2 to 2\) that no signed"):
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin=ORIGIN)


def test_an_entry_forged_behind_the_store_is_never_signed(
    backend: StorageHarness, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        backend.fail_writes()
        with pytest.raises(AuditError):
            await store.append([make_record(2)])
        backend.stop_failing()
        # Meanwhile a row that does not chain appears.
        backend.forge_entry(2)
        for i in range(2):
            with pytest.raises(AuditError, match="could not be written"):
                await store.append([make_record(3 + i)])
            assert not store.healthy()
        assert store.size == 1

    with open_store(backend.open_storage(), key) as store:
        asyncio.run(run(store))
    assert "changed behind the gateway" in caplog.text
    with reader(backend) as log:
        assert [c.size for c in log.checkpoints()] == [1]
    with pytest.raises(AuditError, match="not intact near seq 2"):
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin=ORIGIN)


def test_a_failed_commit_that_landed_is_recognised_by_its_last_entry(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    storage = FailAfterCommitStorage(backend.open_storage())

    async def run(store: AuditStore) -> None:
        assert await store.append([make_record(1)]) == [1]
        storage.fail_next_write_after_commit()
        with pytest.raises(AuditError):
            await store.append([make_record(2), make_record(3)])
        assert not store.healthy()
        scans = storage.count("entries")
        assert await store.append([make_record(4)]) == [4]
        assert store.healthy()
        # The last entry told which state the table holds: no read of the whole table.
        assert storage.count("entries") == scans
        assert storage.count("last_entry") == 1

    with open_store(storage, key) as store:
        asyncio.run(run(store))
    assert verify(backend, key).entries == 4


def test_a_checkpoint_that_cannot_be_signed_fails_the_batch(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    def broken_clock() -> datetime:
        raise RuntimeError("clock unavailable")  # needed to stamp the checkpoint

    async def run(store: AuditStore) -> None:
        with pytest.raises(AuditError):
            await store.append([make_record(1)])
        assert not store.healthy()

    with open_store(backend.open_storage(), key, now=broken_clock) as store:
        asyncio.run(run(store))
        with reader(backend) as log:
            assert log.count() == 0


def test_every_commit_carries_its_checkpoint(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    # No entry is ever committed outside a signed checkpoint: there is nothing to sign
    # later, when the log goes idle or the store closes.
    storage = RecordingStorage(backend.open_storage())

    async def run(store: AuditStore) -> None:
        for sizes in ([1], [1, 3], [1, 3, 4]):
            await store.append([make_record(i) for i in range(sizes[-1] - store.size)])
            with reader(backend) as log:
                assert [c.size for c in log.checkpoints()] == sizes
                assert log.count() == sizes[-1]

    with open_store(storage, key) as store:
        asyncio.run(run(store))
        assert store.commit_count == 3
    # One write per group, the checkpoint in it; none at close. All on the storage thread.
    writers = storage.threads("write")
    assert len(writers) == 3
    assert all(name.startswith("audit") for name in writers)


def test_every_waiter_of_a_failed_commit_gets_audit_error(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    async def run(store: AuditStore) -> list[object]:
        return await asyncio.gather(
            *(store.append([make_record(i)]) for i in range(20)), return_exceptions=True
        )

    with open_store(backend.open_storage(), key) as store:
        backend.fail_writes()
        results = asyncio.run(run(store))
        assert all(isinstance(r, AuditError) for r in results)
        assert not store.healthy()
        assert store.size == 0


def test_a_record_that_cannot_be_encoded_is_an_audit_error(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        bad = make_record(1, policy_input={"score": float("nan")})
        with pytest.raises(AuditError, match="encoded as JSON"):
            asyncio.run(store.append([make_record(0), bad]))
        assert store.size == 0
        assert store.healthy()


def test_a_checkpoint_per_commit_group(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    write_log(backend, key, 7, group=3)
    with reader(backend) as log:
        stored = log.checkpoints()
    assert [c.size for c in stored] == [3, 6, 7]
    for c in stored:
        cp = open_checkpoint(c.note, "test.doelpoort.local/audit", key.public_key(), ORIGIN)
        assert (cp.size, cp.root) == (c.size, c.root)
        assert c.created_at.endswith("Z")


def test_no_new_checkpoint_when_nothing_was_added(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    write_log(backend, key, 2)
    with open_store(backend.open_storage(), key):
        pass
    with reader(backend) as log:
        assert [c.size for c in log.checkpoints()] == [1, 2]  # none added by open or close


def test_close_is_idempotent_and_refuses_appends(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        store.close()
        store.close()
        assert not store.healthy()
        with pytest.raises(AuditError, match="closed"):
            asyncio.run(store.append([make_record(1)]))

    async def append_nothing() -> list[int]:
        with open_store(backend.open_storage(), key) as store:
            return await store.append([])

    assert asyncio.run(append_nothing()) == []


def test_open_refuses_a_log_that_is_not_intact(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    write_log(backend, key, 4)
    backend.tamper_body(2)
    with pytest.raises(AuditError, match="near seq 3"):
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin=ORIGIN)


def test_open_refuses_a_log_shorter_than_its_checkpoint(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    write_log(backend, key, 4)
    backend.delete_entry(4)
    with pytest.raises(AuditError, match="near seq 4"):
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin=ORIGIN)


def test_open_refuses_the_log_of_another_deployment(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    # Appending under another key would fork the log: none of it would verify any more.
    write_log(backend, key, 4)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(AuditError, match="not this deployment's"):
        AuditStore.on_storage(backend.open_storage(), log_key=other, origin=ORIGIN)
    with pytest.raises(AuditError, match="not this deployment's"):
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin="elsewhere.example/audit")
    with open_store(backend.open_storage(), key) as store:  # its own deployment opens it
        assert store.size == 4


def test_a_refused_open_closes_the_storage(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    # The store owns the storage it is given, also when it refuses it: the writer lock
    # goes with it, and the next open (with a good origin) is not held up.
    storage = RecordingStorage(backend.open_storage())
    with pytest.raises(ValueError, match="key names"):
        AuditStore.on_storage(storage, log_key=key, origin="two words")
    assert storage.count("close") == 1
    with open_store(backend.open_storage(), key) as store:
        assert asyncio.run(store.append([make_record(1)])) == [1]


def test_reader_reads_while_the_store_writes(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    async def run(store: AuditStore) -> None:
        await store.append([make_record(1)])
        with reader(backend) as log:
            assert log.count() == 1
            await store.append([make_record(2)])
            assert [e.seq for e in log.iter_entries()] == [1, 2]

    with open_store(backend.open_storage(), key) as store:
        asyncio.run(run(store))


def test_verify_reads_one_snapshot_of_a_log_being_written_to(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    # The gateway commits a group (entries and their checkpoint) right after verify has
    # read the checkpoints: verify checks the log as it stood before that commit.
    with open_store(backend.open_storage(), key) as store:
        append_records(store, 3)
        live = WriterGoesOnStorage(
            backend.open_reader(), lambda: asyncio.run(store.append([make_record(9)]))
        )
        with AuditReader(live) as log:
            report = verify_log(log, key.public_key(), origin=ORIGIN)
        assert (report.entries, report.checkpoints) == (3, 3)
        assert store.size == 4  # the commit did happen meanwhile
    report = verify(backend, key)
    assert (report.entries, report.checkpoints) == (4, 4)


def test_a_log_has_one_writer(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    # Each store keeps the log's head in memory: a second writer would collide with it
    # on every append, so it is refused at open, and the lock goes with the first.
    with open_store(backend.open_storage(), key):
        with pytest.raises(AuditError):
            backend.open_storage()
        with reader(backend) as log:  # readers (the DPO's tools) are not held up
            assert log.count() == 0
    with open_store(backend.open_storage(), key) as store:
        assert asyncio.run(store.append([make_record(1)])) == [1]
