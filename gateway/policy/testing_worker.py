"""The child process that runs Rego tests for `gateway.policy.testing`; never imported.

``python -m gateway.policy.testing_worker JOB RESULTS``: JOB is a JSON file (``modules``:
``[path, source]`` pairs, ``data``, ``entrypoints``: one ``pkg/path/test_name`` per test,
``coverage``: bool), RESULTS a file this process appends JSON lines to, flushed one by one,
so the parent knows how far a run got if this process dies or is killed.

It is a process of its own because rego-cpp aborts the whole process on some compiler
errors (``terminate called after throwing …``) rather than returning an error, and because
a test's ``print()`` output and the engine's trace are written to file descriptor 1: here
they can be captured per test without touching the caller's output.

Lines written: ``{"event": "compile_error", "error": …}`` or ``{"event": "compiled"}``,
then per test ``{"event": "start", "index": i}`` and ``{"event": "result", "index": i,
"status": "pass"|"fail"|"error", "message", "output", "ms", "rules"}``. ``rules`` maps
each policy function the test's evaluation called to whether it ever returned a value
(coverage runs only; see :func:`traced_rules`).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from regopy import Interpreter, LogLevel, RegoError
from regopy import rego_shared as rego

from gateway.policy.evaluator import error_cause

#: The print() output kept per test: enough to see why it failed.
MAX_OUTPUT = 4000

# rego-cpp's trace (LogLevel.TRACE) prints every statement the VM runs, indented by
# nesting depth: a call of a rule's compiled function, its statements deeper, and
# ReturnLocalStmt when the function returns a value (an undefined rule never does).
# Functions are named "g<n>.data.<package>.<rule>" (g<n>: one copy per `with` context).
_TRACE_LINE = re.compile(r"( *)\d+ +(?:CallStmt\(func_name=([^,]+),|(ReturnLocalStmt)\()")
_COPY = re.compile(r"^g\d+\.")


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    with Path(argv[2]).open("a", encoding="utf-8") as results:
        run(job, results)
    return 0


def run(job: dict[str, Any], results: TextIO) -> None:
    entrypoints: list[str] = job["entrypoints"]
    builder = Interpreter()
    builder.log_level = LogLevel.NONE
    try:
        for name, source in job["modules"]:
            builder.add_module(name, source)
        builder.add_data(job["data"])
        compiled = builder.build(None, entrypoints)
    except RegoError as exc:
        _write(results, {"event": "compile_error", "error": str(exc)})
        return
    if not compiled.ok():
        _write(results, {"event": "compile_error", "error": "the tests did not compile"})
        return
    _write(results, {"event": "compiled"})
    runner = Interpreter()
    runner.log_level = LogLevel.NONE
    # As the serving evaluator does: a built-in's error is an error, not "undefined".
    runner.strict_built_in_errors = True
    for index, entrypoint in enumerate(entrypoints):
        _write(results, {"event": "start", "index": index})
        result = _run_one(runner, compiled, entrypoint, coverage=bool(job["coverage"]))
        _write(results, {"event": "result", "index": index, **result})


def _run_one(runner: Any, compiled: Any, entrypoint: str, *, coverage: bool) -> dict[str, Any]:
    with tempfile.TemporaryFile(mode="w+b") as captured:
        started = time.perf_counter()
        with _stdout_to(captured.fileno()):
            if coverage:
                runner.log_level = LogLevel.TRACE
            try:
                status, message = _evaluate(runner, compiled, entrypoint)
            finally:
                runner.log_level = LogLevel.NONE
        elapsed_ms = (time.perf_counter() - started) * 1000
        captured.seek(0)
        text = (line.decode("utf-8", errors="replace") for line in captured)
        if coverage:
            # The trace and print() share the descriptor: no print output then.
            return {
                "status": status,
                "message": message,
                "output": "",
                "ms": elapsed_ms,
                "rules": traced_rules(text),
            }
        output = "".join(text)[:MAX_OUTPUT]
    return {"status": status, "message": message, "output": output, "ms": elapsed_ms, "rules": {}}


def _evaluate(runner: Any, compiled: Any, entrypoint: str) -> tuple[str, str]:
    try:
        output = rego.rego_bundle_query_entrypoint(runner._impl, compiled._impl, entrypoint)
    except RegoError as exc:
        return "error", _one_line(str(exc))
    try:
        node = rego.rego_output_node(output)
        cause = error_cause(node) if node else None
        if cause is not None:
            return "error", cause
        if not rego.rego_output_ok(output):
            return "error", _one_line(rego.rego_get_error(runner._impl)) or "an engine error"
        text = rego.rego_output_string(output)
    finally:
        rego.rego_free_output(output)
    if text == "undefined":
        return "fail", "undefined"
    try:
        value = json.loads(text)["expressions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return "error", "the engine's answer is not readable"
    if value is True:
        return "pass", ""
    if value is False:
        return "fail", "false"
    return "fail", f"not true but {type(value).__name__} {json.dumps(value)[:200]}"


def traced_rules(lines: Iterable[str]) -> dict[str, bool]:
    """Policy function → whether it returned a value, from a rego-cpp trace.

    A call opens a frame at its indentation; the next statement at that indentation or
    less closes it; a ReturnLocalStmt marks the innermost open frame as defined.
    Built-in calls (no ``data.`` in the name) open no frame: they run no statements.
    """
    rules: dict[str, bool] = {}
    frames: list[tuple[int, str]] = []
    for line in lines:
        m = _TRACE_LINE.match(line)
        if m is None:
            continue
        depth = len(m.group(1))
        while frames and frames[-1][0] >= depth:
            frames.pop()
        function = m.group(2)
        if function is not None:
            name = _COPY.sub("", function)
            if name.startswith("data."):
                rules.setdefault(name, False)
                frames.append((depth, name))
        elif frames:
            rules[frames[-1][1]] = True
    return rules


class _stdout_to:  # noqa: N801 - a context manager used like a function
    """Point file descriptor 1 at ``fd`` for a while (rego-cpp writes there directly)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._saved = -1

    def __enter__(self) -> None:
        _flush()
        self._saved = os.dup(1)
        os.dup2(self._fd, 1)

    def __exit__(self, *_exc: object) -> None:
        _flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)


def _flush() -> None:
    sys.stdout.flush()
    # rego-cpp's std::cout is synchronised with C stdio: flushing stdio flushes it.
    ctypes.CDLL(None).fflush(None)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _write(results: TextIO, record: dict[str, Any]) -> None:
    results.write(json.dumps(record) + "\n")
    results.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
