"""The one-writer lock of a SQLite log: an advisory ``flock`` on a file beside it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from audit.errors import AuditError

WRITER_LOCK_SUFFIX = ".writer-lock"


def lock_writer(path: Path) -> int:
    """Take the one-writer lock of the log at `path`; return the descriptor that holds it.

    Each store keeps the head of the log in memory, so a second process appending to the
    same file would collide with it on every write. The lock is an advisory ``flock`` on a
    file beside the database (SQLite's own locks are on the database itself); closing the
    descriptor releases it, and so does the process ending in any way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + WRITER_LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise AuditError(f"cannot open the audit writer lock {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise AuditError(
            f"another process is writing to the audit log {path}: a log has one writer "
            "(stop the other gateway; several replicas need a shared database)"
        ) from exc
    return fd
