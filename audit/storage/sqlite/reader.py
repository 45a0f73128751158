"""`SQLiteReadOnlyStorage`: a SQLite audit log opened read-only (a `ReadOnlyStorage`).

Each call opens its own connection with SQLite's mode=ro and query_only, so a reader
never creates or changes the file, and in WAL mode never holds up the writer. A
snapshot is one read transaction on one connection: in WAL mode its first read fixes
what it sees, however many commits follow; so are the DPO's queries (`queries`), which
need a log of the current schema version (a reader never upgrades one).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.policy_sets import ArchivedPolicySet
from audit.storage import tables
from audit.storage.interface import ChainRow, StatisticsRows, StoredCheckpoint, StoredCosignature
from audit.storage.sqlite import statistics as statistics_sql
from audit.storage.sqlite.connection import create_reader_engine, driver_connection
from audit.storage.sqlite.queries import SQLiteQueries
from audit.storage.sqlite.statements import (
    COUNT_ENTRIES,
    HAS_COSIGNATURES,
    HAS_POLICY_SETS,
    SELECT_CHECKPOINT,
    SELECT_CHECKPOINTS,
    SELECT_COSIGNATURES,
    SELECT_COVERING_CHECKPOINT,
    SELECT_ENTRIES,
    SELECT_ESCROW,
    SELECT_LATEST_CHECKPOINT,
    SELECT_POLICY_SET,
    SELECT_POLICY_SETS,
    SELECT_SCHEMA_VERSION,
)

FETCH_ROWS = 4096
"""Entries fetched per call into the driver while streaming (verify's hot loop)."""


class SQLiteReadOnlyStorage:
    """A SQLite audit log for reading; use `SQLiteReadOnlyStorage.open`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._engine = create_reader_engine(path)

    @classmethod
    def open(cls, path: Path) -> SQLiteReadOnlyStorage:
        """Raises `AuditError` when there is no database at `path`: a reader never makes one."""
        if not path.is_file():
            raise AuditError(f"no audit database at {path}")
        return cls(path)

    @property
    def location(self) -> str:
        return str(self._path)

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        proxy = self._engine.raw_connection()
        try:
            yield from _stream(driver_connection(proxy), start)
        finally:
            proxy.close()

    def checkpoints(self) -> list[StoredCheckpoint]:
        proxy = self._engine.raw_connection()
        try:
            rows = driver_connection(proxy).execute(SELECT_CHECKPOINTS).fetchall()
        finally:
            proxy.close()
        return [StoredCheckpoint._make(row) for row in rows]

    @contextmanager
    def snapshot(self) -> Iterator[SQLiteSnapshot]:
        proxy = self._engine.raw_connection()
        try:
            conn = driver_connection(proxy)
            conn.execute("BEGIN")  # deferred: the snapshot's first read fixes what it sees
            snapshot = SQLiteSnapshot(conn)
            try:
                yield snapshot
            finally:
                snapshot.close()
        finally:
            proxy.close()  # ends the read transaction (nothing was written)

    def escrow(self, seq: int) -> bytes | None:
        proxy = self._engine.raw_connection()
        try:
            row = driver_connection(proxy).execute(SELECT_ESCROW, (seq,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such column" in str(exc):
                raise AuditError(
                    f"{self._path} has no escrow column: it was made by an earlier version "
                    "of Doelpoort"
                ) from exc
            raise AuditError(f"cannot read the escrow of entry {seq} in {self._path}") from exc
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the escrow of entry {seq} in {self._path}") from exc
        finally:
            proxy.close()
        return None if row is None or row[0] is None else bytes(row[0])

    def checkpoint(self, size: int | None) -> StoredCheckpoint | None:
        if size is None:
            row = self._one(SELECT_LATEST_CHECKPOINT, ())
        else:
            row = self._one(SELECT_CHECKPOINT, (size,))
        return None if row is None else StoredCheckpoint._make(row)

    def covering_checkpoint(self, seq: int) -> StoredCheckpoint | None:
        row = self._one(SELECT_COVERING_CHECKPOINT, (seq,))
        return None if row is None else StoredCheckpoint._make(row)

    def _one(self, statement: str, params: tuple[int, ...]) -> Any:
        proxy = self._engine.raw_connection()
        try:
            return driver_connection(proxy).execute(statement, params).fetchone()
        finally:
            proxy.close()

    def count(self) -> int:
        proxy = self._engine.raw_connection()
        try:
            row = driver_connection(proxy).execute(COUNT_ENTRIES).fetchone()
        finally:
            proxy.close()
        return int(row[0])

    def cosignatures(self) -> list[StoredCosignature]:
        proxy = self._engine.raw_connection()
        try:
            conn = driver_connection(proxy)
            if conn.execute(HAS_COSIGNATURES).fetchone() is None:
                return []  # a log no writer of this version has opened has none
            rows = conn.execute(SELECT_COSIGNATURES).fetchall()
        finally:
            proxy.close()
        return [StoredCosignature._make(row) for row in rows]

    @contextmanager
    def queries(self) -> Iterator[SQLiteQueries]:
        proxy = self._engine.raw_connection()
        try:
            conn = driver_connection(proxy)
            (version,) = conn.execute(SELECT_SCHEMA_VERSION).fetchone()
            if version < tables.SCHEMA_VERSION:
                raise AuditError(
                    f"the audit log {self._path} has not been upgraded for the DPO's "
                    "searches yet: start the gateway once (`doelpoort serve`), which "
                    'upgrades it in place, then try again (docs/dpo.md, "Upgrading an '
                    'existing log")'
                )
            conn.execute("BEGIN")  # one view of the log for every query of the context
            yield SQLiteQueries(conn)
        finally:
            proxy.close()

    def policy_set(self, digest: str) -> bytes | None:
        rows = self._archive(SELECT_POLICY_SET, (digest,))
        return bytes(rows[0][0]) if rows else None

    def policy_sets(self) -> list[ArchivedPolicySet]:
        return [ArchivedPolicySet._make(row) for row in self._archive(SELECT_POLICY_SETS, ())]

    def _archive(self, statement: str, params: tuple[str, ...]) -> list[Any]:
        """Rows from the archive of policy sets; none from a log made before it, which
        has no such table until a writer of this version opens it (a reader never adds it)."""
        proxy = self._engine.raw_connection()
        try:
            conn = driver_connection(proxy)
            found = conn.execute(HAS_POLICY_SETS).fetchone()
            return conn.execute(statement, params).fetchall() if found else []
        finally:
            proxy.close()

    def statistics(self, since: str | None, until: str | None) -> StatisticsRows:
        proxy = self._engine.raw_connection()
        try:
            return statistics_sql.collect(driver_connection(proxy), since, until)
        finally:
            proxy.close()

    def close(self) -> None:
        self._engine.dispose()


class SQLiteSnapshot:
    """One read transaction; use `SQLiteReadOnlyStorage.snapshot`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._streams: list[Generator[ChainRow, None, None]] = []

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._conn.execute(SELECT_CHECKPOINTS).fetchall()
        return [StoredCheckpoint._make(row) for row in rows]

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        stream = _stream(self._conn, start)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        # A stream left half-read (verify stops at the first bad entry) closes its
        # cursor now, while the connection is still open.
        for stream in self._streams:
            stream.close()


def _stream(conn: sqlite3.Connection, start: int) -> Generator[ChainRow, None, None]:
    cur = conn.execute(SELECT_ENTRIES, (start,))
    try:
        while rows := cur.fetchmany(FETCH_ROWS):
            yield from rows
    finally:
        cur.close()
