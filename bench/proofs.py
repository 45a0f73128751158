"""Proofs at scale: ``python -m bench.proofs [--entries 1000000]``.

Seeds a realistic signed log (`bench.seed_log`), then measures what
``GET /v1/audit/proof/{seq}`` and ``GET /v1/audit/consistency`` do per request, without
HTTP: read the entry and the latest checkpoint, check the in-memory levels' root against
the signed one, build the proof (`gateway/dpo/proofs.py` does the same on a worker
thread). Also the one-off cost the first proof request pays (`MerkleLevels` built from
the whole log) and the levels' memory. Figures from one run: percentiles and ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import entry_leaf_hash
from audit.proof import MerkleLevels, verify_consistency, verify_inclusion
from audit.query import get_entry
from audit.reader import AuditReader
from bench.seed_log import seed_log

ORIGIN = "bench.doelpoort.local/audit"


@dataclass(frozen=True)
class ProofReport:
    entries: int
    seed_s: float
    build_s: float
    levels_bytes: int
    inclusion_ms: list[float]
    consistency_ms: list[float]

    def lines(self) -> list[str]:
        def pct(values: list[float], q: int) -> float:
            return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

        return [
            f"proofs at {self.entries:,} entries (log seeded in {self.seed_s:.1f} s):",
            f"  levels built from the log once: {self.build_s:.2f} s "
            f"({self.entries / self.build_s:,.0f} entries/s), "
            f"{self.levels_bytes / 2**20:.0f} MiB in memory",
            f"  inclusion proof of a random entry (entry, checkpoint, root check, proof): "
            f"p50 {pct(self.inclusion_ms, 50):.2f} ms, p99 {pct(self.inclusion_ms, 99):.2f} ms "
            f"over {len(self.inclusion_ms)}",
            f"  consistency proof between two random sizes: "
            f"p50 {pct(self.consistency_ms, 50):.2f} ms, "
            f"p99 {pct(self.consistency_ms, 99):.2f} ms over {len(self.consistency_ms)}",
        ]


def measure_proofs(path: Path, entries: int, *, samples: int = 2000) -> ProofReport:
    """Seed `entries` at `path` (a new file), then time the proof work."""
    key = Ed25519PrivateKey.generate()
    started = time.perf_counter()
    seed_log(path, entries, log_key=key, origin=ORIGIN, now=datetime(2026, 12, 1, tzinfo=UTC))
    seed_s = time.perf_counter() - started
    rng = random.Random(14)
    levels = MerkleLevels()
    inclusion: list[float] = []
    consistency: list[float] = []
    with AuditReader(path) as reader:
        latest = reader.checkpoint()
        assert latest is not None
        started = time.perf_counter()
        levels.extend(reader, latest.size)
        build_s = time.perf_counter() - started
        sizes = [cp.size for cp in reader.checkpoints()]
        for _ in range(samples):
            seq = rng.randint(1, latest.size)
            started = time.perf_counter()
            entry = get_entry(reader, seq)
            checkpoint = reader.checkpoint()
            assert entry is not None
            assert checkpoint is not None
            levels.extend(reader, checkpoint.size)
            assert levels.root(checkpoint.size) == checkpoint.root
            proof = levels.inclusion_proof(seq - 1, checkpoint.size)
            inclusion.append((time.perf_counter() - started) * 1000)
            leaf = entry_leaf_hash(entry.seq, entry.prev, entry.body)
            verify_inclusion(seq - 1, checkpoint.size, leaf, proof, checkpoint.root)
        for _ in range(samples):
            first, last = sorted((rng.choice(sizes), rng.choice(sizes)))
            started = time.perf_counter()
            older, newer = reader.checkpoint(first), reader.checkpoint(last)
            assert older is not None
            assert newer is not None
            assert levels.root(first) == older.root
            proof = levels.consistency_proof(first, last)
            consistency.append((time.perf_counter() - started) * 1000)
            verify_consistency(first, last, proof, older.root, newer.root)
    return ProofReport(
        entries=latest.size,
        seed_s=seed_s,
        build_s=build_s,
        levels_bytes=levels.memory_bytes,
        inclusion_ms=inclusion,
        consistency_ms=consistency,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proofs", description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = measure_proofs(Path(scratch) / "audit.sqlite3", args.entries, samples=args.samples)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
