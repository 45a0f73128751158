"""The proofs bench (bench/proofs.py) at a small size: it seeds, builds and proves, and
every proof it times verifies."""

from __future__ import annotations

from pathlib import Path

from bench.proofs import measure_proofs


def test_the_proofs_bench_times_proofs_that_verify(tmp_path: Path) -> None:
    report = measure_proofs(tmp_path / "audit.sqlite3", 600, samples=25)
    assert report.entries == 600
    assert report.levels_bytes >= 600 * 32
    assert len(report.inclusion_ms) == len(report.consistency_ms) == 25
    assert report.lines()[0].startswith("proofs at 600 entries")
