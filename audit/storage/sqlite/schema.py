"""The schema of a SQLite audit log: the tables, the triggers that keep them append-only,
the view a group is written through, the trigger that fills the reference tables, the
check that a stored log is not from an earlier version, and the upgrade of one that is.

Triggers refuse DELETE on every table, an INSERT that would replace a row, and every
UPDATE except erasing an escrow (both escrow columns set to NULL, nothing else changed),
so a mistake cannot rewrite history; a policy set archived a second time is ignored. A
determined attacker can drop them; verify (and, for an archived policy set, its digest)
is what catches that.

The archive of policy sets came after the first logs were made: opening one of those
creates its table (`create_all` makes what is missing), so an existing log gets it at
its next start.

The DPO's query columns and indexes, and the reference tables (`subject_refs`,
`pseudonym_refs`, `cosignatures`), came with schema version 1 (`SCHEMA_VERSION`, kept in
``PRAGMA user_version``). A writer opening a log of version 0 upgrades it in place, in
one transaction: it adds the generated columns, builds the indexes, fills the reference
tables from every body, and sets the version, so a crash leaves the log as it was. A
reader never upgrades: the DPO's queries tell it to start the gateway once.

The reference tables are filled by the `entries_refs` trigger from each body as it is
inserted (``json_each`` over its ``subject_refs`` and ``pseudonym_refs``), in the same
statement and so in the same transaction; it is made anew at every open, like the view.

The `commit_groups` view holds nothing: inserting into it is how the writer stores a
group's entries and their checkpoint in one statement (`statements.insert_group`), its
INSTEAD OF trigger putting each row into its table.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from audit.errors import AuditError
from audit.storage.sqlite.connection import driver_connection
from audit.storage.sqlite.statements import SELECT_SCHEMA_VERSION
from audit.storage.tables import (
    REF_TABLES,
    SCHEMA_VERSION,
    STORED_COLUMNS,
    cosignatures,
    entries,
    metadata,
)

log = logging.getLogger(__name__)
UPGRADE_CACHE_KIB = -262144
"""SQLite's page cache while an upgrade builds its indexes (256 MiB, negative: in KiB)."""
_DIALECT = sqlite_dialect.dialect()

_ENTRY_COLUMNS = ", ".join(STORED_COLUMNS)  # seq, prev, body, escrow, escrow_expires
_CHECKPOINT_COLUMNS = "size, root, note, created_at"

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
            ("policy_sets", "UPDATE", "", ""),
            ("policy_sets", "DELETE", "", ""),
            ("subject_refs", "UPDATE", "", ""),
            ("subject_refs", "DELETE", "", ""),
            ("pseudonym_refs", "UPDATE", "", ""),
            ("pseudonym_refs", "DELETE", "", ""),
            ("cosignatures", "UPDATE", "", ""),
            ("cosignatures", "DELETE", "", ""),
        )
    ),
    # INSERT OR REPLACE deletes the row it replaces without firing the DELETE trigger.
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        for table, key in (("entries", "seq"), ("checkpoints", "size"))
    ),
    "CREATE TRIGGER IF NOT EXISTS cosignatures_no_replace BEFORE INSERT ON cosignatures "
    "WHEN EXISTS (SELECT 1 FROM cosignatures WHERE size = NEW.size AND key_id = NEW.key_id) "
    "BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END",
    # A set archived again is the same set (its digest says so): the second INSERT, even
    # an INSERT OR REPLACE, changes nothing, so archiving is idempotent.
    "CREATE TRIGGER IF NOT EXISTS policy_sets_once BEFORE INSERT ON policy_sets "
    "WHEN EXISTS (SELECT 1 FROM policy_sets WHERE digest = NEW.digest) "
    "BEGIN SELECT RAISE(IGNORE); END",
)


COMMIT_GROUPS = (
    "DROP TRIGGER IF EXISTS commit_groups_insert",
    "DROP VIEW IF EXISTS commit_groups",
    f"CREATE VIEW commit_groups ({_ENTRY_COLUMNS}, {_CHECKPOINT_COLUMNS}) AS "
    "SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
    "CREATE TRIGGER commit_groups_insert INSTEAD OF INSERT ON commit_groups BEGIN "
    f"INSERT INTO entries ({_ENTRY_COLUMNS}) SELECT NEW.seq, NEW.prev, "
    "CAST(NEW.body AS TEXT), NEW.escrow, NEW.escrow_expires WHERE NEW.seq IS NOT NULL; "
    f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) SELECT NEW.size, NEW.root, NEW.note, "
    "NEW.created_at WHERE NEW.size IS NOT NULL; END",
)
"""The view a group is written through, and its trigger: made anew at every open, so
that whatever stands under its name in the file is never what the writer runs."""


