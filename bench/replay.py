"""``policy replay`` throughput: a log of realistic decisions, replayed afresh.

The log is filled with decision entries of the demo deployment's real mix: every
purpose, every partner holding one of its roles (and one that holds none, refused) and
every dataset the purpose covers for it, each decided once by the real policy to give the
logged decision, then repeated with its own time and case reference. Replay evaluates
every entry's input again (no memo), as ``doelpoort policy replay`` does.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit.entry import AuditRecord
from audit.reader import AuditReader
from audit.store import AuditStore
from bench.verify import ORIGIN, log_key
from gateway.connectors.catalog import Catalog
from gateway.policy import (
    Decision,
    EmbeddedEngine,
    PolicyBundle,
    build_policy_input,
    compile_bundle,
)
from gateway.policy.input import dataset_input
from gateway.policy.replay import ReplayReport, replay
from gateway.settings import Settings
from gateway.vocabulary import DatasetSpec, Partner

START = datetime(2026, 11, 1, tzinfo=UTC)


def fill_replay_log(settings: Settings, directory: Path, entries: int) -> tuple[Path, int]:
    """A log of ``entries`` decisions of the demo mix; (its path, distinct requests)."""
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    bundle = compile_bundle(settings.policies_dir, catalog)
    asks = []
    for purpose in bundle.register.purposes:
        for partner in catalog.partners.values():
            datasets = bundle.register.covered_datasets(purpose, partner.id, partner.roles)
            if not datasets:  # refused: one entry per dataset the purpose covers
                datasets = bundle.register.covered_datasets(purpose, None, None)
            for dataset in datasets:
                asks.append((partner, purpose, catalog.datasets[dataset]))
    decisions = asyncio.run(_decide(bundle, [_input(p, pu, d, 0) for p, pu, d in asks]))
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "audit.sqlite3"
    store = AuditStore.open(db, log_key=log_key(directory), origin=ORIGIN)

    def record(i: int) -> AuditRecord:
        partner, purpose, spec = asks[i % len(asks)]
        decision = decisions[i % len(asks)]
        return AuditRecord(
            time=(START + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            disclosure_id=f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            requester=partner.id,
            provider=spec.provider,
            dataset=spec.id,
            purpose=purpose,
            legal_basis=decision.legal_basis,
            case_ref=f"CTI-2026-{i % 10_000:04d}",
            decision="allow" if decision.allow else "deny",
            reasons=list(decision.reasons),
            field_ops=dict(decision.field_ops),
            policy_digest=bundle.digest,
            retention_days=decision.retention_days,
            policy_input=_input(partner, purpose, spec, i),
        )

    async def fill() -> None:
        for start in range(0, entries, 2_000):
            await store.append([record(i) for i in range(start, min(entries, start + 2_000))])

    try:
        asyncio.run(fill())
    finally:
        store.close()
    return db, len(asks)


def time_replay(settings: Settings, db: Path, workers: int) -> ReplayReport:
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    bundle = compile_bundle(settings.policies_dir, catalog)
    with AuditReader(db) as reader:
        return replay(bundle, reader.iter_rows(), workers=workers, timeout_s=10.0)


def _input(partner: Partner, purpose: str, spec: DatasetSpec, i: int) -> dict[str, Any]:
    return build_policy_input(
        requester_id=partner.id,
        roles=partner.roles,
        purpose=purpose,
        case_ref=f"CTI-2026-{i % 10_000:04d}",
        has_justification=True,
        dataset=dataset_input(spec.policy_view()),
        subject_keys=spec.identity_keys[0],
        now=START + timedelta(seconds=i),
    )


async def _decide(bundle: PolicyBundle, inputs: list[dict[str, Any]]) -> list[Decision]:
    engine = EmbeddedEngine(bundle, timeout_s=10.0)
    try:
        return [await engine.decide_fresh(document) for document in inputs]
    finally:
        await engine.aclose()
