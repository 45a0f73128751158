"""Session fixtures shared by the end-to-end tests (helpers live in gateway_support)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.settings import ENV_PREFIX
from tests.gateway_support import Deployment, make_settings, running_gateway


@pytest.fixture(scope="session", autouse=True)
def _no_settings_from_the_shell() -> Iterator[None]:
    """Settings come from the environment: tests start from the defaults, whatever the
    shell that runs them has set (a test sets its own with monkeypatch)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith(ENV_PREFIX):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo deployment, served once for the whole session."""
    with running_gateway(make_settings(tmp_path_factory.mktemp("var"))) as deployment:
        yield deployment
