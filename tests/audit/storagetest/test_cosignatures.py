"""Witness cosignatures kept beside the checkpoints they countersign, on each backend."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.reader import StoredCosignature
from tests.audit.audit_support import append_records
from tests.audit.storagetest.doubles import RecordingStorage
from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.support import open_store, reader, verify

WITNESS = "witness.dpo.example"
KEY_A, KEY_B = bytes.fromhex("0a0b0c0d"), bytes.fromhex("01020304")


def line(tag: str) -> str:
    # Stands in for a cosignature line: the store keeps it as the witness sent it.
    return f"— {WITNESS} {tag}"


def test_a_cosignature_of_a_stored_checkpoint_is_kept_and_read_back(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    storage = RecordingStorage(backend.open_storage())
    with open_store(storage, key) as store:
        append_records(store, 3, group=2)  # checkpoints at sizes 2 and 3

        async def add() -> list[bool]:
            return [
                await store.add_cosignature(3, WITNESS, KEY_A, line("a3"), "2026-12-01T10:00:00Z"),
                await store.add_cosignature(2, WITNESS, KEY_A, line("a2"), "2026-12-01T10:00:01Z"),
                await store.add_cosignature(3, "other", KEY_B, line("b3"), "2026-12-01T10:00:02Z"),
            ]

        assert asyncio.run(add()) == [True, True, True]
        # On the storage thread, like every write.
        assert storage.threads("add_cosignature") == ["audit_0"] * 3
    with reader(backend) as log:
        assert log.cosignatures() == [
            StoredCosignature(2, WITNESS, KEY_A, line("a2"), "2026-12-01T10:00:01Z"),
            StoredCosignature(3, "other", KEY_B, line("b3"), "2026-12-01T10:00:02Z"),
            StoredCosignature(3, WITNESS, KEY_A, line("a3"), "2026-12-01T10:00:00Z"),
        ]
    assert verify(backend, key).entries == 3  # nothing the tree covers changed


def test_a_second_cosignature_by_a_key_keeps_the_first_and_no_size_is_made_up(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        append_records(store, 2, group=2)
        first = asyncio.run(store.add_cosignature(2, WITNESS, KEY_A, line("1"), "t1"))
        again = asyncio.run(store.add_cosignature(2, WITNESS, KEY_A, line("2"), "t2"))
        assert (first, again) == (True, False)
        for size in (1, 3, 0):  # no checkpoint of that size was ever signed
            with pytest.raises(ValueError, match=f"no checkpoint of size {size}"):
                asyncio.run(store.add_cosignature(size, WITNESS, KEY_A, line("x"), "t3"))
        assert store.healthy()  # a refused cosignature is not a failed write
        assert asyncio.run(store.append([])) == []
    with reader(backend) as log:
        assert [(c.size, c.line) for c in log.cosignatures()] == [(2, line("1"))]


def test_a_log_without_cosignatures_has_none(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        append_records(store, 1)
    with reader(backend) as log:
        assert log.cosignatures() == []
