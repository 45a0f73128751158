"""The bounded evaluation workers' bookkeeping, with an evaluator that blocks on demand.

A "runaway" here waits on an event instead of burning a core, so every step is exact.
The same behaviour with real regopy and a real runaway Rego loop is in test_runaway.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from gateway.errors import PolicyUnavailable
from gateway.policy.workers import EvaluationWorkers, Job

RUNAWAY = json.dumps("runaway")


class Gate:
    """Evaluations of RUNAWAY block until ``release``; every other input is echoed."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.evaluated: list[str] = []
        self.built_on: list[int] = []
        self.runaway_on: list[int] = []
        self.fail_builds = 0

    def make_evaluator(self) -> Gate.Evaluator:
        self.built_on.append(threading.get_ident())
        if self.fail_builds:
            self.fail_builds -= 1
            raise PolicyUnavailable("the policy bundle could not be loaded")
        return Gate.Evaluator(self)

    class Evaluator:
        def __init__(self, gate: Gate) -> None:
            self.gate = gate

        def evaluate(self, document: str) -> object:
            self.gate.evaluated.append(document)
            if document == RUNAWAY:
                self.gate.runaway_on.append(threading.get_ident())
                self.gate.released.wait()
                return "late"
            return json.loads(document)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.released.set()  # let blocked worker threads end


def run(
    gate: Gate, scenario: Callable[[EvaluationWorkers], Awaitable[None]], **kwargs: int
) -> None:
    options = {"size": 1, "max_waiting": 8, **kwargs}
    workers = EvaluationWorkers(gate.make_evaluator, **options)

    async def main() -> None:
        try:
            await scenario(workers)
        finally:
            workers.close()

    asyncio.run(main())


def time_out(workers: EvaluationWorkers, job: Job) -> None:
    """What the engine does when a job's time limit passes."""
    job.future.cancel()
    workers.abandon(job, write_off=True)


async def started(gate: Gate, count: int = 1) -> None:
    """Wait until ``count`` runaways have reached their evaluator."""
    while gate.evaluated.count(RUNAWAY) < count:
        await asyncio.sleep(0.001)


def test_a_worker_evaluates_on_its_own_thread_with_its_own_evaluator(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        assert await workers.submit(json.dumps({"a": 1})).future == {"a": 1}
        assert await workers.submit(json.dumps(2)).future == 2

    run(gate, scenario)
    assert len(gate.built_on) == 1  # built once, then reused
    assert gate.built_on[0] != threading.get_ident()


def test_a_written_off_worker_takes_no_work_until_its_evaluation_ends(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        runaway = workers.submit(RUNAWAY)
        await started(gate)
        time_out(workers, runaway)
        assert workers.written_off == 1
        assert workers.available()
        # The other worker answers meanwhile.
        assert await workers.submit(json.dumps("next")).future == "next"
        gate.released.set()
        while workers.written_off:
            await asyncio.sleep(0.001)
        assert runaway.future.cancelled()  # its late answer was dropped
        assert await workers.submit(json.dumps("after")).future == "after"

    run(gate, scenario, size=2)


def test_with_every_worker_written_off_a_request_is_refused_at_once(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        runaway = workers.submit(RUNAWAY)
        await started(gate)
        time_out(workers, runaway)
        assert not workers.available()
        with pytest.raises(PolicyUnavailable, match="ran over its time limit"):
            workers.submit(json.dumps("refused"))
        gate.released.set()  # the runaway ends: the worker rejoins
        while not workers.available():
            await asyncio.sleep(0.001)
        assert await workers.submit(json.dumps("served")).future == "served"

    run(gate, scenario)
    assert json.dumps("refused") not in gate.evaluated


def test_a_request_in_line_is_refused_when_the_last_worker_is_written_off(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        runaway = workers.submit(RUNAWAY)
        await started(gate)
        waiting = workers.submit(json.dumps("waiting"))  # the worker is busy: in line
        await asyncio.sleep(0.01)
        assert not waiting.future.done()
        time_out(workers, runaway)
        with pytest.raises(PolicyUnavailable, match="over its time limit"):
            await waiting.future

    run(gate, scenario)


def test_a_burst_waits_in_line_for_the_busy_worker(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        runaway = workers.submit(RUNAWAY)
        await started(gate)
        burst = [workers.submit(json.dumps(i)) for i in range(8)]
        gate.released.set()  # it was slow, not a runaway: the line is served in order
        assert await runaway.future == "late"
        assert [await job.future for job in burst] == list(range(8))

    run(gate, scenario)


def test_a_full_line_is_refused_at_once(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        workers.submit(RUNAWAY)
        await started(gate)
        workers.submit(json.dumps("in line"))
        with pytest.raises(PolicyUnavailable, match="1 requests wait already"):
            workers.submit(json.dumps("one too many"))

    run(gate, scenario, max_waiting=1)


def test_a_request_that_gives_up_in_line_is_never_evaluated(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        runaway = workers.submit(RUNAWAY)
        await started(gate)
        gave_up = workers.submit(json.dumps("gave up"))
        time_out(workers, gave_up)  # in line: simply taken out
        assert workers.written_off == 0
        gate.released.set()
        assert await runaway.future == "late"
        assert await workers.submit(json.dumps("next")).future == "next"

    run(gate, scenario)
    assert json.dumps("gave up") not in gate.evaluated


def test_close_refuses_what_runs_and_never_waits_for_it(gate: Gate) -> None:
    threads_before = set(threading.enumerate())

    async def scenario(workers: EvaluationWorkers) -> None:
        running = workers.submit(RUNAWAY)  # on one worker
        await started(gate)
        assert await workers.submit(json.dumps("idle")).future == "idle"  # on the other
        workers.close()  # returns though the runaway still runs
        with pytest.raises(PolicyUnavailable, match="closed"):
            await running.future
        with pytest.raises(PolicyUnavailable, match="closed"):
            workers.submit(json.dumps("late"))
        assert not workers.available()

    run(gate, scenario, size=2)
    workers = [t for t in threading.enumerate() if t not in threads_before]
    busy = [t for t in workers if t.ident in gate.runaway_on]
    assert len(busy) == 1
    assert busy[0].daemon  # it cannot hold up the process's exit
    for thread in workers:
        if thread not in busy:
            thread.join(timeout=10)  # the idle worker goes at once
            assert not thread.is_alive()
    gate.released.set()
    busy[0].join(timeout=10)  # the busy one once its evaluation ends
    assert not busy[0].is_alive()


def test_close_refuses_what_waits_in_line(gate: Gate) -> None:
    async def scenario(workers: EvaluationWorkers) -> None:
        workers.submit(RUNAWAY)
        await started(gate)
        waiting = workers.submit(json.dumps("waiting"))
        workers.close()
        with pytest.raises(PolicyUnavailable, match="closed"):
            await waiting.future
        gate.released.set()

    run(gate, scenario)
    assert json.dumps("waiting") not in gate.evaluated


def test_an_evaluator_that_cannot_be_built_fails_that_request_only(gate: Gate) -> None:
    gate.fail_builds = 1

    async def scenario(workers: EvaluationWorkers) -> None:
        with pytest.raises(PolicyUnavailable, match="could not be loaded"):
            await workers.submit(json.dumps(1)).future
        assert await workers.submit(json.dumps(2)).future == 2  # built again, then

    run(gate, scenario)
    assert len(gate.built_on) == 2


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        EvaluationWorkers(Gate().make_evaluator, size=0, max_waiting=1)
