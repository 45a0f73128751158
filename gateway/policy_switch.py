"""Swapping a running gateway's policy set, on SIGHUP or a change of its files.

**What switches.** Everything a policy set decides is one `ServingPolicy`: the compiled
set, its engine, the disclosure pipeline deciding with them, and the request model (the
register's case_ref formats). The partner API takes the current one once per request
and uses it to the end (`ServingPolicy.in_use`), so a request in flight finishes on the
set it started with, and never sees half of a swap; the refusal log's names and the
OpenAPI document read the current one. A swap is one assignment on the event loop.

**When.** `PolicySwitch.request` asks for an attempt: the SIGHUP handler
(`gateway.transport.serving`) and the watcher do. The watcher polls the source's
fingerprint (`gateway.policy.sources`) every ``DOELPOORT_POLICY_WATCH_S`` seconds and
asks once a change has stood still for one interval (an author copying several files
gets one attempt, not one per file). Attempts run one at a time; asks during one are
folded into one more attempt after it.

**Only a vetted set.** An attempt vets the candidate off the event loop
(`gateway.policy.vetting`): requests keep flowing on the old set meanwhile. A refused
set changes nothing: the old one keeps serving, and the refusal is a log line with its
reasons, an audit entry, ``/readyz``'s ``policy.last_reload`` and the
``doelpoort_policy_reload_refused`` gauge. If the files change while being vetted, the
result is dropped and the set vetted again. A set is swapped in only once its audit
entry is durable; if that fails, the swap is refused (no decision is ever made by a set
the log does not show coming in). The old engine is closed once the requests that hold
it have finished (or after `RETIRE_GRACE_S`: a request still on it then fails closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from audit.clock import Clock, rfc3339
from audit.entry import PolicyChangeRecord
from audit.store import AuditStore
from gateway.api_models import DisclosureRequest, request_model
from gateway.connectors.catalog import Catalog
from gateway.disclosure import DisclosureService
from gateway.errors import ConfigurationError
from gateway.metrics import Metrics
from gateway.policy.bundle import PolicyBundle
from gateway.policy.engine import PolicyEngine
from gateway.policy.register import Register
from gateway.policy.sources import Fingerprint, PolicySource
from gateway.policy.vetting import (
    RELOAD_STEPS,
    Refused,
    Step,
    Unchanged,
    Vetted,
    vet,
)

__all__ = ["RETIRE_GRACE_S", "PolicySwitch", "ServingPolicy"]

log = logging.getLogger("doelpoort.policy")

RETIRE_GRACE_S = 60.0
"""How long a replaced set's engine stays open for the requests that started on it."""
MAX_VETTING_ROUNDS = 3
"""Attempts to vet a directory that keeps changing under vetting, before giving up
until the next change."""

Outcome = Literal["swapped", "refused", "unchanged"]


@dataclass(eq=False)
class ServingPolicy:
    """One policy set as it serves: switched as a whole."""

    bundle: PolicyBundle
    engine: PolicyEngine
    disclosures: DisclosureService
    request_model: type[DisclosureRequest]
    _users: int = field(default=0, repr=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    def build(
        cls, bundle: PolicyBundle, engine: PolicyEngine, disclosures: DisclosureService
    ) -> ServingPolicy:
        """``disclosures`` deciding with ``engine`` and ``bundle``'s register."""
        return cls(
            bundle=bundle,
            engine=engine,
            disclosures=disclosures.with_policy(bundle.register, engine),
            request_model=request_model(bundle.register.case_ref_formats),
        )

    @property
    def digest(self) -> str:
        return self.bundle.digest

    @property
    def register(self) -> Register:
        return self.bundle.register

    @contextlib.contextmanager
    def in_use(self) -> Iterator[ServingPolicy]:
        """Hold this set for one request: its engine is not closed before the end."""
        self._users += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                self._idle.set()

    async def retire(self, grace_s: float = RETIRE_GRACE_S) -> None:
        """Close the engine once no request holds this set (or ``grace_s`` passed)."""
        if self._users:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._idle.wait()
            if self._users:
                log.warning(
                    "policy set %s closed with %d requests still on it: they fail closed",
                    self.digest,
                    self._users,
                )
        await self.engine.aclose()


@dataclass(frozen=True)
class ReloadStatus:
    """The last attempt, for ``/readyz``: names and digests only."""

    time: str
    trigger: str
    outcome: Outcome
    candidate: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "trigger": self.trigger,
            "outcome": self.outcome,
            "candidate_digest": self.candidate,
        }


