"""Decision latency of each policy engine: fresh decisions, one at a time, no memo.

The embedded engine evaluates in-process (regopy on its worker threads); the OPA engine
asks an OPA server over HTTP on loopback. No OPA binary can be installed here, so the
server is the tests' `OpaStandIn` (regopy behind OPA's Data API, serving the bundle
``doelpoort policy bundle`` writes): its figure is the OPA engine's own cost (HTTP, JSON,
the revision check of every answer) on top of a rego-cpp evaluation, not OPA's speed.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from audit.clock import utc_now
from gateway.connectors.catalog import Catalog
from gateway.policy.bundle import compile_bundle
from gateway.policy.engine import Decision, EmbeddedEngine
from gateway.policy.opa import OpaEngine
from gateway.policy.opa_bundle import write_bundle
from gateway.policy.probe import probe_inputs
from gateway.settings import Settings
from tests.opa_standin import OpaStandIn

Decide = Callable[[Mapping[str, Any]], Awaitable[Decision]]


def bench_engines(settings: Settings, decisions: int) -> None:
    print(f"· decision latency of each engine ({decisions} fresh decisions each) …", flush=True)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    bundle = compile_bundle(settings.policies_dir, catalog)
    inputs = [
        policy_input for _label, policy_input in probe_inputs(bundle.register, catalog, utc_now())
    ]
    with tempfile.TemporaryDirectory(prefix="doelpoort-opa-") as tmp:
        path = Path(tmp) / "policy.tar.gz"
        write_bundle(bundle, path)
        with OpaStandIn(path) as opa:

            async def run() -> dict[str, list[float]]:
                embedded = EmbeddedEngine(bundle, timeout_s=5.0)
                remote = await OpaEngine.connect(bundle, opa.url, timeout_s=5.0)
                try:
                    return {
                        "embedded (regopy, in-process)": await _latencies(
                            embedded.decide_fresh, inputs, decisions
                        ),
                        "opa (OpaStandIn over HTTP)": await _latencies(
                            remote.decide, inputs, decisions
                        ),
                    }
                finally:
                    await embedded.aclose()
                    await remote.aclose()

            results = asyncio.run(run())
    for name, latencies in results.items():
        p50 = statistics.median(latencies) * 1000
        p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000
        print(f"policy decision, {name:32} p50 {p50:5.2f} ms, p99 {p99:5.2f} ms")


async def _latencies(decide: Decide, inputs: list[dict[str, Any]], decisions: int) -> list[float]:
    for policy_input in inputs:  # warm up: workers compile, connections open
        await decide(policy_input)
    latencies = []
    for i in range(decisions):
        started = time.perf_counter()
        await decide(inputs[i % len(inputs)])
        latencies.append(time.perf_counter() - started)
    return latencies
