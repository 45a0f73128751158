"""The disclosure pipeline alone: what one disclosure costs without HTTP and TLS.

Runs the real :class:`~gateway.runtime.Runtime` (policy engine, connectors, operators,
escrow, signing and the durable audit log) in this process and calls
:meth:`~gateway.disclosure.DisclosureService.disclose` from concurrent tasks on one
event loop, as the server's routes do. It reports the event loop thread's CPU time per
disclosure, which is what bounds a one-process gateway's throughput, and the cost of the
two cryptographic steps every disclosure needs: the receipt's Ed25519 signature and the
escrow's sealed box. It also reports the third, which a disclosure shares with the
others of its commit group: the audit log's checkpoint (the tree's root and an Ed25519
signature), signed on the event loop once per group; how many disclosures share one
depends on the load, so it reports groups per second beside disclosures per second.
The checkpoint is measured as it ran, among everything else the loop does, and also
timed alone like the other two: in the run it costs several times more (presumably as
its code and tables are no longer in the CPU's caches when the next group comes).
"""

from __future__ import annotations

import asyncio
import json
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import audit.store
from audit.clock import utc_now
from audit.entry import entry_leaf_hash
from audit.reader import AuditReader
from audit.store import group_checkpoint
from audit.tree import CompactRange
from gateway.api_models import DisclosureRequest
from gateway.keys import load_log_key
from gateway.runtime import Runtime
from gateway.settings import Settings


@dataclass(frozen=True)
class PipelineReport:
    disclosures: int
    elapsed_s: float
    loop_cpu_s: float  # the event loop thread's CPU time
    process_cpu_s: float  # every thread's, the audit writer's included
    sign_s: float  # one receipt signature over this request's disclosure
    seal_s: float | None  # one escrow sealed box; None when escrow is off
    groups: int  # audit commit groups in the run, each with its signed checkpoint
    checkpoints_cpu_s: float  # the loop's CPU time making those groups' checkpoints
    checkpoint_s: float  # one group's checkpoint over a tree of the log's size, alone

    @property
    def per_s(self) -> float:
        return self.disclosures / self.elapsed_s

    @property
    def groups_per_s(self) -> float:
        return self.groups / self.elapsed_s

    @property
    def checkpoint_in_run_s(self) -> float:
        """One group's checkpoint as it ran: the loop's CPU time, per group."""
        return self.checkpoints_cpu_s / max(self.groups, 1)

    @property
    def checkpoint_per_disclosure_s(self) -> float:
        """A disclosure's share of the checkpoints: one per group, shared by its group."""
        return self.checkpoints_cpu_s / self.disclosures

    @property
    def loop_cpu_per_disclosure_s(self) -> float:
        return self.loop_cpu_s / self.disclosures

    @property
    def process_cpu_per_disclosure_s(self) -> float:
        return self.process_cpu_s / self.disclosures


def measure_pipeline(
    settings: Settings,
    requester_id: str,
    body: bytes,
    *,
    seconds: float,
    concurrency: int,
    timed_calls: int = 2_000,
) -> PipelineReport:
    """Disclose ``body`` for ``requester_id`` from ``concurrency`` tasks for ``seconds``,
    then time the signature, the sealed box and a group's checkpoint over ``timed_calls``
    calls each.

    Opens the deployment's audit log, so no gateway may be serving ``settings`` meanwhile.
    """
    return asyncio.run(_measure(settings, requester_id, body, seconds, concurrency, timed_calls))


async def _measure(
    settings: Settings,
    requester_id: str,
    body: bytes,
    seconds: float,
    concurrency: int,
    timed_calls: int,
) -> PipelineReport:
    runtime = await Runtime.start(settings)
    try:
        service = runtime.disclosures
        requester = runtime.catalog.partners[requester_id]
        request = DisclosureRequest.from_body(body)
        sample = await service.disclose(requester, request)  # also warms the caches
        disclosure = json.loads(sample.payload)

        count = 0
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await service.disclose(requester, request)
                count += 1

        started, loop_cpu, process_cpu, commits = (
            time.perf_counter(),
            time.thread_time(),
            time.process_time(),
            runtime.audit.commit_count,
        )
        with _tally(audit.store, "group_checkpoint") as checkpoints:
            await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        loop_cpu = time.thread_time() - loop_cpu
        process_cpu = time.process_time() - process_cpu
        groups = runtime.audit.commit_count - commits

        sign_s = _each(lambda: service.signer.sign_disclosure(disclosure), timed_calls)
        sealer = service.escrow
        pairs = {"ind/residence": {"psn:" + "x" * 26: "123456782"}}  # one synthetic pair
        seal_s = (
            None
            if sealer is None
            else _each(lambda: sealer.seal(request.justification, pairs), timed_calls)
        )
    finally:
        await runtime.close()
    checkpoint_s = _time_checkpoint(settings, timed_calls)
    return PipelineReport(
        count,
        elapsed,
        loop_cpu,
        process_cpu,
        sign_s,
        seal_s,
        groups,
        checkpoints.cpu_s,
        checkpoint_s,
    )


class _Tally:
    calls = 0
    cpu_s = 0.0  # the calling thread's CPU time


@contextmanager
def _tally(module: ModuleType, name: str) -> Iterator[_Tally]:
    """Count the calls of ``module.name`` and the CPU time spent in them, while the
    context lasts. The store calls its per-group checkpoint function by its module's
    name, on the event loop, so this measures it in the run without a change to it."""
    original = getattr(module, name)
    tally = _Tally()

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            tally.cpu_s += time.thread_time() - started
            tally.calls += 1

    setattr(module, name, timed)
    try:
        yield tally
    finally:
        setattr(module, name, original)


def _time_checkpoint(settings: Settings, timed_calls: int) -> float:
    """Seconds for one group's checkpoint alone, as the store makes it, over the log just
    written (its root costs O(log n) hashes, so the tree has the log's real size)."""
    tree = CompactRange()
    with AuditReader(settings.audit_db_path) as reader:
        for row in reader.iter_rows():
            tree.append(entry_leaf_hash(*row))
    key = load_log_key(settings.keys_dir)
    origin = settings.origin
    return _each(
        lambda: group_checkpoint(tree, origin=origin, log_key=key, now=utc_now), timed_calls
    )


def _each(call: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of five runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number
