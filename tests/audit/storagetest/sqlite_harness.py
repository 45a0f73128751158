"""The storage suite's harness for the SQLite backend: a real file in the test's tmp_path."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

from audit.entry import AuditRecord, entry_leaf_hash
from audit.storage.interface import LogStorage, ReadOnlyStorage
from audit.storage.sqlite.reader import SQLiteReadOnlyStorage
from audit.storage.sqlite.statements import MAX_ROWS_PER_INSERT
from audit.storage.sqlite.writer import SQLiteStorage
from tests.audit.audit_support import attack, fail_inserts, forge_unchained_entry, stop_failing
from tests.audit.storagetest.harness import StorageHarness


class SQLiteHarness(StorageHarness):
    error: ClassVar[type[BaseException]] = sqlite3.Error
    rows_per_statement: ClassVar[int] = MAX_ROWS_PER_INSERT

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "var" / "audit.sqlite3"

    def open_storage(self) -> LogStorage:
        return SQLiteStorage.open(self.path)

    def open_reader(self) -> ReadOnlyStorage:
        return SQLiteReadOnlyStorage.open(self.path)

    def fail_writes(self, *, purpose: str | None = None) -> None:
        fail_inserts(self.path, purpose=purpose)  # a trigger that RAISEs inside SQLite

    def stop_failing(self) -> None:
        stop_failing(self.path)

    def append_behind_the_store(self, record: AuditRecord) -> None:
        conn = sqlite3.connect(self.path)
        try:
            seq, prev, body = conn.execute(
                "SELECT seq, prev, CAST(body AS BLOB) FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            conn.execute(
                "INSERT INTO entries (seq, prev, body) VALUES (?, ?, ?)",
                (seq + 1, entry_leaf_hash(seq, prev, body), record.body().decode()),
            )
            conn.commit()
        finally:
            conn.close()

    def forge_entry(self, seq: int) -> None:
        forge_unchained_entry(self.path, seq)

    def tamper_body(self, seq: int) -> None:
        attack(
            self.path, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = ?", seq
        )

    def delete_entry(self, seq: int) -> None:
        attack(self.path, "DELETE FROM entries WHERE seq = ?", seq)

    def rewrite_entry(self, seq: int) -> None:
        self.tamper_body(seq)
        ((last,),) = attack(self.path, "SELECT max(seq) FROM entries")
        for later in range(seq + 1, last + 1):
            (before,) = attack(
                self.path,
                "SELECT seq, prev, CAST(body AS BLOB) FROM entries WHERE seq = ?",
                later - 1,
            )
            attack(
                self.path,
                "UPDATE entries SET prev = ? WHERE seq = ?",
                entry_leaf_hash(*before),
                later,
            )

    def delete_checkpoints_above(self, size: int) -> None:
        attack(self.path, "DELETE FROM checkpoints WHERE size > ?", size)

    def replace_policy_set(self, digest: str, stored: bytes) -> None:
        attack(
            self.path,
            "UPDATE policy_sets SET sources = CAST(? AS TEXT) WHERE digest = ?",
            stored,
            digest,
        )

    def drop_policy_sets(self) -> None:
        attack(self.path, "DROP TABLE policy_sets")

    def leave_transaction_open(self, storage: LogStorage) -> None:
        assert isinstance(storage, SQLiteStorage)
        conn = storage.connection
        conn.execute("BEGIN")
        conn.execute("INSERT INTO entries (seq, prev, body) VALUES (1, zeroblob(32), '{}')")
