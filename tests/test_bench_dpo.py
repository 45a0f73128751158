"""The DPO bench's seeded log verifies like any log the gateway writes, and its phase
runs end to end (at a small size: the figures themselves come from `make bench`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import record_from_body
from audit.reader import AuditReader
from audit.verify import verify_log
from bench.dpo import bench_dpo, seeded
from bench.seed_log import DATASETS, PURPOSES, seed_log

ORIGIN = "bench.doelpoort.local/audit"
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def test_a_seeded_log_verifies_and_reads_back_as_records(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.sqlite3"
    seed_log(path, 1500, log_key=key, origin=ORIGIN, now=NOW)
    with AuditReader(path) as reader:
        report = verify_log(reader, key.public_key(), origin=ORIGIN)
        assert report.entries == 1500
        assert report.checkpoints >= 2  # a checkpoint every ~1,000 entries
        times = []
        for entry in reader.iter_entries():
            # Bodies are exactly what the gateway's own records write.
            assert record_from_body(entry.body).body() == entry.body
            times.append(json.loads(entry.body)["time"])
        escrows = sum(reader.escrow(seq) is not None for seq in range(1, 1501))
    assert times == sorted(times)  # appended in time order
    assert times[0] >= "2025-12-01"
    assert times[-1] <= "2026-12-01T17:00:00Z"
    assert escrows > 0
    with pytest.raises(FileExistsError):
        seed_log(path, 10, log_key=key, origin=ORIGIN, now=NOW)


def test_the_same_seed_makes_the_same_log(tmp_path: Path) -> None:
    bodies = []
    for name in ("a", "b"):
        seed_log(tmp_path / name, 300, log_key=Ed25519PrivateKey.generate(), origin=ORIGIN, now=NOW)
        with AuditReader(tmp_path / name) as reader:
            bodies.append([entry.body for entry in reader.iter_entries()])
    assert bodies[0] == bodies[1]


def test_the_seeded_names_are_the_demo_deployments() -> None:
    register = yaml.safe_load((ROOT / "policies" / "register.yaml").read_text())["purposes"]
    for name, purpose in PURPOSES.items():
        assert set(purpose.datasets) == set(register[name]["datasets"]), name
        assert purpose.retention_days == register[name]["retention_days"]
    for dataset in DATASETS:
        provider, local = dataset.split("/")
        catalog = yaml.safe_load((ROOT / "connectors" / f"{provider}.yaml").read_text())
        assert local in catalog["datasets"], dataset


def test_the_dpo_phase_runs_on_a_small_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = bench_dpo(1500, 1, cache=tmp_path, append_prefill=1000, append_groups=5)
    names = [t.name for t in timings]
    assert "no filter" in names
    assert "page 101 (no filter, 100 next_before)" in names
    assert "search by one subject ref" in names
    first = next(t for t in timings if t.name == "no filter")
    assert first.found == 25
    out = capsys.readouterr().out
    assert "dpo append cost, groups of  2" in out
    path, took = seeded(1500, tmp_path)  # made once, then kept and used again
    assert took is None
    assert path.exists()
