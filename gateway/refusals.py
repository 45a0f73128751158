"""Refusals of known partners, as audit entries of their own kind (SPEC §4).

A request of a configured partner that the gateway refuses — its certificate revoked
(401), a body that is not JSON (415) or too large (413), one that does not validate or
names an unknown dataset (422), a route or method that does not exist (404, 405) — is an
audit entry (`audit.entry.RefusalRecord`): who, which problem and status, which route,
and the purpose and dataset names the body gave, where they are safe to keep (below).
So probing — guessing dataset names, say — is in the DPO's log. A refusal by the policy
(403 purpose-denied) is not one of these: its decisions are entries already. A peer that
is no configured partner gets a security log line instead (`gateway.transport.security_log`).

**Rate.** Each partner gets at most ``per_minute`` entries per interval (a minute from
its first refusal); beyond that its refusals are counted by problem code, and one
`audit.entry.RefusalSummaryRecord` carries the counts: written when the interval ends (a
timer on the loop), or when the partner's next refusal comes after its end, whichever is
first, and at shutdown with the interval cut short. A flood costs at most ``per_minute``
entries and one summary per partner per minute, and nothing beyond the rate waits for
the disk. Only configured partners get an interval, so the bookkeeping is bounded by
the catalog.

**Waiting.** A refusal with an entry of its own is answered once that entry is durable,
as a decision is: one rule for everything the log holds, and the group commit batches
many refusals into one write. A refusal beyond the rate is answered at once.

**Failure.** An entry that cannot be written changes nothing in the answer, which is the
refusal anyway. The failure's class is logged once, until an entry is written again,
and the refusal is counted into the interval's summary, so the log still accounts for
it if it recovers by then.

**What is kept of a body.** Only a purpose and dataset names, and only names that are
well-formed (`gateway.ids`) and either known to this deployment (the register's
purposes, the catalog's datasets) or free of any run of five or more digits — a
well-formed name can still carry a BSN or a V-number (``x123456782``), and a body's
fields are the partner's to fill. Everything else the body gave for them is only
counted (``unrecorded_names``); a name repeated in the body (``purpose`` twice), whose
reading parsers disagree on, is counted, not kept. No other part of a body is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audit.clock import Clock, rfc3339, utc_now
from audit.entry import RefusalRecord, RefusalSummaryRecord
from audit.store import AuditStore
from gateway.ids import DATASET_ID_PATTERN, ID_PATTERN

log = logging.getLogger("doelpoort.refusals")

INTERVAL = timedelta(minutes=1)
MAX_DATASET_NAMES = 32  # as many as a valid request may name

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PURPOSE = re.compile(ID_PATTERN)
_DATASET = re.compile(DATASET_ID_PATTERN)
_DIGIT_RUN = re.compile(r"[0-9]{5}")


@dataclass(frozen=True)
class RefusalNames:
    """The purpose and dataset names of a refused body that an entry may keep."""

    purpose: str | None = None
    datasets: tuple[str, ...] = ()
    unrecorded: int = 0


NO_NAMES = RefusalNames()


def names_in_body(body: bytes, known: Callable[[str], bool]) -> RefusalNames:
    """The names of ``body`` that are safe to keep (see the module docstring); ``known``
    says whether a name is one this deployment knows."""
    try:
        # Pairs, not a dict: a repeated member stays visible. Bounded: bodies are at
        # most a MiB, and nesting too deep for the parser is no body to read names from.
        pairs = json.loads(body, object_pairs_hook=lambda pairs: pairs)
    except (ValueError, RecursionError):
        return NO_NAMES
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        return NO_NAMES  # a JSON array, string or number at the top: no named fields
    purposes = [value for name, value in pairs if name == "purpose"]
    lists = [value for name, value in pairs if name == "datasets"]
    unrecorded = 0
    purpose: str | None = None
    if len(purposes) == 1 and _keepable(purposes[0], _PURPOSE, known):
        purpose = purposes[0]
    else:
        unrecorded += len(purposes)
    datasets: list[str] = []
    if len(lists) == 1 and isinstance(lists[0], list):
        for name in lists[0]:
            if len(datasets) < MAX_DATASET_NAMES and _keepable(name, _DATASET, known):
                datasets.append(name)
            else:
                unrecorded += 1
    else:
        unrecorded += len(lists)
    return RefusalNames(purpose, tuple(datasets), unrecorded)


def _keepable(name: object, pattern: re.Pattern[str], known: Callable[[str], bool]) -> bool:
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        return False
    return known(name) or _DIGIT_RUN.search(name) is None


def method_name(method: str) -> str:
    """The request's method as an entry keeps it: a method is any token the client
    chooses, so only the standard ones are kept as they are."""
    return method if method in _HTTP_METHODS else "other"


@dataclass(eq=False)
class _Interval:
    """One partner's current interval: entries written, refusals only counted."""

    start: datetime
    end: datetime
    written: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    timer: asyncio.TimerHandle | None = None


