"""The DPO's console at 1,000,000 entries (SPEC §10): a page of requests under 300 ms
for every filter, a subject search under 100 ms; and what the indexes behind them cost
each append.

The log is a seeded synthetic year (`bench.seed_log`), made once and kept under
``build/bench-dpo/`` (it takes a minute or two; delete the file to make it anew). Each
search runs as the console runs it: a reader opened for the call, one page of 25
requests (`audit.query.page_requests`), timed `runs` times; the figures are p50 and p99
of those runs. The append cost is `SQLiteStorage.write` of realistic commit groups on a
log of the current schema, against the same log without what schema version 1 added
(its indexes and the trigger that fills the reference tables), in the same run, without
waiting for the disk (which costs the same either way).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.query import (
    EntryFilter,
    entries_with_pseudonym_refs,
    entries_with_subject_refs,
    page_requests,
)
from audit.reader import AuditReader
from audit.storage.interface import EntryRow, StoredCheckpoint
from audit.storage.sqlite.writer import SQLiteStorage
from audit.storage.tables import INDEXED_FIELDS, SCHEMA_VERSION
from bench.seed_log import FORMAT, seed_log
from bench.verify import ORIGIN, _record

CACHE = Path(__file__).resolve().parent.parent / "build" / "bench-dpo"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
PAGE = 25
SPEC_PAGE_MS = 300.0
SPEC_SUBJECT_MS = 100.0


@dataclass(frozen=True)
class Timing:
    name: str
    p50_ms: float
    p99_ms: float
    found: int
    """Requests on the page (entries, for a reference search)."""


def seeded(entries: int, cache: Path = CACHE) -> tuple[Path, float | None]:
    """The seeded log of `entries` entries, made on first use; (its path, the seconds
    seeding took, None when it was cached)."""
    path = cache / f"seeded-{entries}-v{SCHEMA_VERSION}-f{FORMAT}.sqlite3"
    if path.exists():
        return path, None
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    for leftover in cache.glob(partial.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    seed_log(partial, entries, log_key=Ed25519PrivateKey.generate(), origin=ORIGIN, now=NOW)
    took = time.perf_counter() - started
    for suffix in ("-wal", "-shm", ".writer-lock"):
        partial.with_name(partial.name + suffix).unlink(missing_ok=True)
    partial.rename(path)
    return path, took


def _samples(path: Path, count: int) -> dict[str, Any]:
    """Values to search for, drawn from the log's own entries (a fixed seed)."""
    rng = random.Random(7)
    found: dict[str, Any] = {"subject_refs": [], "pseudonym_refs": []}
    with AuditReader(path) as reader:
        size = reader.count()
        for seq in rng.sample(range(1, size + 1), min(size, 400)):
            body = json.loads(next(reader.iter_entries(seq)).body)
            if body.get("kind") is not None:
                continue
            found.setdefault("case_ref", body["case_ref"])
            found.setdefault("disclosure_id", body["disclosure_id"])
            found.setdefault("policy_digest", body["policy_digest"])
            found["subject_refs"] += body.get("subject_refs", [])[:1]
            found["pseudonym_refs"] += body.get("pseudonym_refs", [])[:1]
    found["subject_refs"] = found["subject_refs"][:count]
    found["pseudonym_refs"] = found["pseudonym_refs"][:count]
    return found


def _deep_before(path: Path, flt: EntryFilter, pages: int) -> int | None:
    before = None
    with AuditReader(path) as reader:
        for _ in range(pages):
            before = page_requests(reader, flt, before=before, limit=PAGE).next_before
            if before is None:
                break
    return before


def _time(name: str, runs: int, call: Callable[[], int]) -> Timing:
    call()  # warm: the first run reads the pages it needs from the disk into the cache
    took = []
    found = 0
    for _ in range(runs):
        started = time.perf_counter()
        found = call()
        took.append((time.perf_counter() - started) * 1000)
    return Timing(name, statistics.median(took), _p99(took), found)


def _p99(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )


