"""The disclosure pipeline alone: what one disclosure costs without HTTP and TLS.

Runs the real :class:`~gateway.runtime.Runtime` (policy engine, connectors, operators,
escrow, signing and the durable audit log) in this process and calls
:meth:`~gateway.disclosure.DisclosureService.disclose` from concurrent tasks on one
event loop, as the server's routes do. It reports the event loop thread's CPU time per
disclosure, which is what bounds a one-process gateway's throughput, and the cost of the
two cryptographic steps every disclosure needs: the receipt's Ed25519 signature and the
escrow's sealed box.
"""

from __future__ import annotations

import asyncio
import json
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from gateway.api_models import DisclosureRequest
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

    @property
    def per_s(self) -> float:
        return self.disclosures / self.elapsed_s

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
    then time the signature and the sealed box over ``timed_calls`` calls each.

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

        started, loop_cpu, process_cpu = (
            time.perf_counter(),
            time.thread_time(),
            time.process_time(),
        )
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        loop_cpu = time.thread_time() - loop_cpu
        process_cpu = time.process_time() - process_cpu

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
    return PipelineReport(count, elapsed, loop_cpu, process_cpu, sign_s, seal_s)


def _each(call: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of five runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number