def _fill_refs(
    table: str, body: str, seq: str, *, rows: str = "", verb: str = "INSERT", order: str = ""
) -> str:
    """INSERT … SELECT of the distinct text references in the list `table` of `body`
    (entry `seq`'s, from `rows`); a body without the list adds none."""
    return (
        f"{verb} INTO {table} (ref, seq) SELECT DISTINCT value, {seq} "  # noqa: S608
        f"FROM {rows}json_each({body}, '$.{table}') WHERE type = 'text'{order}"
    )


ENTRIES_REFS = (
    "DROP TRIGGER IF EXISTS entries_refs",
    "CREATE TRIGGER entries_refs AFTER INSERT ON entries BEGIN "
    + "; ".join(_fill_refs(table, "NEW.body", "NEW.seq") for table in REF_TABLES)
    + "; END",
)
"""The trigger that fills the reference tables from each inserted body: made anew at
every open, like the view."""


def create_schema(engine: Engine, path: Path) -> None:
    """Create what is missing of the schema, and refuse a log of an earlier version.

    The triggers are (re)created at every open, not only with the tables: a log whose
    triggers were dropped gets them back before this writer appends to it.
    """
    existed = sa.inspect(engine).has_table("entries")
    if existed:
        _require_current_schema(engine, path)
    metadata.create_all(engine)  # exactly the audit tables (their own registry)
    proxy = engine.raw_connection()
    try:
        conn = driver_connection(proxy)
        conn.isolation_level = None  # the upgrade's transaction is explicit
        upgrade(conn, path, announce=existed)
        for statement in (*APPEND_ONLY_TRIGGERS, *COMMIT_GROUPS, *ENTRIES_REFS):
            conn.execute(statement)
    finally:
        proxy.close()


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version a log says it has (``PRAGMA user_version``)."""
    return int(conn.execute(SELECT_SCHEMA_VERSION).fetchone()[0])


def upgrade(conn: sqlite3.Connection, path: Path, *, announce: bool) -> None:
    """Bring a log of an earlier schema version to `SCHEMA_VERSION`, in one transaction.

    Each step does only what is missing (so a log whose tables a newer create_all made
    already is finished, not doubled): the generated columns, the indexes, the
    reference tables, filled from every stored body, and the cosignatures table. A new,
    empty log passes through it in no time; `announce` logs the upgrade of a stored log.
    """
    if schema_version(conn) >= SCHEMA_VERSION:
        return
    started = time.perf_counter()
    # Building an index sorts every entry's value: with SQLite's default cache (2 MB) a
    # large log's sort spills to temporary files many times over.
    (cache,) = conn.execute("PRAGMA cache_size").fetchone()
    conn.execute(f"PRAGMA cache_size = {UPGRADE_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        present = {row[1] for row in conn.execute("PRAGMA table_xinfo(entries)")}
        for column in entries.columns:
            if column.name not in present:
                spec = CreateColumn(column).compile(dialect=_DIALECT)
                conn.execute(f"ALTER TABLE entries ADD COLUMN {spec}")
        for made in (*REF_TABLES.values(), cosignatures):
            conn.execute(str(CreateTable(made, if_not_exists=True).compile(dialect=_DIALECT)))
        for index in sorted(entries.indexes, key=lambda index: str(index.name)):
            conn.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=_DIALECT)))
        filled = 0
        for table in REF_TABLES:
            # OR IGNORE: references stored already (by the trigger) stay as they are.
            # In key order: the table's B-tree then grows at its end (a sort of the
            # references first, not a random insertion per reference).
            fill = _fill_refs(
                table,
                "entries.body",
                "entries.seq",
                rows="entries, ",
                verb="INSERT OR IGNORE",
                order=" ORDER BY 1, 2",
            )
            filled += conn.execute(fill).rowcount
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute(f"PRAGMA cache_size = {cache}")
    if announce:
        (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
        log.info(
            "upgraded the audit log %s to schema version %d for the DPO's queries: %d "
            "entries indexed, %d subject and pseudonym references found, in %.1f s",
            path,
            SCHEMA_VERSION,
            count,
            filled,
            time.perf_counter() - started,
        )


def _require_current_schema(engine: Engine, path: Path) -> None:
    """Refuse a log made before a column existed: appending to it would fail per request."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("entries")}
    missing = sorted(set(STORED_COLUMNS) - columns)
    if missing:
        raise AuditError(
            f"the audit database {path} was made by an earlier version of Doelpoort (no "
            f"{', '.join(missing)} column); verify it with that version and move it aside"
        )
