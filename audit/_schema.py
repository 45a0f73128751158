"""The SQLite audit database: how it is connected to, created (from the tables in
`audit.storage.tables`, plus the triggers that keep them append-only) and written.

Triggers refuse DELETE and every UPDATE but an escrow's erasure, so a mistake cannot
rewrite history (a determined attacker can drop them; verify is what catches that).
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
from pathlib import Path
from typing import Any, cast
from urllib.request import pathname2url

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from audit.errors import AuditError
from audit.storage.tables import STORED_COLUMNS, metadata

APPEND_ONLY_TRIGGERS = (
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{event.lower()} BEFORE {event} ON {table} "
        f"{condition}BEGIN SELECT RAISE(ABORT, '{table} are append-only{detail}'); END"
        for table, event, condition, detail in (
            # The one change allowed: erasing an escrow (both columns to NULL).
            (
                "entries",
                "UPDATE",
                "WHEN NOT (NEW.seq IS OLD.seq AND NEW.prev IS OLD.prev AND NEW.body IS OLD.body"
                " AND NEW.escrow IS NULL AND NEW.escrow_expires IS NULL) ",
                "; only an escrow may be erased",
            ),
            ("entries", "DELETE", "", ""),
            ("checkpoints", "UPDATE", "", ""),
            ("checkpoints", "DELETE", "", ""),
        )
    ),
    # INSERT OR REPLACE deletes the row it replaces without firing the DELETE trigger.
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        for table, key in (("entries", "seq"), ("checkpoints", "size"))
    ),
)

# The body is bound as the UTF-8 bytes that were hashed; CAST(? AS TEXT) stores them as
# TEXT (the column is STRICT) without decoding them in Python.
_ENTRY_COLUMNS = ", ".join(STORED_COLUMNS)  # seq, prev, body, escrow, escrow_expires
_ENTRY_VALUES = "(?, ?, CAST(? AS TEXT), ?, ?)"
MAX_ROWS_PER_INSERT = 1000
"""Rows per INSERT statement: 5 bound values each, far below SQLite's variable limit."""

ERASE_EXPIRED_ESCROWS = (
    "UPDATE entries SET escrow = NULL, escrow_expires = NULL WHERE seq IN "
    "(SELECT seq FROM entries WHERE escrow_expires <= ? LIMIT ?)"
)
SELECT_ESCROW = "SELECT CAST(escrow AS BLOB) FROM entries WHERE seq = ?"


@functools.lru_cache(maxsize=MAX_ROWS_PER_INSERT)
def insert_entries(rows: int) -> str:
    """One INSERT of ``rows`` entries (seq, prev, body, escrow, escrow_expires).

    A whole group in one statement: the SQLite thread takes the GIL back once per
    statement, not once per row, and on a busy gateway each of those waits for the loop.
    """
    if not 1 <= rows <= MAX_ROWS_PER_INSERT:
        raise ValueError(f"an INSERT takes 1 to {MAX_ROWS_PER_INSERT} rows")
    placeholders = ",".join([_ENTRY_VALUES] * rows)  # constants only; values are bound
    return f"INSERT INTO entries ({_ENTRY_COLUMNS}) VALUES {placeholders}"  # noqa: S608


INSERT_CHECKPOINT = "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)"
# CAST(body AS BLOB) hands back the stored UTF-8 bytes without decoding them; CAST(prev
# AS BLOB) keeps a rebuilt, non-STRICT table with a TEXT prev a broken link, not a crash.
SELECT_ENTRIES = (
    "SELECT seq, CAST(prev AS BLOB), CAST(body AS BLOB) FROM entries WHERE seq >= ? ORDER BY seq"
)
SELECT_LAST_ENTRY = (
    "SELECT seq, CAST(prev AS BLOB), CAST(body AS BLOB) FROM entries ORDER BY seq DESC LIMIT 1"
)
SELECT_CHECKPOINTS = "SELECT size, root, note, created_at FROM checkpoints ORDER BY size"
SELECT_LATEST_CHECKPOINT = "SELECT size, root FROM checkpoints ORDER BY size DESC LIMIT 1"
SELECT_LATEST_NOTE = "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1"


BUSY_TIMEOUT_MS = 5000


def _on_connect_writer(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # durable at COMMIT, before any response
        # An erased escrow is overwritten with zeros in the file, not merely unlinked.
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # No journal_size_limit: the WAL keeps its size and is overwritten in place, so a
        # commit's fdatasync has no file size to record. The escrow sweep truncates it.
    finally:
        cur.close()


WRITER_LOCK_SUFFIX = ".writer-lock"


def lock_writer(path: Path) -> int:
    """Take the one-writer lock of the log at `path`; return the descriptor that holds it.

    Each store keeps the head of the log in memory, so a second process appending to the
    same file would collide with it on every write. The lock is an advisory ``flock`` on a
    file beside the database (SQLite's own locks are on the database itself); closing the
    descriptor releases it, and so does the process ending in any way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + WRITER_LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise AuditError(f"cannot open the audit writer lock {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise AuditError(
            f"another process is writing to the audit log {path}: a log has one writer "
            "(stop the other gateway; several replicas need a shared database)"
        ) from exc
    return fd


def create_writer_engine(path: Path) -> Engine:
    """An engine for the one writing process; creates the schema if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{path}",
        poolclass=NullPool,
        connect_args={"check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _on_connect_writer)
    metadata.create_all(engine)  # exactly the audit tables (their own registry)
    _require_current_schema(engine, path)
    with engine.begin() as conn:
        for trigger in APPEND_ONLY_TRIGGERS:
            conn.exec_driver_sql(trigger)
    return engine


def _require_current_schema(engine: Engine, path: Path) -> None:
    """Refuse a log made before a column existed: appending to it would fail per request."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("entries")}
    missing = sorted(set(STORED_COLUMNS) - columns)
    if missing:
        raise AuditError(
            f"the audit database {path} was made by an earlier version of Doelpoort (no "
            f"{', '.join(missing)} column); verify it with that version and move it aside"
        )


def create_reader_engine(path: Path) -> Engine:
    """A read-only engine: the file is opened with SQLite's mode=ro and query_only."""
    uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA query_only=ON")
        return conn

    return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)


def driver_connection(proxy: Any) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy raw connection (for the fast paths)."""
    return cast(sqlite3.Connection, proxy.driver_connection)
