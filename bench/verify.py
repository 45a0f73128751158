"""``audit verify`` throughput: fill a log with realistic entries, time the verifier."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import AuditRecord
from audit.keys import load_log_public_key
from audit.reader import AuditReader
from audit.store import AuditStore
from audit.verify import VerifyReport, verify_log
from gateway.keys import create_log_key, load_log_key

ORIGIN = "bench.doelpoort.local/audit"


def log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log key in ``keys_dir``, created on first use."""
    create_log_key(keys_dir)
    return load_log_key(keys_dir)


def _record(i: int) -> AuditRecord:
    """An entry shaped like a real allow decision (~1 KB with its policy input)."""
    fields = {
        name: {"type": "string", "category": category}
        for name, category in [
            ("bsn", "identifier"),
            ("v_number", "identifier"),
            ("name", "identity"),
            ("date_of_birth", "identity"),
            ("nationality", "identity"),
            ("residence_status", "immigration"),
        ]
    }
    return AuditRecord(
        time="2026-11-23T10:00:00Z",
        disclosure_id=f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
        requester="politie",
        provider="ind",
        dataset="ind/residence",
        purpose="ct-assessment",
        legal_basis="Convenant CT Infobox; each partner within its own statutory framework",
        case_ref=f"CTI-2026-{i % 10_000:04d}",
        decision="allow",
        reasons=[],
        field_ops={"bsn": "pseudonymise", "name": "pseudonymise", "nationality": "keep"},
        record_count=1,
        subject_refs=[f"psn:{i:026d}"],
        policy_digest="sha256:" + "ab" * 32,
        records_sha256="sha256:" + "cd" * 32,
        retention_days=365,
        error=None,
        policy_input={
            "action": "disclose",
            "time": "2026-11-23T10:00:00Z",
            "requester": {"id": "politie", "roles": ["ct-infobox", "pnr-competent-authority"]},
            "purpose": "ct-assessment",
            "case_ref": f"CTI-2026-{i % 10_000:04d}",
            "has_justification": True,
            "dataset": {
                "id": "ind/residence",
                "provider": "ind",
                "domain": "immigration",
                "fields": fields,
                "identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
            },
            "subject_keys": ["bsn"],
        },
    )


def fill_log(directory: Path, entries: int, batch: int = 2_000) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "audit.sqlite3"
    store = AuditStore.open(db, log_key=log_key(directory), origin=ORIGIN)

    async def fill() -> None:
        for start in range(0, entries, batch):
            await store.append([_record(i) for i in range(start, min(entries, start + batch))])

    try:
        asyncio.run(fill())
    finally:
        store.close()
    return db


def time_verify(db: Path) -> VerifyReport:
    """One full verification; its report holds the entries and the seconds it took."""
    public_key = load_log_public_key(db.parent)
    with AuditReader(db) as reader:
        return verify_log(reader, public_key, origin=ORIGIN)
