"""Files written so that a crash never leaves half of one: keys, certificates, records.

A file is written in full beside its destination with its final mode from the start,
fsynced, then linked (create: never overwrites) or renamed (replace: readers see the old
file or the new one) into place. A process that dies midway leaves a stray temporary
file at worst, never an empty or truncated key.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def create_file(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Create ``path`` with ``data``; raise FileExistsError if it exists already."""
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)  # unlike rename, fails if ``path`` exists
    finally:
        os.unlink(tmp)


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
