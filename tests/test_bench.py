"""The bench's in-process pipeline phase: it counts real disclosures, each one logged."""

from __future__ import annotations

from pathlib import Path

from audit.reader import AuditReader
from bench import DATASETS, REQUESTER, request_body
from bench.pipeline import measure_pipeline
from gateway.dev.bootstrap import bootstrap
from tests.gateway_support import make_settings


def test_every_disclosure_the_pipeline_bench_counts_is_in_the_audit_log(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    bootstrap(settings, echo=lambda _line: None)

    report = measure_pipeline(
        settings, REQUESTER, request_body(settings), seconds=0.2, concurrency=4, timed_calls=5
    )

    assert report.disclosures > 0
    assert report.loop_cpu_s > 0
    assert report.sign_s > 0
    assert report.seal_s is not None  # setup installs the DPO's escrow key
    # Every group commits with its checkpoint: at most one per disclosure here (each
    # disclosure appends its datasets' entries as one batch), and at least one.
    assert 0 < report.groups <= report.disclosures
    assert 0 < report.checkpoints_cpu_s < report.loop_cpu_s  # measured in the run
    assert report.checkpoint_s > 0
    # One entry per dataset for each counted disclosure and the warm-up one.
    with AuditReader(settings.audit_db_path) as reader:
        assert reader.count() == (report.disclosures + 1) * len(DATASETS)
