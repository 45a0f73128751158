"""The schema of a SQLite audit log: the tables, the triggers that keep them append-only,
the view a group is written through, and the check that a stored log is not from an
earlier version.

Triggers refuse DELETE on every table, an INSERT that would replace a row, and every
UPDATE except erasing an escrow (both escrow columns set to NULL, nothing else changed),
so a mistake cannot rewrite history; a policy set archived a second time is ignored. A
determined attacker can drop them; verify (and, for an archived policy set, its digest)
is what catches that.

The archive of policy sets came after the first logs were made: opening one of those
creates its table (`create_all` makes what is missing), so an existing log gets it at
its next start.

The `commit_groups` view holds nothing: inserting into it is how the writer stores a
group's entries and their checkpoint in one statement (`statements.insert_group`), its
INSTEAD OF trigger putting each row into its table.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.errors import AuditError
from audit.storage.tables import STORED_COLUMNS, metadata

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
        )
    ),
    # INSERT OR REPLACE deletes the row it replaces without firing the DELETE trigger.
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        for table, key in (("entries", "seq"), ("checkpoints", "size"))
    ),
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


def create_schema(engine: Engine, path: Path) -> None:
    """Create what is missing of the schema, and refuse a log of an earlier version.

    The triggers are (re)created at every open, not only with the tables: a log whose
    triggers were dropped gets them back before this writer appends to it.
    """
    metadata.create_all(engine)  # exactly the audit tables (their own registry)
    _require_current_schema(engine, path)
    with engine.begin() as conn:
        for statement in (*APPEND_ONLY_TRIGGERS, *COMMIT_GROUPS):
            conn.exec_driver_sql(statement)


def _require_current_schema(engine: Engine, path: Path) -> None:
    """Refuse a log made before a column existed: appending to it would fail per request."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("entries")}
    missing = sorted(set(STORED_COLUMNS) - columns)
    if missing:
        raise AuditError(
            f"the audit database {path} was made by an earlier version of Doelpoort (no "
            f"{', '.join(missing)} column); verify it with that version and move it aside"
        )
