"""Bounded policy evaluation workers: a runaway evaluation delays no one, holds up nothing.

regopy calls rego-cpp through ctypes, which releases the GIL for the length of each
call: measured on two cores, a CPU-bound Rego loop in one thread left a pure-Python loop
in another 74 % of its speed alone, as GIL-free C work (hashing) left it 83 % and a
GIL-holding Python loop 39 %. So evaluations run on threads — but rego-cpp cannot
interrupt an evaluation once it has started. Hence:

- At most ``size`` worker threads, each with its own evaluator (regopy interpreters are
  not thread-safe), started as they are first needed. Daemon threads: one that is still
  evaluating never holds up the process's exit.
- A request takes an idle worker. When every worker is evaluating, it waits in a bounded
  line for the next free one — within its own time limit, which covers the wait.
- An evaluation that outlives its time limit is abandoned and its worker *written off*:
  it takes no work until that evaluation ends, then rejoins. While every worker is
  written off (or the line is full), a request is refused at once with
  PolicyUnavailable, and so is every request still in line: nothing ever waits for a
  runaway.
- :meth:`EvaluationWorkers.close` never waits: the requests in line and those being
  evaluated are refused, idle workers exit, busy ones exit when their evaluation ends.

All bookkeeping is under one lock; results go back to the asking event loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.errors import PolicyUnavailable

__all__ = ["EvaluationWorkers", "Evaluator", "Job"]

_CLOSED = "the policy engine is closed"
_names = itertools.count(1)


class Evaluator(Protocol):
    """One worker's means of evaluating an input (a JSON text) into a decision document."""

    def evaluate(self, document: str) -> object: ...


@dataclass(eq=False)
class Job:
    """One evaluation asked for; ``future`` is settled on the asking loop."""

    document: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]
    worker: _Worker | None = None


@dataclass(eq=False)
class _Worker:
    inbox: queue.SimpleQueue[Job | None] = field(default_factory=queue.SimpleQueue)
    job: Job | None = None  # the job it evaluates, None while idle
    written_off: bool = False


class EvaluationWorkers:
    """At most ``size`` evaluation threads, and at most ``max_waiting`` requests in line."""

    def __init__(
        self, make_evaluator: Callable[[], Evaluator], *, size: int, max_waiting: int
    ) -> None:
        if size < 1 or max_waiting < 0:
            raise ValueError("size must be at least 1 and max_waiting not negative")
        self._make_evaluator = make_evaluator
        self._size = size
        self._max_waiting = max_waiting
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._line: deque[Job] = deque()
        self._written_off = 0
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def written_off(self) -> int:
        """How many workers are evaluating an abandoned input."""
        return self._written_off

    def available(self) -> bool:
        """Whether a request may be evaluated (for /readyz): open, not every worker
        written off."""
        return not self._closed and self._written_off < self._size

    def submit(self, document: str) -> Job:
        """Hand ``document`` to a worker, or put it in line; on the asking event loop.

        Raises PolicyUnavailable at once when closed, when every worker is written off,
        or when the line is full.
        """
        loop = asyncio.get_running_loop()
        job = Job(document, loop, loop.create_future())
        with self._lock:
            if self._closed:
                raise PolicyUnavailable(_CLOSED)
            if self._idle:
                self._hand(self._idle.pop(), job)
            elif len(self._workers) < self._size:
                self._hand(self._start(), job)
            elif self._written_off == self._size:
                raise PolicyUnavailable(
                    f"every policy worker ({self._size}) is still busy with an evaluation"
                    " that ran over its time limit"
                )
            elif len(self._line) >= self._max_waiting:
                raise PolicyUnavailable(
                    f"every policy worker ({self._size}) is busy and"
                    f" {self._max_waiting} requests wait already"
                )
            else:
                self._line.append(job)
        return job

    def abandon(self, job: Job, *, write_off: bool) -> None:
        """The asker gave up on ``job``: take it out of line, or (``write_off``: its time
        limit passed) write its worker off until the evaluation ends."""
        stranded: list[Job] = []
        with self._lock:
            worker = job.worker
            if worker is None:
                with contextlib.suppress(ValueError):
                    self._line.remove(job)
                return
            if not write_off or worker.job is not job or worker.written_off:
                return
            worker.written_off = True
            self._written_off += 1
            if self._written_off == self._size:
                # No worker will be free before a runaway ends: refuse, do not wait.
                stranded = list(self._line)
                self._line.clear()
        _refuse(stranded, "every policy worker is busy with an evaluation over its time limit")

    def close(self) -> None:
        """Refuse what is in line or being evaluated and let every worker go; never waits."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refused = list(self._line)
            self._line.clear()
            refused += [w.job for w in self._workers if w.job is not None]
            for worker in self._idle:
                worker.inbox.put(None)
            self._idle.clear()
        _refuse(refused, _CLOSED)

    # -- under the lock -------------------------------------------------------------

    def _start(self) -> _Worker:
        worker = _Worker()
        self._workers.append(worker)
        thread = threading.Thread(
            target=self._serve, args=(worker,), name=f"rego-{next(_names)}", daemon=True
        )
        thread.start()
        return worker

    @staticmethod
    def _hand(worker: _Worker, job: Job) -> None:
        worker.job = job
        job.worker = worker
        worker.inbox.put(job)

    # -- on a worker thread ---------------------------------------------------------

    def _serve(self, worker: _Worker) -> None:
        evaluator: Evaluator | None = None
        job = worker.inbox.get()
        while job is not None:
            try:
                if evaluator is None:  # built here: it belongs to this thread alone
                    evaluator = self._make_evaluator()
                _settle(job, evaluator.evaluate(job.document), None)
            except Exception as exc:
                _settle(job, None, exc)
            job = self._next(worker)

    def _next(self, worker: _Worker) -> Job | None:
        """The worker's next job: from the line, or (idle) the next one handed to it;
        None once the workers are closed."""
        with self._lock:
            worker.job = None
            if worker.written_off:
                worker.written_off = False
                self._written_off -= 1
            if self._closed:
                return None
            if self._line:
                job = self._line.popleft()
                worker.job = job
                job.worker = worker
                return job
            self._idle.append(worker)
        return worker.inbox.get()


def _refuse(jobs: list[Job], reason: str) -> None:
    for job in jobs:
        _settle(job, None, PolicyUnavailable(reason))


def _settle(job: Job, result: object, error: BaseException | None) -> None:
    # RuntimeError: the asking loop is closed, so no one waits for this any more.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_set_outcome, job.future, result, error)


def _set_outcome(
    future: asyncio.Future[object], result: object, error: BaseException | None
) -> None:
    if future.done():  # abandoned: the asker has given up on it
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
