"""Performance measurements of SPEC §10 (`make bench`)."""

from __future__ import annotations

import json

from gateway.dev.demo import load_subjects
from gateway.settings import Settings

REQUESTER = "politie"
DATASETS = ["ind/residence", "kmar/border-crossings"]


def request_body(settings: Settings) -> bytes:
    """What every phase asks: the SPEC §5 example, the police asking for a ct-assessment
    of the synthetic CT subject over two datasets."""
    return json.dumps(
        {
            "purpose": "ct-assessment",
            "case_ref": "BENCH-2026-1",
            "justification": "benchmark of the synthetic demo deployment",
            "subject": load_subjects(settings)["ct_subject"],
            "datasets": DATASETS,
        }
    ).encode()
