"""`SQLiteStorage`: the writer's side of a SQLite audit log (a `LogStorage`)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

from audit.errors import AuditError
from audit.storage.interface import ChainRow, EntryRow, StoredCheckpoint, StoredCosignature
from audit.storage.sqlite.connection import (
    BUSY_TIMEOUT_MS,
    create_writer_engine,
    driver_connection,
)
from audit.storage.sqlite.lock import lock_writer
from audit.storage.sqlite.schema import create_schema
from audit.storage.sqlite.statements import (
    ERASE_EXPIRED_ESCROWS,
    HAS_CHECKPOINT,
    HAS_COSIGNATURE,
    INSERT_CHECKPOINT,
    INSERT_COSIGNATURE,
    INSERT_POLICY_SET,
    MAX_ROWS_PER_INSERT,
    SELECT_ENTRIES,
    SELECT_LAST_ENTRY,
    SELECT_LATEST_CHECKPOINT,
    SELECT_POLICY_SET,
    TRUNCATE_WAL,
    insert_entries,
    insert_group,
)

log = logging.getLogger(__name__)


class SQLiteStorage:
    """The log in one SQLite file, for its one writer; use `SQLiteStorage.open`."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, release: Callable[[], None]
    ) -> None:
        self._path = path
        self._conn = connection
        self._release = release

    @classmethod
    def open(cls, path: Path) -> SQLiteStorage:
        """Take the log's writer lock, then open (or create) the database at `path`.

        Raises `AuditError` when another process writes to it, when it was made by an
        earlier version, or when it cannot be opened.
        """
        lock = lock_writer(path)
        try:
            engine = create_writer_engine(path)
            create_schema(engine, path)
            proxy = engine.raw_connection()
        except BaseException as exc:
            os.close(lock)
            if isinstance(exc, AuditError) or not isinstance(exc, Exception):
                raise
            raise AuditError(f"cannot open the audit database {path}") from exc

        def release() -> None:
            try:
                proxy.close()
                engine.dispose()
            finally:
                os.close(lock)  # the next writer may start

        conn = driver_connection(proxy)
        conn.isolation_level = None  # transactions are explicit: BEGIN IMMEDIATE … COMMIT
        return cls(path, conn, release)

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def connection(self) -> sqlite3.Connection:
        """The driver connection under this storage, for whoever calls its methods (one
        thread at a time). The SQLite tests use it to leave a transaction open on it, as
        a ROLLBACK that failed would."""
        return self._conn

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        self._end_stray_transaction()
        cur = self._conn.execute(SELECT_ENTRIES, (start,))
        try:
            yield from cur
        finally:
            cur.close()

    def last_entry(self) -> ChainRow | None:
        self._end_stray_transaction()
        row: ChainRow | None = self._conn.execute(SELECT_LAST_ENTRY).fetchone()
        return row

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        self._end_stray_transaction()
        row = self._conn.execute(SELECT_LATEST_CHECKPOINT).fetchone()
        return None if row is None else StoredCheckpoint._make(row)

    def write(self, rows: Sequence[EntryRow], checkpoint: StoredCheckpoint) -> None:
        """Write ``rows`` and ``checkpoint`` atomically and durably (one transaction)."""
        self._end_stray_transaction()
        cur = self._conn.cursor()
        try:
            if len(rows) <= MAX_ROWS_PER_INSERT:
                # One statement (through the commit_groups view) is its own transaction:
                # atomic, and durable when it returns (synchronous=FULL), with one GIL
                # round trip instead of four (see `statements`).
                values = [value for row in rows for value in row]
                cur.execute(insert_group(len(rows)), [*values, *checkpoint])
                return
            cur.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
                    _insert(cur, rows[start : start + MAX_ROWS_PER_INSERT])
                cur.execute(INSERT_CHECKPOINT, checkpoint)
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()

    def archive_policy_set(self, digest: str, sources: bytes, first_used: str) -> bool:
        """One statement, its own transaction: durable when it returns (synchronous=FULL)."""
        self._end_stray_transaction()
        stored = self._conn.execute(INSERT_POLICY_SET, (digest, sources, first_used)).rowcount
        return stored == 1

    def policy_set(self, digest: str) -> bytes | None:
        self._end_stray_transaction()
        row = self._conn.execute(SELECT_POLICY_SET, (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def add_cosignature(self, cosignature: StoredCosignature) -> bool:
        """Checked, then inserted: this connection is the log's one writer, and a stored
        checkpoint or cosignature is never removed, so nothing changes in between."""
        self._end_stray_transaction()
        if self._conn.execute(HAS_CHECKPOINT, (cosignature.size,)).fetchone() is None:
            raise ValueError(f"the log has no checkpoint of size {cosignature.size}")
        key = (cosignature.size, cosignature.key_id)
        if self._conn.execute(HAS_COSIGNATURE, key).fetchone() is not None:
            return False
        self._conn.execute(INSERT_COSIGNATURE, cosignature)
        return True

    def erase_expired_escrows(self, now: int, limit: int) -> int:
        self._end_stray_transaction()
        return self._conn.execute(ERASE_EXPIRED_ESCROWS, (now, limit)).rowcount

    def purge_erased(self) -> bool:
        """Checkpoint the WAL into the database and truncate it; False when a reader kept
        it from happening. Never waits for readers: appends queue behind this."""
        self._end_stray_transaction()
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            busy, _, _ = self._conn.execute(TRUNCATE_WAL).fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:
            log.warning(
                "the audit WAL could not be truncated while a reader had it open: erased "
                "escrows stay in it until a later sweep truncates it"
            )
        return not busy

    def close(self) -> None:
        self._release()

    def _end_stray_transaction(self) -> None:
        """Roll back a transaction a failed ROLLBACK left open; raise if it cannot be.

        Otherwise the next write would sit in it uncommitted, its waiters told "durable",
        and the recovery check would read those uncommitted rows as landed.
        """
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _insert(cur: sqlite3.Cursor, rows: Sequence[EntryRow]) -> None:
    cur.execute(insert_entries(len(rows)), [value for row in rows for value in row])
