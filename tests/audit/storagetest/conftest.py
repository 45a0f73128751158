"""The `backend` fixture: every test of the suite runs once per backend in `BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.sqlite_harness import SQLiteHarness

BACKENDS: dict[str, Callable[[Path], StorageHarness]] = {
    "sqlite": SQLiteHarness,
}
"""Each backend's harness, made from the test's tmp_path."""


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageHarness]:
    harness = BACKENDS[request.param](tmp_path)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
