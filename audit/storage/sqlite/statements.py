"""The statements the SQLite writer and readers run, bound through the driver itself.

A group goes in as one statement, its entries and its checkpoint together: the SQLite
thread takes the GIL back once per statement, not once per row, and on a busy gateway
each of those waits for the event loop (with a statement per row a commit took 7 to 8 ms
under load; with one per group, about 1 ms, measured with `bench/`). One statement
cannot insert into two tables, so it inserts into the `commit_groups` view, whose
trigger (`schema.COMMIT_GROUPS`) puts each row where it belongs; and one statement is
its own transaction. BEGIN, an INSERT for the entries, one for the checkpoint and
COMMIT would be four round trips: against a thread that keeps the GIL busy, a commit
then took 21 ms instead of 6 (measured).
"""

from __future__ import annotations

import functools

from audit.storage.tables import STORED_COLUMNS

# The body is bound as the UTF-8 bytes that were hashed; CAST(? AS TEXT) stores them as
# TEXT (the column is STRICT) without decoding them in Python.
_ENTRY_COLUMNS = ", ".join(STORED_COLUMNS)  # seq, prev, body, escrow, escrow_expires
_ENTRY_VALUES = "(?, ?, CAST(? AS TEXT), ?, ?)"
MAX_ROWS_PER_INSERT = 1000
"""Rows per INSERT statement: 5 bound values each, far below SQLite's variable limit."""

# A row of the commit_groups view: an entry (its checkpoint columns NULL), or the group's
# checkpoint (its entry columns NULL). The view's trigger casts the body to TEXT.
_GROUP_ENTRY_VALUES = "(?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)"
_GROUP_CHECKPOINT_VALUES = "(NULL, NULL, NULL, NULL, NULL, ?, ?, ?, ?)"


@functools.lru_cache(maxsize=MAX_ROWS_PER_INSERT)
def insert_entries(rows: int) -> str:
    """One INSERT of ``rows`` entries (seq, prev, body, escrow, escrow_expires)."""
    if not 1 <= rows <= MAX_ROWS_PER_INSERT:
        raise ValueError(f"an INSERT takes 1 to {MAX_ROWS_PER_INSERT} rows")
    placeholders = ",".join([_ENTRY_VALUES] * rows)  # constants only; values are bound
    return f"INSERT INTO entries ({_ENTRY_COLUMNS}) VALUES {placeholders}"  # noqa: S608


@functools.lru_cache(maxsize=MAX_ROWS_PER_INSERT + 1)
def insert_group(rows: int) -> str:
    """One INSERT of ``rows`` entries (seq, prev, body, escrow, escrow_expires) and then
    their checkpoint (size, root, note, created_at), through the commit_groups view."""
    if not 0 <= rows <= MAX_ROWS_PER_INSERT:
        raise ValueError(f"a group's INSERT takes 0 to {MAX_ROWS_PER_INSERT} entries")
    placeholders = ",".join([*[_GROUP_ENTRY_VALUES] * rows, _GROUP_CHECKPOINT_VALUES])
    return f"INSERT INTO commit_groups VALUES {placeholders}"  # noqa: S608


INSERT_CHECKPOINT = "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)"
ERASE_EXPIRED_ESCROWS = (
    "UPDATE entries SET escrow = NULL, escrow_expires = NULL WHERE seq IN "
    "(SELECT seq FROM entries WHERE escrow_expires <= ? LIMIT ?)"
)
# CAST(body AS BLOB) hands back the stored UTF-8 bytes without decoding them; CAST(prev
# AS BLOB) keeps a rebuilt, non-STRICT table with a TEXT prev a broken link, not a crash.
SELECT_ENTRIES = (
    "SELECT seq, CAST(prev AS BLOB), CAST(body AS BLOB) FROM entries WHERE seq >= ? ORDER BY seq"
)
SELECT_LAST_ENTRY = (
    "SELECT seq, CAST(prev AS BLOB), CAST(body AS BLOB) FROM entries ORDER BY seq DESC LIMIT 1"
)
SELECT_CHECKPOINTS = "SELECT size, root, note, created_at FROM checkpoints ORDER BY size"
SELECT_LATEST_CHECKPOINT = (
    "SELECT size, root, note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1"
)
SELECT_ESCROW = "SELECT CAST(escrow AS BLOB) FROM entries WHERE seq = ?"
SELECT_CHECKPOINT = "SELECT size, root, note, created_at FROM checkpoints WHERE size = ?"
SELECT_COVERING_CHECKPOINT = (
    "SELECT size, root, note, created_at FROM checkpoints WHERE size >= ? ORDER BY size LIMIT 1"
)
COUNT_ENTRIES = "SELECT count(*) FROM entries"

# The archive of policy sets: a set archived again changes nothing (and the trigger
# `policy_sets_once` ignores even an INSERT OR REPLACE of one).
INSERT_POLICY_SET = (
    "INSERT INTO policy_sets (digest, sources, first_used) VALUES (?, CAST(? AS TEXT), ?) "
    "ON CONFLICT (digest) DO NOTHING"
)
SELECT_POLICY_SET = "SELECT CAST(sources AS BLOB) FROM policy_sets WHERE digest = ?"
SELECT_POLICY_SETS = "SELECT digest, first_used FROM policy_sets ORDER BY first_used, digest"
# A reader never adds a table: a log no writer of this version has opened has no archive.
HAS_POLICY_SETS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_sets'"

# Cosignatures of stored checkpoints (for the witness): a second one by the same key for
# the same size is not stored (the first is kept).
HAS_CHECKPOINT = "SELECT 1 FROM checkpoints WHERE size = ?"
HAS_COSIGNATURE = "SELECT 1 FROM cosignatures WHERE size = ? AND key_id = ?"
INSERT_COSIGNATURE = (
    "INSERT INTO cosignatures (size, key_name, key_id, line, created_at) VALUES (?, ?, ?, ?, ?)"
)
SELECT_COSIGNATURES = (
    "SELECT size, key_name, key_id, line, created_at FROM cosignatures ORDER BY size, key_id"
)
HAS_COSIGNATURES = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
SELECT_SCHEMA_VERSION = "PRAGMA user_version"

# The WAL: truncated after an erasure, so that no copy of an erased escrow stays in it.
TRUNCATE_WAL = "PRAGMA wal_checkpoint(TRUNCATE)"
