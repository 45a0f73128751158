"""Read-only access to the audit database, for verify and the DPO tools."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from audit._schema import (
    SELECT_CHECKPOINTS,
    SELECT_ENTRIES,
    SELECT_ESCROW,
    create_reader_engine,
    driver_connection,
)
from audit.errors import AuditError

FETCH_ROWS = 4096


class StoredEntry(NamedTuple):
    """One row of the log: its leaf is ``leaf_bytes(seq, prev, body)``."""

    seq: int
    prev: bytes
    body: bytes


class StoredCheckpoint(NamedTuple):
    """One stored signed checkpoint; `size` and `root` repeat what `note` signs."""

    size: int
    root: bytes
    note: str
    created_at: str


class AuditReader:
    """Opens an audit database read-only; never creates or changes it."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise AuditError(f"no audit database at {path}")
        self.path = path
        self._engine = create_reader_engine(path)

    def iter_entries(self, start: int = 1) -> Iterator[StoredEntry]:
        """Entries with seq >= `start` in seq order, streamed in chunks from one snapshot."""
        return map(StoredEntry._make, self.iter_rows(start))

    def iter_rows(self, start: int = 1) -> Iterator[tuple[int, bytes, bytes]]:
        """`iter_entries` as plain (seq, prev, body) tuples, for hot loops such as verify."""
        proxy = self._engine.raw_connection()
        try:
            cur = driver_connection(proxy).execute(SELECT_ENTRIES, (start,))
            try:
                while rows := cur.fetchmany(FETCH_ROWS):
                    yield from rows
            finally:
                cur.close()
        finally:
            proxy.close()

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest size first."""
        proxy = self._engine.raw_connection()
        try:
            rows = driver_connection(proxy).execute(SELECT_CHECKPOINTS).fetchall()
        finally:
            proxy.close()
        return [StoredCheckpoint._make(row) for row in rows]

    def escrow(self, seq: int) -> str | None:
        """The escrow kept beside entry `seq`; None when it has none or it was erased.

        Bytes that are not UTF-8 come back with replacement characters: they match no
        digest, which is how the caller finds out. Raises `AuditError` when the column
        cannot be read.
        """
        proxy = self._engine.raw_connection()
        try:
            row = driver_connection(proxy).execute(SELECT_ESCROW, (seq,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such column" in str(exc):
                raise AuditError(
                    f"{self.path} has no escrow column: it was made by an earlier version "
                    "of Doelpoort"
                ) from exc
            raise AuditError(f"cannot read the escrow of entry {seq} in {self.path}") from exc
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the escrow of entry {seq} in {self.path}") from exc
        finally:
            proxy.close()
        if row is None or row[0] is None:
            return None
        return bytes(row[0]).decode("utf-8", errors="replace")

    def count(self) -> int:
        """Number of stored entries."""
        proxy = self._engine.raw_connection()
        try:
            row = driver_connection(proxy).execute("SELECT count(*) FROM entries").fetchone()
        finally:
            proxy.close()
        return int(row[0])

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> AuditReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
