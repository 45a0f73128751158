"""Test doubles around a real storage, for what a real database cannot be made to do on
demand, or to see what the store asked of it. Each wraps the backend under test and
implements the storage interface; nothing here is faked but what its name says."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from audit.policy_sets import ArchivedPolicySet
from audit.storage.interface import (
    ChainRow,
    EntryRow,
    LogQueries,
    LogStorage,
    ReadOnlyStorage,
    Snapshot,
    StatisticsRows,
    StoredCheckpoint,
    StoredCosignature,
)


class RecordingStorage:
    """The real storage, with each call noted (method name, thread name) before it runs."""

    def __init__(self, inner: LogStorage) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def count(self, method: str) -> int:
        """How many times `method` was called."""
        return sum(1 for name, _ in self.calls if name == method)

    def threads(self, method: str) -> list[str]:
        """The threads `method` ran on, in call order."""
        return [thread for name, thread in self.calls if name == method]

    def _note(self, method: str) -> None:
        self.calls.append((method, threading.current_thread().name))

    @property
    def location(self) -> str:
        return self.inner.location

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        self._note("entries")
        return self.inner.entries(start)

    def last_entry(self) -> ChainRow | None:
        self._note("last_entry")
        return self.inner.last_entry()

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        self._note("latest_checkpoint")
        return self.inner.latest_checkpoint()

    def write(self, rows: Sequence[EntryRow], checkpoint: StoredCheckpoint) -> None:
        self._note("write")
        self.inner.write(rows, checkpoint)

    def archive_policy_set(self, digest: str, sources: bytes, first_used: str) -> bool:
        self._note("archive_policy_set")
        return self.inner.archive_policy_set(digest, sources, first_used)

    def policy_set(self, digest: str) -> bytes | None:
        self._note("policy_set")
        return self.inner.policy_set(digest)

    def add_cosignature(self, cosignature: StoredCosignature) -> bool:
        self._note("add_cosignature")
        return self.inner.add_cosignature(cosignature)

    def erase_expired_escrows(self, now: int, limit: int) -> int:
        self._note("erase_expired_escrows")
        return self.inner.erase_expired_escrows(now, limit)

    def purge_erased(self) -> bool:
        self._note("purge_erased")
        return self.inner.purge_erased()

    def close(self) -> None:
        self._note("close")
        self.inner.close()


class FailAfterCommitStorage(RecordingStorage):
    """The real storage, except that the next write, once it has committed, reports a
    failure all the same (an I/O error after the COMMIT reached the disk): a fault no
    real database can be made to show on demand."""

    def __init__(self, inner: LogStorage) -> None:
        super().__init__(inner)
        self._fail_next = False

    def fail_next_write_after_commit(self) -> None:
        self._fail_next = True

    def write(self, rows: Sequence[EntryRow], checkpoint: StoredCheckpoint) -> None:
        super().write(rows, checkpoint)
        if self._fail_next:
            self._fail_next = False
            raise OSError(errno.EIO, "I/O error reported after the COMMIT")


class WriterGoesOnStorage:
    """A real read-only storage, except that right after the first read of checkpoints
    (a snapshot's, or the storage's own) it runs `meanwhile` once: the gateway committing
    a group while verify reads, at the worst moment, on demand."""

    def __init__(self, inner: ReadOnlyStorage, meanwhile: Callable[[], object]) -> None:
        self.inner = inner
        self._meanwhile: Callable[[], object] | None = meanwhile

    def _after_checkpoints(self) -> None:
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()

    @property
    def location(self) -> str:
        return self.inner.location

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        return self.inner.entries(start)

    def checkpoints(self) -> list[StoredCheckpoint]:
        found = self.inner.checkpoints()
        self._after_checkpoints()
        return found

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        with self.inner.snapshot() as snapshot:
            yield _WriterGoesOnSnapshot(snapshot, self._after_checkpoints)

    def escrow(self, seq: int) -> bytes | None:
        return self.inner.escrow(seq)

    def count(self) -> int:
        return self.inner.count()

    def checkpoint(self, size: int | None) -> StoredCheckpoint | None:
        return self.inner.checkpoint(size)

    def covering_checkpoint(self, seq: int) -> StoredCheckpoint | None:
        return self.inner.covering_checkpoint(seq)

    def policy_set(self, digest: str) -> bytes | None:
        return self.inner.policy_set(digest)

    def policy_sets(self) -> list[ArchivedPolicySet]:
        return self.inner.policy_sets()

    def statistics(self, since: str | None, until: str | None) -> StatisticsRows:
        return self.inner.statistics(since, until)

    def cosignatures(self) -> list[StoredCosignature]:
        return self.inner.cosignatures()

    def queries(self) -> AbstractContextManager[LogQueries]:
        return self.inner.queries()

    def close(self) -> None:
        self.inner.close()


class _WriterGoesOnSnapshot:
    def __init__(self, inner: Snapshot, after_checkpoints: Callable[[], None]) -> None:
        self._inner = inner
        self._after_checkpoints = after_checkpoints

    def checkpoints(self) -> list[StoredCheckpoint]:
        found = self._inner.checkpoints()
        self._after_checkpoints()
        return found

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        return self._inner.entries(start)


class DiesStorage(RecordingStorage):
    """The real storage until `die()`: from then on no write reaches the database, as
    when the gateway's process has died (a crash, a power cut) right after its last
    commit. Whatever the store would still write as it closes is lost."""

    def __init__(self, inner: LogStorage) -> None:
        super().__init__(inner)
        self._dead = False

    def die(self) -> None:
        self._dead = True

    def write(self, rows: Sequence[EntryRow], checkpoint: StoredCheckpoint) -> None:
        if self._dead:
            self._note("write")
            raise OSError(errno.EIO, "the process is gone")
        super().write(rows, checkpoint)
