"""Stores and readers on a harness's backend, for the suite's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.reader import AuditReader
from audit.storage.interface import LogStorage
from audit.store import AuditStore
from audit.verify import VerifyReport, verify_log
from tests.audit.audit_support import ORIGIN, append_records
from tests.audit.storagetest.harness import StorageHarness


@contextmanager
def open_store(storage: LogStorage, key: Ed25519PrivateKey, **options: Any) -> Iterator[AuditStore]:
    """A store on `storage`; closed on exit."""
    store = AuditStore.on_storage(storage, log_key=key, origin=ORIGIN, **options)
    try:
        yield store
    finally:
        store.close()


def reader(backend: StorageHarness) -> AuditReader:
    return AuditReader(backend.open_reader())


def write_log(backend: StorageHarness, key: Ed25519PrivateKey, n: int, *, group: int = 1) -> None:
    """`n` entries, `group` to a commit, so checkpoints land at multiples of `group`
    (and at n)."""
    with open_store(backend.open_storage(), key) as store:
        append_records(store, n, group=group)


def verify(backend: StorageHarness, key: Ed25519PrivateKey) -> VerifyReport:
    with reader(backend) as log:
        return verify_log(log, key.public_key(), origin=ORIGIN)
