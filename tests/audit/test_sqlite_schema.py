"""The SQLite schema a new audit log gets, statement for statement.

The tables are declared in Python; this pins the DDL they produce, so that declaring them
differently (SQLModel instead of SQLAlchemy Core, say) cannot change a new log's schema
unnoticed: STRICT tables, the generated filter columns, the indexes, the triggers, and
the view a commit group is written through (added with the checkpoint per group), and the
archive of policy sets.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.policy_sets import encode_policy_set, policy_digest
from tests.audit.audit_support import attack, make_record, open_store, verify

FILTER_COLUMNS: tuple[str, ...] = (
    "time",
    "requester",
    "provider",
    "dataset",
    "purpose",
    "decision",
)
FILTER_COLUMNS += ("kind", "problem", "case_ref", "policy_digest", "disclosure_id")
SOURCES = (("a.rego", "package a\n"), ("register.yaml", "purposes: {}\n"))

# Schema version 0 (before the DPO's query columns, indexes and reference tables),
# captured from a log made by the SQLAlchemy Core tables (audit/_schema.py before the
# SQLModel tables); SQLite keeps each CREATE statement's text as it was executed. The
# upgrade tests make a log of it.
SCHEMA_V0 = [
    (
        "index",
        "ix_entries_dataset",
        "entries",
        "CREATE INDEX ix_entries_dataset ON entries (dataset)",
    ),
    (
        "index",
        "ix_entries_decision",
        "entries",
        "CREATE INDEX ix_entries_decision ON entries (decision)",
    ),
    (
        "index",
        "ix_entries_escrow_expires",
        "entries",
        "CREATE INDEX ix_entries_escrow_expires ON entries (escrow_expires) "
        "WHERE escrow_expires IS NOT NULL",
    ),
    (
        "index",
        "ix_entries_purpose",
        "entries",
        "CREATE INDEX ix_entries_purpose ON entries (purpose)",
    ),
    (
        "index",
        "ix_entries_requester",
        "entries",
        "CREATE INDEX ix_entries_requester ON entries (requester)",
    ),
    ("index", "sqlite_autoindex_policy_sets_1", "policy_sets", None),
    (
        "table",
        "checkpoints",
        "checkpoints",
        "CREATE TABLE checkpoints (\n"
        "\tsize INTEGER NOT NULL, \n"
        "\troot BLOB NOT NULL, \n"
        "\tnote TEXT NOT NULL, \n"
        "\tcreated_at TEXT NOT NULL, \n"
        "\tPRIMARY KEY (size)\n"
        ")\n"
        " STRICT\n\n",
    ),
    (
        "table",
        "entries",
        "entries",
        "CREATE TABLE entries (\n"
        "\tseq INTEGER NOT NULL, \n"
        "\tprev BLOB NOT NULL, \n"
        "\tbody TEXT NOT NULL, \n"
        "\tescrow TEXT, \n"
        "\tescrow_expires INTEGER, \n"
        "\ttime TEXT GENERATED ALWAYS AS (json_extract(body, '$.time')) VIRTUAL, \n"
        "\trequester TEXT GENERATED ALWAYS AS (json_extract(body, '$.requester')) VIRTUAL, \n"
        "\tprovider TEXT GENERATED ALWAYS AS (json_extract(body, '$.provider')) VIRTUAL, \n"
        "\tdataset TEXT GENERATED ALWAYS AS (json_extract(body, '$.dataset')) VIRTUAL, \n"
        "\tpurpose TEXT GENERATED ALWAYS AS (json_extract(body, '$.purpose')) VIRTUAL, \n"
        "\tdecision TEXT GENERATED ALWAYS AS (json_extract(body, '$.decision')) VIRTUAL, \n"
        "\tPRIMARY KEY (seq)\n"
        ")\n"
        " STRICT\n\n",
    ),
    (
        "table",
        "policy_sets",
        "policy_sets",
        "CREATE TABLE policy_sets (\n"
        "\tdigest TEXT NOT NULL, \n"
        "\tsources TEXT NOT NULL, \n"
        "\tfirst_used TEXT NOT NULL, \n"
        "\tPRIMARY KEY (digest)\n"
        ")\n"
        " STRICT\n\n",
    ),
    (
        "trigger",
        "checkpoints_no_delete",
        "checkpoints",
        "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
    ),
    (
        "trigger",
        "checkpoints_no_replace",
        "checkpoints",
        "CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints "
        "WHEN EXISTS (SELECT 1 FROM checkpoints WHERE size = NEW.size) "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
    ),
    (
        "trigger",
        "checkpoints_no_update",
        "checkpoints",
        "CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
    ),
    (
        "trigger",
        "commit_groups_insert",
        "commit_groups",
        "CREATE TRIGGER commit_groups_insert INSTEAD OF INSERT ON commit_groups BEGIN "
        "INSERT INTO entries (seq, prev, body, escrow, escrow_expires) SELECT NEW.seq, "
        "NEW.prev, CAST(NEW.body AS TEXT), NEW.escrow, NEW.escrow_expires "
        "WHERE NEW.seq IS NOT NULL; INSERT INTO checkpoints (size, root, note, created_at) "
        "SELECT NEW.size, NEW.root, NEW.note, NEW.created_at WHERE NEW.size IS NOT NULL; END",
    ),
    (
        "trigger",
        "entries_no_delete",
        "entries",
        "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries "
        "BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END",
    ),
    (
        "trigger",
        "entries_no_replace",
        "entries",
        "CREATE TRIGGER entries_no_replace BEFORE INSERT ON entries "
        "WHEN EXISTS (SELECT 1 FROM entries WHERE seq = NEW.seq) "
        "BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END",
    ),
    (
        "trigger",
        "entries_no_update",
        "entries",
        "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
        "WHEN NOT (NEW.seq IS OLD.seq AND NEW.prev IS OLD.prev AND NEW.body IS OLD.body "
        "AND NEW.escrow IS NULL AND NEW.escrow_expires IS NULL) "
        "BEGIN SELECT RAISE(ABORT, 'entries are append-only; only an escrow may be erased'); END",
    ),
    (
        "trigger",
        "policy_sets_no_delete",
        "policy_sets",
        "CREATE TRIGGER policy_sets_no_delete BEFORE DELETE ON policy_sets "
        "BEGIN SELECT RAISE(ABORT, 'policy_sets are append-only'); END",
    ),
    (
        "trigger",
        "policy_sets_no_update",
        "policy_sets",
        "CREATE TRIGGER policy_sets_no_update BEFORE UPDATE ON policy_sets "
        "BEGIN SELECT RAISE(ABORT, 'policy_sets are append-only'); END",
    ),
    (
        "trigger",
        "policy_sets_once",
        "policy_sets",
        "CREATE TRIGGER policy_sets_once BEFORE INSERT ON policy_sets "
        "WHEN EXISTS (SELECT 1 FROM policy_sets WHERE digest = NEW.digest) "
        "BEGIN SELECT RAISE(IGNORE); END",
    ),
    (
        "view",
        "commit_groups",
        "commit_groups",
        "CREATE VIEW commit_groups (seq, prev, body, escrow, escrow_expires, size, root, note, "
        "created_at) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
    ),
]

# Schema version 1: version 0 and the DPO's query columns, indexes and reference tables.
SCHEMA = [
    (
        "index",
        "ix_entries_case_ref",
        "entries",
        ("CREATE INDEX ix_entries_case_ref ON entries (case_ref) WHERE case_ref IS NOT NULL"),
    ),
    (
        "index",
        "ix_entries_dataset",
        "entries",
        "CREATE INDEX ix_entries_dataset ON entries (dataset)",
    ),
    (
        "index",
        "ix_entries_decision",
        "entries",
        "CREATE INDEX ix_entries_decision ON entries (decision)",
    ),
    (
        "index",
        "ix_entries_disclosure_id",
        "entries",
        (
            "CREATE INDEX ix_entries_disclosure_id ON entries (disclosure_id) WHERE "
            "disclosure_id IS NOT NULL"
        ),
    ),
    (
        "index",
        "ix_entries_escrow_expires",
        "entries",
        (
            "CREATE INDEX ix_entries_escrow_expires ON entries (escrow_expires) WHERE "
            "escrow_expires IS NOT NULL"
        ),
    ),
    (
        "index",
        "ix_entries_kind",
        "entries",
        "CREATE INDEX ix_entries_kind ON entries (kind) WHERE kind IS NOT NULL",
    ),
    (
        "index",
        "ix_entries_policy_digest",
        "entries",
        (
            "CREATE INDEX ix_entries_policy_digest ON entries (policy_digest) WHERE "
            "policy_digest IS NOT NULL"
        ),
    ),
    (
        "index",
        "ix_entries_problem",
        "entries",
        "CREATE INDEX ix_entries_problem ON entries (problem) WHERE problem IS NOT NULL",
    ),
    (
        "index",
        "ix_entries_provider",
        "entries",
        ("CREATE INDEX ix_entries_provider ON entries (provider) WHERE provider IS NOT NULL"),
    ),
    (
        "index",
        "ix_entries_purpose",
        "entries",
        "CREATE INDEX ix_entries_purpose ON entries (purpose)",
    ),
    (
        "index",
        "ix_entries_requester",
        "entries",
        "CREATE INDEX ix_entries_requester ON entries (requester)",
    ),
    (
        "index",
        "sqlite_autoindex_cosignatures_1",
        "cosignatures",
        None,
    ),
    (
        "index",
        "sqlite_autoindex_policy_sets_1",
        "policy_sets",
        None,
    ),
    (
        "table",
        "checkpoints",
        "checkpoints",
        (
            "CREATE TABLE checkpoints (\n\tsize INTEGER NOT NULL, \n\troot BLOB NOT NULL, \n"
            "\tnote TEXT NOT NULL, \n\tcreated_at TEXT NOT NULL, \n\tPRIMARY KEY (size)\n)\n "
            "STRICT\n\n"
        ),
    ),
    (
        "table",
        "cosignatures",
        "cosignatures",
        (
            "CREATE TABLE cosignatures (\n\tsize INTEGER NOT NULL, \n\tkey_name TEXT NOT NULL, "
            "\n\tkey_id BLOB NOT NULL, \n\tline TEXT NOT NULL, \n\tcreated_at TEXT NOT NULL, \n"
            "\tPRIMARY KEY (size, key_id)\n)\n STRICT\n\n"
        ),
    ),
    (
        "table",
        "entries",
        "entries",
        (
            "CREATE TABLE entries (\n\tseq INTEGER NOT NULL, \n\tprev BLOB NOT NULL, \n\tbody "
            "TEXT NOT NULL, \n\tescrow TEXT, \n\tescrow_expires INTEGER, \n\ttime TEXT GENERATED "
            "ALWAYS AS (json_extract(body, '$.time')) VIRTUAL, \n\trequester TEXT GENERATED "
            "ALWAYS AS (json_extract(body, '$.requester')) VIRTUAL, \n\tprovider TEXT "
            "GENERATED ALWAYS AS (json_extract(body, '$.provider')) VIRTUAL, \n\tdataset "
            "TEXT GENERATED ALWAYS AS (json_extract(body, '$.dataset')) VIRTUAL, \n\tpurpose "
            "TEXT GENERATED ALWAYS AS (json_extract(body, '$.purpose')) VIRTUAL, \n"
            "\tdecision TEXT GENERATED ALWAYS AS (json_extract(body, '$.decision')) "
            "VIRTUAL, \n\tkind TEXT GENERATED ALWAYS AS (json_extract(body, '$.kind')) "
            "VIRTUAL, \n\tproblem TEXT GENERATED ALWAYS AS (json_extract(body, '$.problem')) "
            "VIRTUAL, \n\tcase_ref TEXT GENERATED ALWAYS AS (json_extract(body, "
            "'$.case_ref')) VIRTUAL, \n\tpolicy_digest TEXT GENERATED ALWAYS AS "
            "(json_extract(body, '$.policy_digest')) VIRTUAL, \n\tdisclosure_id TEXT "
            "GENERATED ALWAYS AS (json_extract(body, '$.disclosure_id')) VIRTUAL, \n"
            "\tPRIMARY KEY (seq)\n)\n STRICT\n\n"
        ),
    ),
    (
        "table",
        "policy_sets",
        "policy_sets",
        (
            "CREATE TABLE policy_sets (\n\tdigest TEXT NOT NULL, \n\tsources TEXT NOT NULL, \n"
            "\tfirst_used TEXT NOT NULL, \n\tPRIMARY KEY (digest)\n)\n STRICT\n\n"
        ),
    ),
    (
        "table",
        "pseudonym_refs",
        "pseudonym_refs",
        (
            "CREATE TABLE pseudonym_refs (\n\tref TEXT NOT NULL, \n\tseq INTEGER NOT NULL, \n"
            "\tPRIMARY KEY (ref, seq)\n)\n WITHOUT ROWID,\n STRICT\n\n"
        ),
    ),
    (
        "table",
        "subject_refs",
        "subject_refs",
        (
            "CREATE TABLE subject_refs (\n\tref TEXT NOT NULL, \n\tseq INTEGER NOT NULL, \n"
            "\tPRIMARY KEY (ref, seq)\n)\n WITHOUT ROWID,\n STRICT\n\n"
        ),
    ),
    (
        "trigger",
        "checkpoints_no_delete",
        "checkpoints",
        (
            "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN "
            "SELECT RAISE(ABORT, 'checkpoints are append-only'); END"
        ),
    ),
    (
        "trigger",
        "checkpoints_no_replace",
        "checkpoints",
        (
            "CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints WHEN "
            "EXISTS (SELECT 1 FROM checkpoints WHERE size = NEW.size) BEGIN SELECT "
            "RAISE(ABORT, 'checkpoints are append-only'); END"
        ),
    ),
    (
        "trigger",
        "checkpoints_no_update",
        "checkpoints",
        (
            "CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints BEGIN "
            "SELECT RAISE(ABORT, 'checkpoints are append-only'); END"
        ),
    ),
    (
        "trigger",
        "commit_groups_insert",
        "commit_groups",
        (
            "CREATE TRIGGER commit_groups_insert INSTEAD OF INSERT ON commit_groups BEGIN "
            "INSERT INTO entries (seq, prev, body, escrow, escrow_expires) SELECT NEW.seq, "
            "NEW.prev, CAST(NEW.body AS TEXT), NEW.escrow, NEW.escrow_expires WHERE "
            "NEW.seq IS NOT NULL; INSERT INTO checkpoints (size, root, note, created_at) "
            "SELECT NEW.size, NEW.root, NEW.note, NEW.created_at WHERE NEW.size IS NOT "
            "NULL; END"
        ),
    ),
    (
        "trigger",
        "cosignatures_no_delete",
        "cosignatures",
        (
            "CREATE TRIGGER cosignatures_no_delete BEFORE DELETE ON cosignatures BEGIN "
            "SELECT RAISE(ABORT, 'cosignatures are append-only'); END"
        ),
    ),
    (
        "trigger",
        "cosignatures_no_replace",
        "cosignatures",
        (
            "CREATE TRIGGER cosignatures_no_replace BEFORE INSERT ON cosignatures WHEN "
            "EXISTS (SELECT 1 FROM cosignatures WHERE size = NEW.size AND key_id = "
            "NEW.key_id) BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END"
        ),
    ),
    (
        "trigger",
        "cosignatures_no_update",
        "cosignatures",
        (
            "CREATE TRIGGER cosignatures_no_update BEFORE UPDATE ON cosignatures BEGIN "
            "SELECT RAISE(ABORT, 'cosignatures are append-only'); END"
        ),
    ),
    (
        "trigger",
        "entries_no_delete",
        "entries",
        (
            "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN SELECT "
            "RAISE(ABORT, 'entries are append-only'); END"
        ),
    ),
    (
        "trigger",
        "entries_no_replace",
        "entries",
        (
            "CREATE TRIGGER entries_no_replace BEFORE INSERT ON entries WHEN EXISTS "
            "(SELECT 1 FROM entries WHERE seq = NEW.seq) BEGIN SELECT RAISE(ABORT, "
            "'entries are append-only'); END"
        ),
    ),
    (
        "trigger",
        "entries_no_update",
        "entries",
        (
            "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries WHEN NOT (NEW.seq "
            "IS OLD.seq AND NEW.prev IS OLD.prev AND NEW.body IS OLD.body AND NEW.escrow "
            "IS NULL AND NEW.escrow_expires IS NULL) BEGIN SELECT RAISE(ABORT, 'entries "
            "are append-only; only an escrow may be erased'); END"
        ),
    ),
    (
        "trigger",
        "entries_refs",
        "entries",
        (
            "CREATE TRIGGER entries_refs AFTER INSERT ON entries BEGIN INSERT INTO "
            "subject_refs (ref, seq) SELECT DISTINCT value, NEW.seq FROM "
            "json_each(NEW.body, '$.subject_refs') WHERE type = 'text'; INSERT INTO "
            "pseudonym_refs (ref, seq) SELECT DISTINCT value, NEW.seq FROM "
            "json_each(NEW.body, '$.pseudonym_refs') WHERE type = 'text'; END"
        ),
    ),
    (
        "trigger",
        "policy_sets_no_delete",
        "policy_sets",
        (
            "CREATE TRIGGER policy_sets_no_delete BEFORE DELETE ON policy_sets BEGIN "
            "SELECT RAISE(ABORT, 'policy_sets are append-only'); END"
        ),
    ),
    (
        "trigger",
        "policy_sets_no_update",
        "policy_sets",
        (
            "CREATE TRIGGER policy_sets_no_update BEFORE UPDATE ON policy_sets BEGIN "
            "SELECT RAISE(ABORT, 'policy_sets are append-only'); END"
        ),
    ),
    (
        "trigger",
        "policy_sets_once",
        "policy_sets",
        (
            "CREATE TRIGGER policy_sets_once BEFORE INSERT ON policy_sets WHEN EXISTS "
            "(SELECT 1 FROM policy_sets WHERE digest = NEW.digest) BEGIN SELECT "
            "RAISE(IGNORE); END"
        ),
    ),
    (
        "trigger",
        "pseudonym_refs_no_delete",
        "pseudonym_refs",
        (
            "CREATE TRIGGER pseudonym_refs_no_delete BEFORE DELETE ON pseudonym_refs BEGIN "
            "SELECT RAISE(ABORT, 'pseudonym_refs are append-only'); END"
        ),
    ),
    (
        "trigger",
        "pseudonym_refs_no_update",
        "pseudonym_refs",
        (
            "CREATE TRIGGER pseudonym_refs_no_update BEFORE UPDATE ON pseudonym_refs BEGIN "
            "SELECT RAISE(ABORT, 'pseudonym_refs are append-only'); END"
        ),
    ),
    (
        "trigger",
        "subject_refs_no_delete",
        "subject_refs",
        (
            "CREATE TRIGGER subject_refs_no_delete BEFORE DELETE ON subject_refs BEGIN "
            "SELECT RAISE(ABORT, 'subject_refs are append-only'); END"
        ),
    ),
    (
        "trigger",
        "subject_refs_no_update",
        "subject_refs",
        (
            "CREATE TRIGGER subject_refs_no_update BEFORE UPDATE ON subject_refs BEGIN "
            "SELECT RAISE(ABORT, 'subject_refs are append-only'); END"
        ),
    ),
    (
        "view",
        "commit_groups",
        "commit_groups",
        (
            "CREATE VIEW commit_groups (seq, prev, body, escrow, escrow_expires, size, "
            "root, note, created_at) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL WHERE 0"
        ),
    ),
]


def schema(db: Path) -> list[tuple[str, str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def test_a_new_log_gets_exactly_the_pinned_schema(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    with open_store(db, Ed25519PrivateKey.generate()):
        pass
    assert schema(db) == SCHEMA


def test_reopening_a_log_leaves_its_schema_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    for _ in range(2):
        with open_store(db, key):
            pass
    assert schema(db) == SCHEMA


def test_the_view_a_group_is_written_through_is_made_anew_at_open(tmp_path: Path) -> None:
    # Someone who can write the file replaces the view's trigger with one that drops the
    # checkpoints: the writer never runs it, and its groups still land with theirs.
    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    with open_store(db, key):
        pass
    attack(db, "DROP TRIGGER commit_groups_insert")
    attack(
        db,
        "CREATE TRIGGER commit_groups_insert INSTEAD OF INSERT ON commit_groups BEGIN "
        "INSERT INTO entries (seq, prev, body) SELECT NEW.seq, NEW.prev, NEW.body "
        "WHERE NEW.seq IS NOT NULL; END",
    )
    with open_store(db, key) as store:
        asyncio.run(store.append([make_record(1), make_record(2)]))
    assert schema(db) == SCHEMA
    assert verify(db, key).checkpoints == 1


def test_the_filter_columns_are_generated_and_hidden(tmp_path: Path) -> None:
    # table_xinfo's `hidden` is 2 for a VIRTUAL generated column, 0 for a stored one.
    db = tmp_path / "audit.sqlite3"
    with open_store(db, Ed25519PrivateKey.generate()):
        pass
    conn = sqlite3.connect(db)
    try:
        columns = {
            row[1]: (row[2], row[3], row[6])
            for row in conn.execute("PRAGMA table_xinfo(entries)").fetchall()
        }
        strict = conn.execute(
            "SELECT name, strict FROM pragma_table_list WHERE schema = 'main' "
            "AND name IN ('entries', 'checkpoints', 'policy_sets') ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    assert columns == {
        "seq": ("INTEGER", 1, 0),
        "prev": ("BLOB", 1, 0),
        "body": ("TEXT", 1, 0),
        "escrow": ("TEXT", 0, 0),
        "escrow_expires": ("INTEGER", 0, 0),
        **{name: ("TEXT", 0, 2) for name in FILTER_COLUMNS},
    }
    assert strict == [("checkpoints", 1), ("entries", 1), ("policy_sets", 1)]


def test_the_archive_of_policy_sets_is_append_only_and_a_set_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    with open_store(db, Ed25519PrivateKey.generate()) as store:
        asyncio.run(store.archive_policy_set(policy_digest(SOURCES), SOURCES))
    digest = policy_digest(SOURCES)
    conn = sqlite3.connect(db)
    try:
        for statement in (
            "UPDATE policy_sets SET sources = '{}'",
            "UPDATE policy_sets SET first_used = '2000-01-01T00:00:00Z'",
            "DELETE FROM policy_sets",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="policy_sets are append-only"):
                conn.execute(statement)
        # A second INSERT of a digest, even INSERT OR REPLACE, is ignored.
        conn.execute(
            "INSERT OR REPLACE INTO policy_sets VALUES (?, '{}', '2000-01-01T00:00:00Z')",
            (digest,),
        )
        conn.commit()
        rows = conn.execute("SELECT digest, sources FROM policy_sets").fetchall()
    finally:
        conn.close()
    assert rows == [(digest, encode_policy_set(SOURCES).decode())]
