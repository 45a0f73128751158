"""Someone who can write the log but does not hold its key rewrites its newest entries.

Before every commit carried its checkpoint, the newest entries of a log were outside any
signed checkpoint (for up to a second, or until the gateway closed; for good after a
crash), and deleting the newest checkpoints made such a tail at will. Whoever could
write the file could change an entry there and recompute the chain: every mode of
`audit verify` said "intact", and the next start signed the forged history with the
real key, after which nothing could tell. Now no entry is committed outside a
checkpoint, verify fails on entries no checkpoint covers, and the store refuses at
start-up to sign over entries it did not itself append.

Each log here is written in two runs of the store, the second ending as if its process
had died right after its last commit, the way an older version left a tail behind.
"""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.errors import AuditError, AuditVerificationError
from audit.store import AuditStore
from audit.verify import verify_log
from tests.audit.audit_support import ORIGIN, append_records
from tests.audit.storagetest.doubles import DiesStorage
from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.support import open_store, reader, verify


def write_then_die(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    """Entries 1 to 3 in a run that closes, then 4 to 6 in one that dies after them."""
    with open_store(backend.open_storage(), key) as store:
        append_records(store, 3)
    storage = DiesStorage(backend.open_storage())
    with open_store(storage, key) as store:
        append_records(store, 3)
        storage.die()


def checkpoint_sizes(backend: StorageHarness) -> list[int]:
    with reader(backend) as log:
        return [c.size for c in log.checkpoints()]


def refused_at_start(backend: StorageHarness, key: Ed25519PrivateKey) -> AuditError:
    before = checkpoint_sizes(backend)
    with pytest.raises(AuditError) as refused:
        AuditStore.on_storage(backend.open_storage(), log_key=key, origin=ORIGIN)
    assert checkpoint_sizes(backend) == before  # nothing was signed
    assert "doelpoort audit verify" in refused.value.detail
    return refused.value


def test_a_rewritten_newest_entry_is_caught_and_never_signed(
    backend: StorageHarness, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # (a) Entry 5 was in the unsigned tail the dead gateway left behind; now the
    # checkpoint of its own commit covers it.
    caplog.set_level(logging.CRITICAL)  # the dead store's failed writes at close
    write_then_die(backend, key)
    backend.rewrite_entry(5)
    with pytest.raises(AuditVerificationError) as failed:
        verify(backend, key)
    assert failed.value.first_bad_seq == 5
    assert "checkpoint at size 5 does not match the entries" in failed.value.reason
    refused = refused_at_start(backend, key)
    assert "not intact near seq 6" in refused.detail  # the latest checkpoint's size


def test_checkpoints_deleted_to_make_a_tail_for_a_rewrite_are_caught_and_never_signed(
    backend: StorageHarness, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # (b) The newest checkpoints are deleted, so that entries 4 to 6 are covered by
    # none, and entry 5 is rewritten under cover of that.
    caplog.set_level(logging.CRITICAL)
    write_then_die(backend, key)
    with reader(backend) as log:
        trusted = next(c.note for c in log.checkpoints() if c.size == 3)  # the DPO's copy
    backend.delete_checkpoints_above(3)
    backend.rewrite_entry(5)
    for kept in (None, trusted):  # alone, and against the DPO's trusted checkpoint
        with reader(backend) as log, pytest.raises(AuditVerificationError) as failed:
            verify_log(log, key.public_key(), origin=ORIGIN, trusted=kept)
        assert failed.value.first_bad_seq == 4
        assert "3 entries after the latest checkpoint (size 3)" in failed.value.reason
    refused = refused_at_start(backend, key)
    assert "ends in 3 entries (seq 4 to 6) that no signed checkpoint covers" in refused.detail
    assert "(its latest checkpoint is at size 3)" in refused.detail


def test_deleted_newest_checkpoints_alone_are_refused_at_start(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    # No entry changed, but the gateway cannot tell: it signs no entry it did not just
    # append itself, and the entries it appended are its own only under their checkpoint.
    with open_store(backend.open_storage(), key) as store:
        append_records(store, 4)
    backend.delete_checkpoints_above(2)
    refused = refused_at_start(backend, key)
    assert "ends in 2 entries (seq 3 to 4)" in refused.detail
