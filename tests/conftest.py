"""Session fixtures shared by the end-to-end tests (helpers live in gateway_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway_support import Deployment, make_settings, running_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo deployment, served once for the whole session."""
    with running_gateway(make_settings(tmp_path_factory.mktemp("var"))) as deployment:
        yield deployment
