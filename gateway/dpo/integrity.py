"""The log's integrity status for the DPO console: `audit.verify.verify_log` run by the
gateway itself, at start-up and when the DPO asks ("verify now").

A verification reads the whole log, so it runs on a thread of its own with a reader of its
own, never on the event loop; one at a time (asking again while one runs joins it). Its
result is kept in memory and shown on ``/dpo/integrity`` and the overview: when it ran,
how many entries and checkpoints it checked and how fast, or the first bad sequence
number and why.

This is the gateway checking itself with its own public key, read from its own key
directory: it notices a log changed behind the gateway's back, not a host whose keys were
taken too. The page says so, and points to ``doelpoort audit verify --log-key`` with the
DPO's own copy of the key and a trusted checkpoint kept off the host.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from audit.clock import Clock, rfc3339, utc_now
from audit.errors import AuditVerificationError, DoelpoortError
from audit.keys import load_log_public_key
from audit.reader import AuditReader
from audit.verify import verify_log

__all__ = ["IntegrityMonitor", "Verification", "integrity_lifespan", "monitor"]

log = logging.getLogger("doelpoort.dpo.integrity")


@dataclass(frozen=True)
class Verification:
    """One run of `verify_log`: running (``finished`` is None), intact, or not."""

    started: str
    trigger: str
    """``start-up`` or ``dpo`` (the verify now button or its API twin)."""
    finished: str | None = None
    intact: bool | None = None
    entries: int | None = None
    checkpoints: int | None = None
    entries_per_s: float | None = None
    elapsed_s: float | None = None
    root: str | None = None
    first_bad_seq: int | None = None
    failure: str | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "running": self.running}


class IntegrityMonitor:
    """The latest verification of one log, and the thread that runs the next."""

    def __init__(
        self,
        audit_db: Path,
        keys_dir: Path,
        origin: str,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._audit_db = audit_db
        self._keys_dir = keys_dir
        self._origin = origin
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Verification | None = None
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> Verification | None:
        """The running verification, else the last finished one; None before the first."""
        with self._lock:
            return self._latest

    def start(self, trigger: str) -> Verification:
        """Start a verification unless one is running; either way, the one that runs."""
        with self._lock:
            if self._latest is not None and self._latest.running:
                return self._latest
            self._latest = running = Verification(started=self._now(), trigger=trigger)
            # A daemon: shutting the gateway down never waits for a long verification.
            self._thread = threading.Thread(
                target=self._run, args=(running,), name="doelpoort-dpo-verify", daemon=True
            )
            self._thread.start()
            return running

    def wait(self, timeout: float | None = None) -> Verification | None:
        """The verification after the running one has finished (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.latest

    def _now(self) -> str:
        return rfc3339(self._clock())

    def _run(self, running: Verification) -> None:
        try:
            done = self._verified(running)
        except Exception as exc:  # a bug must not leave the status "running" for ever
            log.error("log verification failed: unexpected %s", type(exc).__name__)
            done = self._failed(running, "the verification itself failed; see the gateway log")
        with self._lock:
            self._latest = done
        if done.intact:
            log.info("audit log verified intact: %d entries", done.entries or 0)
        else:
            log.warning("audit log NOT intact: first bad seq %s", done.first_bad_seq)

    def _verified(self, running: Verification) -> Verification:
        try:
            public_key = load_log_public_key(self._keys_dir)
            with AuditReader(self._audit_db) as reader:
                report = verify_log(reader, public_key, origin=self._origin)
        except AuditVerificationError as exc:
            return self._failed(running, exc.reason, exc.first_bad_seq)
        except DoelpoortError as exc:  # no key, an unreadable log, a foreign checkpoint
            return self._failed(running, exc.detail)
        except sqlite3.DatabaseError as exc:  # a file that is no SQLite database (any more)
            return self._failed(running, f"the audit log cannot be read: {exc}")
        return Verification(
            started=running.started,
            trigger=running.trigger,
            finished=self._now(),
            intact=True,
            entries=report.entries,
            checkpoints=report.checkpoints,
            entries_per_s=round(report.entries_per_s, 1) if report.elapsed_s > 0 else None,
            elapsed_s=round(report.elapsed_s, 3),
            root=report.root.hex(),
        )

    def _failed(self, running: Verification, why: str, seq: int | None = None) -> Verification:
        return Verification(
            started=running.started,
            trigger=running.trigger,
            finished=self._now(),
            intact=False,
            first_bad_seq=seq,
            failure=why,
        )


def monitor(request: Request) -> IntegrityMonitor:
    """The running gateway's monitor (made by `integrity_lifespan`)."""
    found: IntegrityMonitor = request.app.state.dpo_integrity
    return found


@asynccontextmanager
async def integrity_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start-up (after the runtime has started), verify the log once in the background."""
    settings = app.state.runtime.settings
    found = IntegrityMonitor(settings.audit_db_path, settings.keys_dir, settings.origin)
    app.state.dpo_integrity = found
    found.start("start-up")
    yield
