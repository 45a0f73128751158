"""Runaway-evaluation scenarios for test_runaway.py, run in a child process.

``python -m tests.policy.runaway <policies-dir>`` runs every scenario, one after the
other, each on its own engine over the real regopy, and prints what they saw as one line
of JSON. A child process, so that the runaways (hours of one core each: rego-cpp cannot
interrupt them) end with it, and so that its own exit, with all of them still running,
shows whether a runaway holds up a process's shutdown.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.errors import DoelpoortError
from gateway.policy import EmbeddedEngine, compile_bundle
from tests.policy.policy_support import demo_catalog, policy_input

#: A policy that allows every purpose but one, and for that one never finishes: some
#: 10^10 steps, and nothing is kept, so it takes a core but no memory.
RUNAWAY_REGO = """
package doelpoort.disclosure

import rego.v1

decision := {"allow": false, "reasons": ["never"], "field_ops": {}, "retention_days": 0,
	"legal_basis": ""} if {
	input.purpose == "runaway"
	some a in numbers.range(1, 100000)
	some b in numbers.range(1, 100000)
	a * b == -1
}

decision := {"allow": true, "reasons": [], "field_ops": {"bsn": "pseudonymise"},
	"retention_days": 30, "legal_basis": "test"} if input.purpose != "runaway"
"""

RUNAWAY = policy_input("politie", "runaway", "ind/residence")
FIRST = policy_input("politie", "ct-assessment", "ind/residence")
# Another purpose: the policy reads only the purpose, so this is no memo hit.
SECOND = policy_input("ind", "vertrek", "ind/residence")

Report = dict[str, Any]


async def timed(work: Awaitable[Any]) -> tuple[str, float]:
    """Await ``work``: ``"ok"`` or the error's class and detail, and the seconds it took."""
    started = time.monotonic()
    try:
        await work
        outcome = "ok"
    except DoelpoortError as exc:
        outcome = f"{type(exc).__name__}: {exc.detail}"
    return outcome, time.monotonic() - started


async def timeout(engine: EmbeddedEngine) -> Report:
    """One runaway on two workers: it times out; others are answered meanwhile and after."""
    runaway = asyncio.create_task(timed(engine.decide(RUNAWAY)))
    await asyncio.sleep(0.1)  # the runaway is evaluating
    meanwhile = await timed(engine.decide(FIRST))
    ran_over = await runaway
    after = await timed(engine.decide(SECOND))
    return {"meanwhile": meanwhile, "runaway": ran_over, "after": after, "ready": engine.ready()}


async def busy(engine: EmbeddedEngine) -> Report:
    """One worker, taken by a runaway: who waits is refused at its write-off, who comes
    after is refused at once."""
    runaway = asyncio.create_task(timed(engine.decide(RUNAWAY)))
    await asyncio.sleep(0.1)
    waiting = asyncio.create_task(timed(engine.decide(FIRST)))
    ran_over = await runaway
    return {
        "runaway": ran_over,
        "waiting": await waiting,
        "next": await timed(engine.decide(SECOND)),
        "ready": engine.ready(),
    }


async def shutdown(engine: EmbeddedEngine) -> Report:
    """Close the engine while a runaway (well within its time limit) evaluates."""
    runaway = asyncio.create_task(timed(engine.decide(RUNAWAY)))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await engine.aclose()
    return {"aclose_s": time.monotonic() - started, "runaway": await runaway}


SCENARIOS: dict[str, tuple[Callable[[EmbeddedEngine], Awaitable[Report]], float, int]] = {
    # name: (scenario, timeout_s, workers)
    "timeout": (timeout, 0.5, 2),
    "busy": (busy, 0.5, 1),
    "shutdown": (shutdown, 60.0, 1),
}


def main() -> None:
    bundle = compile_bundle(Path(sys.argv[1]), demo_catalog())

    async def run_all() -> dict[str, Report]:
        reports = {}
        for name, (scenario, timeout_s, workers) in SCENARIOS.items():
            engine = EmbeddedEngine(bundle, timeout_s=timeout_s, workers=workers)
            try:
                reports[name] = await scenario(engine)
            finally:
                await engine.aclose()
        return reports

    print(json.dumps(asyncio.run(run_all())), flush=True)
    # Returning from here ends the process: the runaways' threads must not hold it up.


if __name__ == "__main__":
    main()
