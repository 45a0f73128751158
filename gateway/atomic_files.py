"""Key and certificate files: written so that a crash never leaves half of one, and a
private one read only while no one but its owner can read it.

A file is written in full beside its destination with its final mode from the start,
fsynced, then linked (create: never overwrites) or renamed (replace: readers see the old
file or the new one) into place. A process that dies midway leaves a stray temporary
file at worst, never an empty or truncated key.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from gateway.errors import ConfigurationError

PRIVATE = 0o600
PUBLIC = 0o644


def create_file(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Create ``path`` with ``data``; raise FileExistsError if it exists already."""
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)  # unlike rename, fails if ``path`` exists
    finally:
        os.unlink(tmp)


def read_private_file(path: Path) -> bytes:
    """The content of a secret file; ConfigurationError if group or others may access it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is accessible to group or others (mode {mode:o}); it must be 0600"
        )
    return path.read_bytes()


def replace_file(path: Path, data: bytes, mode: int = PUBLIC) -> None:
    """Replace ``path`` with ``data`` atomically."""
    os.replace(_write_temp(path, data, mode), path)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)