class RefusalLog:
    """Writes known partners' refusals to the audit log, at most ``per_minute`` entries
    per partner per minute and a summary of the rest (see the module docstring)."""

    def __init__(
        self,
        audit: AuditStore,
        *,
        per_minute: int,
        known: Callable[[str], bool] = lambda _name: False,
        clock: Clock = utc_now,
    ) -> None:
        self._audit = audit
        self._per_minute = per_minute
        self._known = known
        self._clock = clock
        self._intervals: dict[str, _Interval] = {}
        self._writing: set[asyncio.Task[None]] = set()  # summaries the timers started
        self._failing = False
        self._closed = False

    async def record(
        self,
        requester: str,
        problem: str,
        status: int,
        *,
        method: str,
        route: str | None,
        body: bytes | None = None,
    ) -> None:
        """Log one refusal of ``requester``; return once its entry is durable (or at once
        when it is only counted). Never raises: the caller's answer is the refusal."""
        now = self._clock()
        interval = self._interval(requester, now)
        if interval.written >= self._per_minute or self._closed:
            self._count(requester, problem, interval)
            return
        interval.written += 1  # before the wait: concurrent refusals see the slot taken
        try:
            names = names_in_body(body, self._known) if body else NO_NAMES
            record = RefusalRecord(
                time=rfc3339(now),
                requester=requester,
                problem=problem,
                status=status,
                method=method_name(method),
                route=route,
                purpose=names.purpose,
                datasets=list(names.datasets),
                unrecorded_names=names.unrecorded,
            )
            await self._audit.append([record])
        except Exception as exc:
            self._report(exc)
            # Counted instead, in whichever interval is current by now.
            self._count(requester, problem, self._interval(requester, self._clock()))
            return
        self._failing = False

    async def write_due_summaries(self) -> None:
        """Write the summary of every interval that has ended by the clock (each
        interval's timer does this for its own; a test with its own clock calls this)."""
        now = self._clock()
        due = [
            (requester, interval)
            for requester, interval in self._intervals.items()
            if interval.end <= now
        ]
        for requester, _ in due:
            del self._intervals[requester]
        await self._summarise(due, now)

    async def aclose(self) -> None:
        """Write every summary still open (its interval cut short) and stop; refusals
        after this are only counted, and lost. Call it before the audit store closes."""
        self._closed = True
        # Taken first: a timer that fires meanwhile finds its interval gone.
        intervals, self._intervals = list(self._intervals.items()), {}
        for task in list(self._writing):
            await asyncio.gather(task, return_exceptions=True)
        await self._summarise(intervals, self._clock())

    # -- intervals -----------------------------------------------------------------------

    def _interval(self, requester: str, now: datetime) -> _Interval:
        """The partner's current interval; one that has ended is summarised first."""
        interval = self._intervals.get(requester)
        if interval is not None and now < interval.end:
            return interval
        if interval is not None and interval.counts and not self._closed:
            # In the background: this refusal's answer need not wait for the summary.
            self._in_background(self._summarise([(requester, interval)], now))
        interval = self._intervals[requester] = _Interval(now, now + INTERVAL)
        return interval

    def _count(self, requester: str, problem: str, interval: _Interval) -> None:
        interval.counts[problem] += 1
        if interval.timer is None and not self._closed:
            self._arm(requester, interval)

    def _arm(self, requester: str, interval: _Interval) -> None:
        delay = max(0.0, (interval.end - self._clock()).total_seconds())
        loop = asyncio.get_running_loop()
        interval.timer = loop.call_later(delay, self._on_interval_end, requester, interval)

    def _on_interval_end(self, requester: str, interval: _Interval) -> None:
        if self._intervals.get(requester) is not interval:
            return  # summarised already, by the partner's next refusal
        now = self._clock()
        if now < interval.end:  # the loop's clock is not the wall clock: not quite yet
            self._arm(requester, interval)
            return
        del self._intervals[requester]
        self._in_background(self._summarise([(requester, interval)], now))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._writing.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._writing.discard)

    async def _summarise(self, intervals: Iterable[tuple[str, _Interval]], now: datetime) -> None:
        records = []
        for requester, interval in intervals:
            if interval.timer is not None:
                interval.timer.cancel()
            if interval.counts:
                records.append(
                    RefusalSummaryRecord(
                        time=rfc3339(now),
                        requester=requester,
                        interval_start=rfc3339(interval.start),
                        interval_end=rfc3339(min(now, interval.end)),
                        counts=dict(sorted(interval.counts.items())),
                    )
                )
        if not records:
            return
        try:
            await self._audit.append(records)
        except Exception as exc:
            self._report(exc)
            lost = sum(sum(r.counts.values()) for r in records)
            log.error("%d refusals beyond the rate are not in the audit log", lost)

    def _report(self, exc: Exception) -> None:
        # Once per failure, not once per refusal: a flood must not flood this log too.
        if not self._failing:
            self._failing = True
            log.error("a refusal could not be written to the audit log: %s", type(exc).__name__)
