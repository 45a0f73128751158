"""Logs with controlled content for the statistics and export tests: every kind of
entry at the times a test chooses, written by the real store to a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import (
    AuditRecord,
    LogRecord,
    RefusalRecord,
    RefusalSummaryRecord,
    ReidentificationRecord,
)
from audit.store import AuditStore
from tests.audit.audit_support import ORIGIN

DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


@dataclass
class LogBuilder:
    """Records to append, in order; `write` stores them one commit each."""

    records: list[Any] = field(default_factory=list)
    _next: int = 0

    def request(
        self,
        time: str,
        requester: str = "politie",
        purpose: str = "ct-assessment",
        decisions: tuple[tuple[str, str, str], ...] = (("ind", "ind/residence", "allow"),),
        *,
        field_ops: dict[str, str] | None = None,
        reasons: list[str] | None = None,
        digest: str = DIGEST_A,
        subject_refs: list[str] | None = None,
    ) -> str:
        """One disclosure request: a decision per (provider, dataset, decision)."""
        self._next += 1
        disclosure_id = f"urn:uuid:00000000-0000-4000-8000-{self._next:012d}"
        for provider, dataset, decision in decisions:
            allowed = decision == "allow"
            self.records.append(
                AuditRecord(
                    time=time,
                    disclosure_id=disclosure_id,
                    requester=requester,
                    provider=provider,
                    dataset=dataset,
                    purpose=purpose,
                    legal_basis="Convenant CT Infobox (synthetic test)",
                    case_ref="CTI-2026-0042",
                    decision=decision,  # type: ignore[arg-type]
                    reasons=reasons or ([] if allowed else ["not granted"]),
                    field_ops=(field_ops or {"name": "pseudonymise", "nationality": "keep"})
                    if allowed
                    else {},
                    record_count=1 if allowed else 0,
                    subject_refs=subject_refs
                    if subject_refs is not None
                    else [f"ref-{self._next}"],
                    policy_digest=digest,
                    records_sha256=None,
                    retention_days=365,
                    error="connector-error" if decision == "error" else None,
                    policy_input={"purpose": purpose},
                )
            )
        return disclosure_id

    def refusal(
        self,
        time: str,
        requester: str = "politie",
        problem: str = "invalid-request",
        *,
        purpose: str | None = None,
        datasets: list[str] | None = None,
        unrecorded: int = 0,
    ) -> None:
        status = {"unknown-dataset": 422, "invalid-request": 422, "dpo-only": 403}.get(problem, 400)
        self.records.append(
            RefusalRecord(
                time=time,
                requester=requester,
                problem=problem,
                status=status,
                method="POST",
                route="/v1/disclosures",
                purpose=purpose,
                datasets=datasets or [],
                unrecorded_names=unrecorded,
            )
        )

    def summary(self, time: str, requester: str, counts: dict[str, int]) -> None:
        self.records.append(
            RefusalSummaryRecord(
                time=time,
                requester=requester,
                interval_start=time,
                interval_end=time,
                counts=counts,
            )
        )

    def reidentification(self, time: str, dpo: str = "dpo", entry_seq: int = 1) -> None:
        self.records.append(
            ReidentificationRecord(
                time=time,
                dpo=dpo,
                entry_seq=entry_seq,
                disclosure_id="urn:uuid:00000000-0000-4000-8000-000000000001",
                reason="complaint ref. K-2026-7 (synthetic test)",
            )
        )

    def write(self, path: Path, key: Ed25519PrivateKey, origin: str = ORIGIN) -> Path:
        """Store the records in the order of their time, as the gateway appends them
        (a stable sort: the entries of one request stay together)."""
        self.records.sort(key=lambda record: record.time)

        async def append_all(store: Any) -> None:
            for start in range(0, len(self.records), 500):
                await store.append(cast(list[LogRecord], self.records[start : start + 500]))

        store = AuditStore.open(path, log_key=key, origin=origin)
        try:
            asyncio.run(append_all(store))
        finally:
            store.close()
        return path
