"""A file the gateway trusts while it runs, read again whenever it changes: the partner
CA's CRL and the development CA's issuance register.

Each use reads the file's stat key (inode, mtime, size, ctime: the file is replaced by
rename, so a new one is a new inode even within one mtime tick) and parses the file
again only when the key changed. It fails closed: a file that cannot be read or parsed
makes `current` answer None — the caller refuses every certificate — and says so once
in the log, until a good file is back; the same broken file is not read again per
request. At start-up the constructor raises `ConfigurationError` instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeAlias, TypeVar

from gateway.errors import ConfigurationError

T = TypeVar("T")
StatKey: TypeAlias = tuple[int, int, int, int] | None  # None: there is no file


class WatchedFile(Generic[T]):
    """The parsed content of ``path``, kept current with the file."""

    def __init__(
        self, path: Path, parse: Callable[[bytes | None], T], *, log: logging.Logger
    ) -> None:
        """``parse`` gets the file's bytes, or None when there is no file, and raises
        `ConfigurationError` for content that cannot be trusted (it decides whether a
        missing file is one)."""
        self.path = Path(path)
        self._parse = parse
        self._log = log
        self._lock = threading.Lock()
        self._failing = False
        self._failed_key: StatKey = None
        self._loaded: tuple[StatKey, T] | None = self._load()

    def current(self) -> T | None:
        """The content as the file now holds it; None while it cannot be trusted."""
        try:
            key = self._stat_key()
        except OSError:
            self.report_failure(f"{self.path} cannot be read; refusing all certificates")
            return None
        loaded = self._loaded
        if loaded is not None and loaded[0] == key:
            return loaded[1]
        if loaded is None and self._failed_key == key:
            return None  # the same broken file: not read and checked again per request
        with self._lock:
            # Another thread may have reloaded while this one waited.
            if self._loaded is not None and self._loaded[0] == key:
                return self._loaded[1]
            try:
                self._loaded = self._load()
            except ConfigurationError as exc:
                self._loaded, self._failed_key = None, key
                self.report_failure(f"{exc.detail}; refusing all certificates")
                return None
            self._failing = False
            return self._loaded[1]

    def _stat_key(self) -> StatKey:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)

    def _load(self) -> tuple[StatKey, T]:
        try:
            key = self._stat_key()
            data = None if key is None else self.path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{self.path} cannot be read") from exc
        return key, self._parse(data)

    def report_failure(self, message: str) -> None:
        """Log ``message`` once, until the file is good again (not once per request:
        the log must stay readable)."""
        if not self._failing:
            self._failing = True
            self._log.error(message)
