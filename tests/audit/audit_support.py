"""Helpers for the audit tests: records, escrows, fake clocks, stores on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import AuditRecord, StoredEscrow, escrow_digest
from audit.reader import AuditReader
from audit.store import AuditStore
from audit.verify import VerifyReport, verify_log

ORIGIN = "test.doelpoort.local/audit"
"""The log's origin, which is also its checkpoint key's name."""


START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
"""When the escrow tests start: their escrows expire so many days after it."""


class WallClock:
    """The store's wall clock (UTC datetimes), moved only by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def make_record(i: int = 0, **overrides: Any) -> AuditRecord:
    """A plausible allow decision; `i` makes the body unique."""
    content: dict[str, Any] = {
        "time": "2026-11-22T10:00:00Z",
        "disclosure_id": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
        "requester": "politie",
        "provider": "ind",
        "dataset": "ind/residence",
        "purpose": "ct-assessment",
        "legal_basis": "Wpg art. 16",
        "case_ref": "CTI-2026-0042",
        "decision": "allow",
        "reasons": ["purpose ct-assessment covers ind/residence for politie"],
        "field_ops": {"name": "pseudonymise", "date_of_birth": "generalise:year"},
        "record_count": 1,
        "subject_refs": [f"psn:dpo:{i}"],
        "policy_digest": "sha256:" + "ab" * 32,
        "records_sha256": "cd" * 32,
        "retention_days": 180,
        "error": None,
        "policy_input": {
            "requester": {"id": "politie", "roles": ["police"]},
            "purpose": "ct-assessment",
            "dataset": {"id": "ind/residence", "fields": {"name": "identity"}},
            "identity_keys": ["bsn"],
        },
    }
    content.update(overrides)
    return AuditRecord(**content)


def sealed(tag: str) -> str:
    # Stands in for a sealed box: the store treats an escrow as opaque text.
    return "v1." + (tag * 40)[:120]


def escrow_expiring(tag: str, days: int) -> StoredEscrow:
    return StoredEscrow(sealed(tag), int((START + timedelta(days=days)).timestamp()))


def append_with_escrows(store: AuditStore) -> None:
    """Entries 1 and 2 with an escrow that expires after 180 days, 3 without one, and 4
    with one that expires after 365 days."""

    async def run() -> None:
        short = escrow_expiring("a", 180)
        await store.append(
            [make_record(1, escrow_sha256=escrow_digest(short.sealed)), make_record(2)], short
        )
        await store.append([make_record(3)])  # a disclosure without escrow
        long = escrow_expiring("b", 365)
        await store.append([make_record(4, escrow_sha256=escrow_digest(long.sealed))], long)

    asyncio.run(run())


@contextmanager
def open_store(path: Path, key: Ed25519PrivateKey, **options: Any) -> Iterator[AuditStore]:
    """A store on `path`; closed on exit."""
    store = AuditStore.open(path, log_key=key, origin=ORIGIN, **options)
    try:
        yield store
    finally:
        store.close()


def append_records(store: AuditStore, n: int, *, group: int = 1) -> None:
    """`n` entries, `group` to a commit, so checkpoints land at multiples of `group`
    (and at n): every commit carries one."""

    async def append_all() -> None:
        for start in range(0, n, group):
            await store.append([make_record(i) for i in range(start, min(n, start + group))])

    asyncio.run(append_all())


def write_log(path: Path, key: Ed25519PrivateKey, n: int, *, group: int = 1) -> None:
    """`n` entries, `group` to a commit, so checkpoints land at multiples of `group`
    (and at n)."""
    with open_store(path, key) as store:
        append_records(store, n, group=group)


def verify(path: Path, key: Ed25519PrivateKey) -> VerifyReport:
    with AuditReader(path) as reader:
        return verify_log(reader, key.public_key(), origin=ORIGIN)


def fail_inserts(path: Path, *, purpose: str | None = None) -> None:
    """Make INSERTs into entries abort inside SQLite, as a full disk would: all of them, or
    those of records for ``purpose``. `stop_failing` ends it."""
    when = "" if purpose is None else f"WHEN json_extract(NEW.body, '$.purpose') = '{purpose}' "
    attack(
        path,
        f"CREATE TRIGGER fail BEFORE INSERT ON entries {when}"
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )


def stop_failing(path: Path) -> None:
    attack(path, "DROP TRIGGER fail")


def forged_body(i: int) -> str:
    """The body of an entry an attacker makes up (distinct from every `make_record(i)`)."""
    return make_record(1000 + i, decision="deny").body().decode()


def forge_unchained_entry(path: Path, seq: int) -> None:
    """Insert entry ``seq`` that does not chain from the one before it."""
    attack(
        path,
        "INSERT INTO entries (seq, prev, body) VALUES (?, zeroblob(32), ?)",
        seq,
        forged_body(seq),
    )


def attack(path: Path, statement: str, *params: Any) -> list[Any]:
    """Run SQL as an attacker with file access would: the append-only triggers go first."""
    conn = sqlite3.connect(path)
    try:
        for table in ("entries", "checkpoints", "policy_sets"):
            for event in ("update", "delete"):
                conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()
