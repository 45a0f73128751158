"""Where the audit log is kept: the storage interface, the tables, and the backends.

* `interface` — what a backend does for the store and the reader (`LogStorage`,
  `ReadOnlyStorage`) and the rows they exchange
* `tables` — the tables, declared once as SQLModel table models
* `sqlite` — the SQLite backend (one file, WAL): every SQL statement and PRAGMA is there
"""

from audit.storage.interface import (
    ChainRow,
    EntryRow,
    LogQueries,
    LogStorage,
    ReadOnlyStorage,
    RequestKey,
    Selection,
    Snapshot,
    StoredCheckpoint,
    StoredCosignature,
    StoredEntry,
)

__all__ = [
    "ChainRow",
    "EntryRow",
    "LogQueries",
    "LogStorage",
    "ReadOnlyStorage",
    "RequestKey",
    "Selection",
    "Snapshot",
    "StoredCheckpoint",
    "StoredCosignature",
    "StoredEntry",
]
