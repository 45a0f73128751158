"""Read-only access to the audit log, for verify and the DPO tools."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from audit.policy_sets import ArchivedPolicySet, decode_policy_set
from audit.storage.interface import (
    LogQueries,
    ReadOnlyStorage,
    Snapshot,
    StatisticsRows,
    StoredCheckpoint,
    StoredCosignature,
    StoredEntry,
)
from audit.storage.sqlite.reader import SQLiteReadOnlyStorage

__all__ = [
    "ArchivedPolicySet",
    "AuditReader",
    "Snapshot",
    "StoredCheckpoint",
    "StoredCosignature",
    "StoredEntry",
]


class AuditReader:
    """Opens an audit log read-only; never creates or changes it."""

    def __init__(self, source: Path | ReadOnlyStorage) -> None:
        """`source` is the SQLite file (`AuditError` when there is none), or a storage
        opened read-only, which the reader owns from now on."""
        self._storage = SQLiteReadOnlyStorage.open(source) if isinstance(source, Path) else source

    @property
    def location(self) -> str:
        """Where the log is, for messages."""
        return self._storage.location

    def iter_entries(self, start: int = 1) -> Iterator[StoredEntry]:
        """Entries with seq >= `start` in seq order, streamed in chunks from one snapshot."""
        return map(StoredEntry._make, self.iter_rows(start))

    def iter_rows(self, start: int = 1) -> Iterator[tuple[int, bytes, bytes]]:
        """`iter_entries` as plain (seq, prev, body) tuples, for hot loops such as verify."""
        return self._storage.entries(start)  # the backend's own generator: no extra layer

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest size first."""
        return self._storage.checkpoints()

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """The log as it stands now, for as long as the context lasts: its checkpoints and
        entries belong together however the gateway goes on appending (each of its
        commits adds entries and their checkpoint at once). Verify reads one."""
        return self._storage.snapshot()

    def escrow(self, seq: int) -> str | None:
        """The escrow kept beside entry `seq`; None when it has none or it was erased.

        Bytes that are not UTF-8 come back with replacement characters: they match no
        digest, which is how the caller finds out. Raises `AuditError` when the column
        cannot be read.
        """
        stored = self._storage.escrow(seq)
        return None if stored is None else stored.decode("utf-8", errors="replace")

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None:
        """The stored checkpoint at `size`, or the latest one (None: the largest); None
        when there is none. One row, however many checkpoints the log holds."""
        return self._storage.checkpoint(size)

    def covering_checkpoint(self, seq: int) -> StoredCheckpoint | None:
        """The smallest stored checkpoint whose tree holds entry `seq` (the one that
        first vouched for it); None when none does yet. One row."""
        return self._storage.covering_checkpoint(seq)

    def count(self) -> int:
        """Number of stored entries."""
        return self._storage.count()

    def policy_set(self, digest: str) -> dict[str, str] | None:
        """The files (relative path → content) of the policy set archived under
        `digest`; None when the archive holds none. Raises `PolicySetMismatch` when what
        it holds is not that set (its content was changed after it was archived)."""
        stored = self._storage.policy_set(digest)
        return None if stored is None else decode_policy_set(digest, stored)

    def policy_sets(self) -> list[ArchivedPolicySet]:
        """Every archived policy set (digest, first use), earliest first."""
        return self._storage.policy_sets()

    def statistics_rows(self, since: str | None = None, until: str | None = None) -> StatisticsRows:
        """The aggregates behind `audit.statistics.statistics`, for entries with
        ``since <= time < until`` (RFC 3339 UTC; None: unbounded), computed by the
        database: no body is read into memory."""
        return self._storage.statistics(since, until)

    def cosignatures(self) -> list[StoredCosignature]:
        """Every witness cosignature the gateway stored, by checkpoint size, then key ID."""
        return self._storage.cosignatures()

    def queries(self) -> AbstractContextManager[LogQueries]:
        """The DPO's indexed searches (`audit.query` runs them) on the log as it stands
        now, for as long as the context lasts. Raises `AuditError` when the log has not
        been upgraded for them yet (the gateway does that when it opens the log)."""
        return self._storage.queries()

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> AuditReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