def time_console(path: Path, runs: int) -> list[Timing]:
    """p50/p99 of a console page for each case, and of the reference searches."""
    samples = _samples(path, runs)

    def page(flt: EntryFilter, before: int | None = None) -> Callable[[], int]:
        def call() -> int:
            with AuditReader(path) as reader:
                return len(page_requests(reader, flt, before=before, limit=PAGE).groups)

        return call

    cases = {
        "no filter": EntryFilter(),
        "requester": EntryFilter(requester="politie"),
        "provider": EntryFilter(provider="ind"),
        "dataset": EntryFilter(dataset="kmar/passenger-records"),
        "purpose": EntryFilter(purpose="vertrek"),
        "decision": EntryFilter(decision="deny"),
        "refusal kind (policy)": EntryFilter(refusal="policy"),
        "refusal kind (error)": EntryFilter(refusal="error"),
        "refusal kind (problem code)": EntryFilter(refusal="unknown-dataset"),
        "record kind": EntryFilter(kind="policy-change"),
        "period (June)": EntryFilter(since="2026-06-01", until="2026-07-01"),
        "case_ref": EntryFilter(case_ref=samples["case_ref"]),
        "policy digest": EntryFilter(policy_digest=samples["policy_digest"]),
        "disclosure id": EntryFilter(disclosure_id=samples["disclosure_id"]),
        "requester+purpose+decision": EntryFilter(
            requester="kmar", purpose="ct-assessment", decision="deny"
        ),
        "requester+purpose, rare": EntryFilter(requester="voorbeeldbank", purpose="vertrek"),
        "requester+purpose, both common": EntryFilter(requester="politie", purpose="tf-screening"),
    }
    timings = [_time(name, runs, page(flt)) for name, flt in cases.items()]
    deep = _deep_before(path, EntryFilter(), 100)
    timings.append(_time("page 101 (no filter, 100 next_before)", runs, page(EntryFilter(), deep)))
    deep = _deep_before(path, EntryFilter(requester="politie"), 100)
    timings.append(
        _time("page 101 (requester)", runs, page(EntryFilter(requester="politie"), deep))
    )
    for table, search in (
        ("subject_refs", entries_with_subject_refs),
        ("pseudonym_refs", entries_with_pseudonym_refs),
    ):
        refs = iter(samples[table] * 2)
        if not samples[table]:
            continue

        def find(search: Callable[..., list[Any]] = search, refs: Any = refs) -> int:
            with AuditReader(path) as reader:
                return len(search(reader, [next(refs)]))

        timings.append(_time(f"search by one {table[:-1].replace('_', ' ')}", runs, find))
    return timings


def time_appends(groups: int, group_size: int, prefill: int = 50_000) -> tuple[float, float]:
    """Median µs per entry of `SQLiteStorage.write`, (schema version 0's indexes only,
    the current schema), on a log of `prefill` entries, without waiting for the disk."""
    results = []
    for current in (False, True):
        with tempfile.TemporaryDirectory(prefix="doelpoort-append-") as tmp:
            storage = SQLiteStorage.open(Path(tmp) / "audit.sqlite3")
            try:
                if not current:
                    _as_version_0(storage)
                chain = _Chain(storage)
                for _ in range(prefill // 1000):
                    chain.write(1000)
                took = [chain.write(group_size) for _ in range(groups)]
            finally:
                storage.close()
        results.append(statistics.median(took) / group_size * 1e6)
    return results[0], results[1]


def _as_version_0(storage: SQLiteStorage) -> None:
    """Leave what schema version 0 had: its four full indexes, no reference tables filled."""
    conn = storage.connection
    conn.execute("PRAGMA synchronous=OFF")
    kept = {f"ix_entries_{name}" for name in INDEXED_FIELDS} | {"ix_entries_escrow_expires"}
    for (index,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'"
    ).fetchall():
        if index not in kept:
            conn.execute(f"DROP INDEX {index}")
    conn.execute("DROP TRIGGER entries_refs")


class _Chain:
    """Realistic entries (`bench.verify`'s), chained, written a group at a time."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage
        storage.connection.execute("PRAGMA synchronous=OFF")  # the disk costs the same
        self._seq, self._prev = 0, GENESIS_PREV

    def write(self, count: int) -> float:
        """Write `count` entries as one group; the seconds the write took."""
        rows: list[EntryRow] = []
        for _ in range(count):
            self._seq += 1
            body = _record(self._seq).body()
            rows.append((self._seq, self._prev, body, None, None))
            self._prev = entry_leaf_hash(self._seq, self._prev, body)
        checkpoint = StoredCheckpoint(self._seq, bytes(32), "bench", "2026-12-01T00:00:00Z")
        started = time.perf_counter()
        self._storage.write(rows, checkpoint)
        return time.perf_counter() - started


def bench_dpo(
    entries: int,
    runs: int,
    cache: Path = CACHE,
    *,
    append_prefill: int = 50_000,
    append_groups: int = 300,
) -> list[Timing]:
    """The DPO phase of `make bench`: prints its figures, returns the console timings."""
    print(f"· DPO console: a seeded log of {entries:,} entries …", flush=True)
    path, took = seeded(entries, cache)
    if took is None:
        print(f"  (cached: {path})")
    else:
        print(f"  seeded in {took:.0f} s ({entries / took:,.0f} entries/s): {path}")
    timings = time_console(path, runs)
    for t in timings:
        target = SPEC_SUBJECT_MS if t.name.startswith("search") else SPEC_PAGE_MS
        unit = "entries" if t.name.startswith("search") else "requests"
        print(
            f"dpo {t.name:<40} p50 {t.p50_ms:7.1f} ms  p99 {t.p99_ms:7.1f} ms  "
            f"(SPEC §10: < {target:.0f} ms; {t.found} {unit}, {runs} runs)"
        )
    for size in (2, 16):
        before, after = time_appends(append_groups, size, prefill=append_prefill)
        print(
            f"dpo append cost, groups of {size:2}: {before:5.1f} µs/entry with schema 0's "
            f"indexes, {after:5.1f} with version 1's (x{after / before:.2f}; storage thread, "
            "no fsync)"
        )
    return timings