class PolicySwitch:
    """Holds the serving policy set and swaps in vetted ones (see the module docstring)."""

    def __init__(
        self,
        serving: ServingPolicy,
        *,
        source: PolicySource,
        seen: Fingerprint,
        catalog: Catalog,
        audit: AuditStore,
        metrics: Metrics,
        new_engine: Callable[[PolicyBundle], Awaitable[PolicyEngine]],
        clock: Clock,
        pinned: str | None = None,
        watch_s: float = 0.0,
        steps: Sequence[Step] = RELOAD_STEPS,
    ) -> None:
        """``seen``: the source's fingerprint from before ``serving`` was read."""
        self._current = serving
        self._source = source
        self._steps = steps
        self._seen = seen
        self._catalog = catalog
        self._audit = audit
        self._metrics = metrics
        self._new_engine = new_engine
        self._clock = clock
        self._pinned = pinned
        self._watch_s = watch_s
        self.last: ReloadStatus | None = None
        self._running: asyncio.Task[None] | None = None
        self._pending: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def current(self) -> ServingPolicy:
        return self._current

    def status(self) -> dict[str, Any]:
        """``/readyz``'s ``policy``: the digest serving and the last attempt."""
        return {
            "digest": self._current.digest,
            "last_reload": None if self.last is None else self.last.as_json(),
        }

    def start(self) -> None:
        """Start watching the source (unless ``watch_s`` is 0). On the event loop."""
        if self._watch_s > 0 and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="policy-watch")

    def request(self, trigger: str) -> None:
        """Ask for an attempt (on the event loop); one running already is followed by
        one more, whatever the number of asks meanwhile."""
        if self._closed:
            return
        if self._running is not None and not self._running.done():
            self._pending = trigger
            return
        self._running = asyncio.create_task(self._attempts(trigger), name="policy-reload")

    async def reload(self, trigger: str) -> Outcome:
        """One attempt now (after any running one); its outcome."""
        while self._running is not None and not self._running.done():
            await asyncio.gather(self._running, return_exceptions=True)
        outcome: list[Outcome] = []
        self._running = asyncio.create_task(self._attempts(trigger, outcome))
        await self._running
        return outcome[0]

    async def aclose(self) -> None:
        """Stop watching and reloading; close every engine, the serving one last."""
        self._closed = True
        tasks = [t for t in (self._watcher, self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._current.engine.aclose()

    # -- attempts ----------------------------------------------------------------------

    async def _attempts(self, trigger: str, outcome: list[Outcome] | None = None) -> None:
        next_trigger: str | None = trigger
        while next_trigger is not None and not self._closed:
            try:
                result = await self._attempt(next_trigger)
            except Exception as exc:
                # A bug here must not end reloading for good, nor touch what serves.
                log.error("policy reload (%s) failed: %s", next_trigger, type(exc).__name__)
                result = "refused"
            if outcome is not None and not outcome:
                outcome.append(result)
            next_trigger, self._pending = self._pending, None

    async def _attempt(self, trigger: str) -> Outcome:
        for _ in range(MAX_VETTING_ROUNDS):
            before = await asyncio.to_thread(self._source.fingerprint)
            result, source = await self._vet()
            try:
                if await asyncio.to_thread(self._source.fingerprint) == before:
                    self._seen = before
                    return await self._settle(trigger, result, source)
            except BaseException:
                # Cancelled (shutdown) or failed before the swap: a vetted engine that
                # does not serve is closed, not left with its threads.
                if isinstance(result, Vetted) and result.engine is not self._current.engine:
                    await result.engine.aclose()
                raise
            # Changed while it was read: what was vetted may not be what is there now.
            if isinstance(result, Vetted):
                await result.engine.aclose()
            log.info("policy files changed while they were vetted: vetting them again")
        log.warning("policy files keep changing: not vetted; waiting for the next change")
        return "unchanged"

    async def _vet(self) -> tuple[Vetted | Refused | Unchanged, str]:
        kind = self._source.kind
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Opening a bundle reads and verifies it: off the loop.
                candidate = await asyncio.to_thread(stack.enter_context, self._source.open())
                result = await vet(
                    candidate,
                    self._catalog,
                    new_engine=self._new_engine,
                    clock=self._clock,
                    pinned=self._pinned,
                    serving=self._current.digest,
                    steps=self._steps,
                )
        except ConfigurationError as exc:
            return Refused((exc.detail,), None), kind
        except Exception as exc:
            # Anything else that stops the candidate being read or vetted (a bundle whose
            # files cannot be unpacked, a reader bug) refuses it like any other reason:
            # on record, in /readyz, the old set serving. Only the class: a message might
            # quote what was read.
            log.error("policy candidate could not be vetted: %s", type(exc).__name__)
            reason = f"the policy set could not be read or vetted ({type(exc).__name__})"
            return Refused((reason,), None), kind
        return result, kind

    async def _settle(
        self, trigger: str, result: Vetted | Refused | Unchanged, source: str
    ) -> Outcome:
        old = self._current
        if isinstance(result, Unchanged):
            log.info("policy reload (%s): the policy set is unchanged (%s)", trigger, old.digest)
            self._metrics.policy_reloads.labels(trigger, "unchanged").inc()
            return "unchanged"
        if isinstance(result, Refused):
            await self._refuse(trigger, source, result.digest, result.reasons)
            return "refused"
        new = ServingPolicy.build(result.bundle, result.engine, old.disclosures)
        try:
            # The text behind the digest first: an entry never names an unarchived set.
            await self._audit.archive_policy_set(new.digest, new.bundle.sources)
            await self._record(trigger, source, "swapped", new.digest, [])
        except Exception as exc:
            await new.engine.aclose()
            reason = f"the swap could not be written to the audit log ({type(exc).__name__})"
            await self._refuse(trigger, source, new.digest, (reason,), write=False)
            return "refused"
        self._current = new  # the swap: requests from here on take the new set
        self._note(trigger, "swapped", new.digest)
        log.info("policy reload (%s): now serving %s (was %s)", trigger, new.digest, old.digest)
        task = asyncio.create_task(old.retire(), name="policy-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return "swapped"

    async def _refuse(
        self,
        trigger: str,
        source: str,
        digest: str | None,
        reasons: tuple[str, ...],
        *,
        write: bool = True,
    ) -> None:
        log.error(
            "policy reload (%s) refused, still serving %s: %s",
            trigger,
            self._current.digest,
            "; ".join(reasons),
        )
        self._note(trigger, "refused", digest)
        if not write:
            return
        try:
            await self._record(trigger, source, "refused", digest, list(reasons))
        except Exception as exc:
            log.error("the refused policy reload is not in the audit log: %s", type(exc).__name__)

    async def _record(
        self,
        trigger: str,
        source: str,
        outcome: Literal["swapped", "refused"],
        digest: str | None,
        reasons: list[str],
    ) -> None:
        record = PolicyChangeRecord(
            time=rfc3339(self._clock()),
            trigger=trigger,
            source=source,
            outcome=outcome,
            old_digest=self._current.digest,
            new_digest=digest,
            reasons=reasons,
        )
        await self._audit.append([record])

    def _note(
        self, trigger: str, outcome: Literal["swapped", "refused"], digest: str | None
    ) -> None:
        self.last = ReloadStatus(rfc3339(self._clock()), trigger, outcome, digest)
        self._metrics.policy_reloads.labels(trigger, outcome).inc()
        self._metrics.policy_reload_refused.set(1 if outcome == "refused" else 0)

    # -- watching ----------------------------------------------------------------------

    async def _watch(self) -> None:
        settling: Fingerprint | None = None
        while True:
            await asyncio.sleep(self._watch_s)
            if self._running is not None and not self._running.done():
                continue  # the attempt under way reads the files itself
            try:
                now = await asyncio.to_thread(self._source.fingerprint)
            except Exception as exc:
                log.error("policy files could not be looked at: %s", type(exc).__name__)
                continue
            if now == self._seen:
                settling = None
            elif now != settling:
                settling = now  # changed: ask once it stands still for an interval
            else:
                settling = None
                self.request("file-change")
