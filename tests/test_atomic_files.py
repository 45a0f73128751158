"""Key files are created whole, with their mode from the start, and never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.atomic_files import create_file, replace_file


def test_create_file_is_private_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    create_file(path, b"first")
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_file(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary left


def test_replace_file_swaps_contents_atomically(tmp_path: Path) -> None:
    path = tmp_path / "crl.pem"
    replace_file(path, b"old")
    replace_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["crl.pem"]
