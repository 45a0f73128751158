"""The console's tests share one gateway whose log was seeded through its partner API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.dpo.integrity import IntegrityMonitor
from tests.dpo.console_support import Seeded, cosign_latest, seed_log
from tests.gateway_support import Deployment, make_settings, running_gateway


@pytest.fixture(scope="session")
def seeded_console(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Deployment, Seeded]]:
    """A running gateway of its own, its log seeded with real requests."""
    with running_gateway(make_settings(tmp_path_factory.mktemp("console-var"))) as deployment:
        seeded = seed_log(deployment)
        cosign_latest(deployment, seeded)
        integrity: IntegrityMonitor = deployment.app.state.dpo_integrity
        integrity.wait(timeout=60)  # the start-up verification, so tests start from its result
        yield deployment, seeded
