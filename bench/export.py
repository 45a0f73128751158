"""DPO exports at scale: a realistic log of ``--export-entries`` (1,000,000) entries
(`bench.seed_log`; the DPO phase's, kept under build/bench-dpo/, so it is seeded once)
exported in each format, with entries/s and the memory it took.

Each format runs twice, each time in a fresh child process so that its figures are its
own: once plain over the whole log, for the rate and the process's peak resident set
size (against the child's size before the export began), and once under tracemalloc
over the first `TRACED_ENTRIES`, for the peak of Python's own allocations (tracemalloc
slows the export several times over; the plain run's RSS covers the whole log). The
output goes to /dev/null: what is measured is the reading and the encoding, not the
disk. ``--export-log PATH`` reuses a log seeded before (it is opened read-only).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.dpo import seeded

FORMATS = ("jsonl", "csv", "logboek")
TRACED_ENTRIES = 100_000
ORIGIN = "bench.doelpoort.local/audit"


@dataclass(frozen=True)
class ExportRun:
    fmt: str
    entries: int
    bytes_out: int
    elapsed_s: float
    rss_before_kib: int
    rss_peak_kib: int
    traced_peak_bytes: int | None

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.elapsed_s if self.elapsed_s else 0.0


def _export_once(db: str, fmt: str, traced: bool) -> ExportRun:
    """One export to /dev/null in this (child) process: of the whole log, or under
    tracemalloc of its first TRACED_ENTRIES."""
    from audit.query import EntryFilter, LoggedEntry, iter_selection
    from audit.reader import AuditReader
    from gateway.dpo.exports import exporter

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    entries = 0
    written = 0
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    with AuditReader(Path(db)) as reader, open(os.devnull, "wb") as sink:

        def counted() -> Iterator[LoggedEntry]:
            nonlocal entries
            for entry in iter_selection(reader, EntryFilter()):
                entries += 1
                yield entry
                if traced and entries >= TRACED_ENTRIES:
                    return

        for chunk in exporter(fmt, ORIGIN)(counted()):
            written += len(chunk)
            sink.write(chunk)
    elapsed = time.perf_counter() - started
    traced_peak = None
    if traced:
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ExportRun(fmt, entries, written, elapsed, rss_before, rss_peak, traced_peak)


def _statistics_once(db: str) -> tuple[float, int, int]:
    """The statistics of the whole seeded log (its year and a little more), timed: the
    annual report's and the statistics page's work. (seconds, requests, decisions)"""
    from audit.reader import AuditReader
    from audit.statistics import statistics

    with AuditReader(Path(db)) as reader:
        started = time.perf_counter()
        result = statistics(reader, now=datetime.now(UTC))
        elapsed = time.perf_counter() - started
    return elapsed, result.requests.requests, result.decisions.decisions


def _in_child(db: Path, fmt: str, traced: bool) -> ExportRun:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_export_once, str(db), fmt, traced).result()


def bench_export(entries: int, log: Path | None = None) -> list[ExportRun]:
    """Seed (or take ``log``), export in every format, print the figures; the plain
    runs' figures."""
    if log is not None:
        db = log
        print(f"· exporting the log at {log} …", flush=True)
    else:
        # The DPO phase's seeded log (build/bench-dpo/), made once and kept.
        print(f"· the seeded audit log of {entries:,} entries …", flush=True)
        db, seconds = seeded(entries)
        made = "cached" if seconds is None else f"seeded in {seconds:.1f} s"
        print(f"  {made} ({db.stat().st_size >> 20} MiB): {db}")
    runs = []
    for fmt in FORMATS:
        print(f"· exporting as {fmt} …", flush=True)
        plain = _in_child(db, fmt, traced=False)
        traced = _in_child(db, fmt, traced=True)
        runs.append(plain)
        print(
            f"export {fmt:8s} {plain.entries_per_s:9,.0f} entries/s ({plain.entries:,} entries, "
            f"{plain.bytes_out / 2**20:,.0f} MiB in {plain.elapsed_s:.1f} s); peak RSS "
            f"{plain.rss_peak_kib / 1024:,.0f} MiB, {plain.rss_before_kib / 1024:,.0f} MiB "
            f"before it began; tracemalloc peak {(traced.traced_peak_bytes or 0) / 2**20:.1f} MiB "
            f"over the first {traced.entries:,} entries"
        )
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        elapsed, requests, decisions = pool.submit(_statistics_once, str(db)).result()
    print(
        f"statistics of the log    {elapsed:8.1f} s for {requests:,} requests and "
        f"{decisions:,} dataset decisions (the annual report's counting)"
    )
    return runs
