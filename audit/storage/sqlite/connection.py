"""Connecting to a SQLite audit log: the writer's PRAGMAs, and read-only readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast
from urllib.request import pathname2url

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

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


def create_writer_engine(path: Path) -> Engine:
    """An engine for the one writing process (the schema is `schema.create_schema`'s)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{path}",
        poolclass=NullPool,
        # The writer's connection is used by the store's SQLite thread and, while no
        # write is in flight, by the event loop.
        connect_args={"check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _on_connect_writer)
    return engine


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
