"""The SQLite backend: the whole log in one file, for one gateway.

WAL and ``synchronous=FULL``, so a commit is durable when it returns and readers (the
DPO's tools) never wait for the writer. Every SQL statement and PRAGMA of the audit log
lives in this package:

* `connection` — connecting, and the PRAGMAs of the writer and of readers
* `schema` — creating the tables (`audit.storage.tables`) and the triggers that keep them
  append-only, and refusing a log made by an earlier version
* `statements` — the statements the writer and readers run
* `lock` — the one-writer lock beside the file
* `writer` — `SQLiteStorage`, the writer's `LogStorage`
* `reader` — `SQLiteReadOnlyStorage`, a reader's `ReadOnlyStorage`
"""
