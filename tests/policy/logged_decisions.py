"""A real audit log of decisions for the authors' tools, written by the real pipeline.

`seed_log` sets up a synthetic deployment in ``var_dir`` and runs the real
:class:`~gateway.runtime.Runtime` (policy engine, connectors, operators, audit log) in
this process, disclosing the demo requests below at a clock the test chooses, as the
partner API would (without HTTP, which these tools never see).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gateway.api_models import DisclosureRequest
from gateway.dev.bootstrap import bootstrap
from gateway.dev.demo import load_subjects
from gateway.errors import PurposeDenied
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.gateway_support import make_settings

EARLY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATE = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

#: (requester, purpose, subject, datasets): what the demo partners ask.
REQUESTS: list[tuple[str, str, str, list[str]]] = [
    ("politie", "ct-assessment", "ct_subject", ["ind/residence", "kmar/border-crossings"]),
    ("nctv", "ct-assessment", "ct_subject", ["fiu/transactions"]),
    ("dtv", "vertrek", "departure_subject", ["ind/residence", "dji/detention"]),
    ("voorbeeldbank", "tf-screening", "bank_customer", ["fiu/transactions"]),
    # Refused: the bank holds no ct-infobox role (one deny entry per dataset the purpose
    # covers).
    ("voorbeeldbank", "ct-assessment", "bank_customer", ["ind/residence"]),
]


def seed_log(
    tmp_path: Path,
    batches: Sequence[tuple[datetime, int]] = ((EARLY, 1), (LATE, 1)),
) -> Settings:
    """A deployment under ``tmp_path/var`` whose log holds REQUESTS ``n`` times at each
    (time, n) of ``batches``."""
    settings = make_settings(tmp_path / "var")
    bootstrap(settings, echo=lambda _line: None)
    subjects = load_subjects(settings)
    for when, times in batches:
        asyncio.run(_disclose(settings, when, subjects, times))
    return settings


async def _disclose(
    settings: Settings, when: datetime, subjects: dict[str, dict[str, str]], times: int
) -> None:
    runtime = await Runtime.start(settings, clock=lambda: when)
    try:
        for _ in range(times):
            for requester, purpose, subject, datasets in REQUESTS:
                request = DisclosureRequest.from_body(
                    json.dumps(
                        {
                            "purpose": purpose,
                            "case_ref": "CTI-2026-0042",
                            "justification": "synthetic test of the policy tools",
                            "subject": subjects[subject],
                            "datasets": datasets,
                        }
                    ).encode()
                )
                with contextlib.suppress(PurposeDenied):
                    await runtime.disclosures.disclose(runtime.catalog.partners[requester], request)
    finally:
        await runtime.close()
