"""Erasing re-identification escrows whose retention has ended.

Escrows (`StoredEscrow`) are written beside their entries' bodies in the same statement
and bound by the body's digest, so erasing one leaves the tree intact. `EscrowEraser`
erases those whose retention has ended a batch at a time, each batch run by the store on
its storage thread while no group is prepared or written (`AuditStore._exclusive`), so
groups go in between batches and a long backlog does not hold up the commits.

Then it asks the storage to purge the copies it keeps outside its tables (SQLite
truncates its WAL, so no copy of an erased escrow stays there). While a reader keeps that
from happening, every later sweep tries again, and so does the first sweep of the next
store opened on the log (the WAL outlives a writer that closes while a reader has it
open).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from audit.clock import Clock
from audit.storage.interface import LogStorage

ERASE_BATCH = 1000
"""Escrows erased per storage call: a long backlog does not hold up the group commits."""

_T = TypeVar("_T")


class RunExclusive(Protocol):
    """Runs one storage call while no group is prepared or written, and awaits it."""

    def __call__(self, step: Callable[[], _T]) -> Awaitable[_T]: ...


class EscrowEraser:
    """Erases a log's expired escrows, and purges the copies the storage still keeps."""

    def __init__(self, storage: LogStorage, now: Clock) -> None:
        self._storage = storage
        self._now = now
        # Whether the storage may still hold an erased escrow outside its tables: until
        # a purge succeeds. True at first, since an earlier process may have left one.
        self._purge_owed = True

    async def erase_expired(self, exclusive: RunExclusive) -> int:
        """Erase every escrow whose retention has ended; return how many were erased."""
        storage = self._storage
        now = int(self._now().timestamp())
        erased = 0
        while True:
            batch = await exclusive(lambda: storage.erase_expired_escrows(now, ERASE_BATCH))
            erased += batch
            if batch:
                self._purge_owed = True
            if batch < ERASE_BATCH:
                break
        if self._purge_owed:
            self._purge_owed = not await exclusive(storage.purge_erased)
        return erased
