"""``doelpoort policy test``: run the Rego tests of a policy set, as ``opa test`` does.

Tests live in ``*_test.rego`` files anywhere under the policies directory (never served,
never under the digest: `gateway.policy.bundle`). They are compiled together with the
policy modules and the register as ``data.register``, as the serving bundle is, and every
rule named ``test_*`` is one test: it passes when it evaluates to ``true``, fails when it
is ``false``, undefined or any other value, and is an error when its evaluation raises one
(built-in errors are errors, as in serving). ``todo_test_*`` rules are reported as skipped.
A test rule with arguments, or a test name defined twice in one package (Rego would OR
the definitions, so a failing one could hide behind a passing one), is an error. A run is
:attr:`~TestReport.ok` only when no test failed or erred and at least one test ran.

The tests run in a child process (`gateway.policy.testing_worker`): rego-cpp aborts its
process on some compiler errors, and a test's ``print()`` output is captured there.

**regopy's ``with``.** rego-cpp 1.5 fails to compile ``with input as X`` (the whole input)
as soon as the rules it reaches call a function or another rule; ``with input.<key> as
X`` for each key works, as does ``with data.<path> as X``, with literals, local variables
or function calls as values, never a rule reference. The shipped tests
(``policies/doelpoort/*_test.rego``) show the pattern.

**Rule coverage.** regopy has no coverage tracer. With ``coverage=True`` every test runs
with rego-cpp's execution trace on, which names each compiled rule function the virtual
machine calls and shows whether it returned a value. A rule (all definitions of one
name, functions included, of a module that is not a test) counts as *covered* when some
test evaluated it to a defined value, as *reached* when some test evaluated it but it was
always undefined, and the percentage is covered rules over all rules. A rule whose value
the compiler folded into its callers is never called and so counts as not reached. Rules
are per name, not per definition or line: a partial rule (``deny contains …``) with one
definition exercised and another not still counts as covered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.errors import ConfigurationError
from gateway.policy.bundle import _PACKAGE, _RULE_HEAD, TEST_SUFFIX, _describe, _read
from gateway.policy.memo import code_of
from gateway.policy.register import REGISTER_FILE, Register

__all__ = ["RuleCoverage", "TestReport", "TestResult", "run_tests"]

#: How long a whole run may take before its process is stopped (a runaway test).
TIMEOUT_S = 300.0

Status = Literal["pass", "fail", "error", "skip"]

_TEST = re.compile(r"(todo_)?test_\w*")


@dataclass(frozen=True)
class TestResult:
    """One test rule and how it went."""

    __test__ = False  # not a pytest test class

    name: str  #: package-qualified: data.doelpoort.vertrek_test.test_refuses_police_data
    path: str  #: relative to the policies directory, POSIX
    line: int
    status: Status
    message: str = ""  #: why it failed or erred
    output: str = ""  #: what its print() calls wrote
    duration_ms: float = 0.0

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class RuleCoverage:
    """One rule of the policy (all definitions of its name) and what the tests did to it."""

    name: str  #: data.doelpoort.disclosure.deny
    path: str  #: where its first definition is
    line: int
    covered: bool  #: some test evaluated it to a defined value
    reached: bool  #: some test evaluated it at all

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class TestReport:
    """The outcome of one run: per test, and what stopped the run if something did."""

    __test__ = False

    results: tuple[TestResult, ...] = ()
    #: why no test could run (a compile error, the engine aborting, a timeout), if so
    failure: str | None = None
    #: per rule, when coverage was asked for
    coverage: tuple[RuleCoverage, ...] | None = None

    def _count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def passed(self) -> int:
        return self._count("pass")

    @property
    def failed(self) -> int:
        return self._count("fail")

    @property
    def errors(self) -> int:
        return self._count("error") + (self.failure is not None)

    @property
    def skipped(self) -> int:
        return self._count("skip")

    @property
    def ok(self) -> bool:
        """No failure, no error, and at least one test ran (an empty set proves nothing)."""
        return self.failed == 0 and self.errors == 0 and self.passed > 0

    @property
    def coverage_percent(self) -> float | None:
        if self.coverage is None:
            return None
        if not self.coverage:
            return 100.0
        return 100.0 * sum(r.covered for r in self.coverage) / len(self.coverage)

    def as_json(self) -> dict[str, Any]:
        """A plain document for ``--json``."""
        document: dict[str, Any] = {
            "ok": self.ok,
            "summary": {
                "passed": self.passed,
                "failed": self.failed,
                "errors": self.errors,
                "skipped": self.skipped,
                "total": len(self.results),
            },
            "failure": self.failure,
            "tests": [
                {
                    "name": r.name,
                    "location": r.location,
                    "status": r.status,
                    "message": r.message,
                    "output": r.output,
                    "duration_ms": round(r.duration_ms, 3),
                }
                for r in self.results
            ],
        }
        if self.coverage is not None:
            document["coverage"] = {
                "percent": round(self.coverage_percent or 0.0, 1),
                "covered": sum(r.covered for r in self.coverage),
                "total": len(self.coverage),
                "rules": [
                    {
                        "name": r.name,
                        "location": r.location,
                        "covered": r.covered,
                        "reached": r.reached,
                    }
                    for r in self.coverage
                ],
            }
        return document


@dataclass(frozen=True)
class _Rule:
    name: str  # data.<package>.<head>
    path: str
    line: int
    has_args: bool


@dataclass
class _Discovered:
    modules: list[tuple[str, str]] = field(default_factory=list)
    tests: list[_Rule] = field(default_factory=list)
    policy_rules: dict[str, _Rule] = field(default_factory=dict)


def run_tests(
    policies_dir: Path,
    *,
    run: str | None = None,
    coverage: bool = False,
    timeout_s: float = TIMEOUT_S,
) -> TestReport:
    """Run the ``test_*`` rules of every ``*_test.rego`` under ``policies_dir``.

    ``run`` is a regular expression searched for in each test's package-qualified name
    (``data.doelpoort.vertrek_test.test_x``); only matching tests run. Raises
    ConfigurationError when the register or a Rego file cannot be read, and ValueError
    for an invalid ``run`` expression; everything about the tests themselves (a compile
    error included) is in the report.
    """
    try:
        pattern = re.compile(run) if run is not None else None
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if not policies_dir.is_dir():
        raise ConfigurationError(f"{policies_dir}: not a policies directory")
    register = Register.load(policies_dir / REGISTER_FILE)
    found = _discover(policies_dir)
    chosen = [t for t in found.tests if pattern is None or pattern.search(t.name)]
    results: dict[int, TestResult] = {}
    runnable: list[tuple[int, _Rule]] = []
    for index, test in enumerate(chosen):
        problem = _not_runnable(test, found.tests)
        if problem is not None:
            results[index] = _result(test, "error", problem)
        elif test.name.rsplit(".", 1)[1].startswith("todo_"):
            results[index] = _result(test, "skip")
        else:
            runnable.append((index, test))
    failure: str | None = None
    reached: dict[str, bool] = {}
    if runnable:
        job = {
            "modules": found.modules,
            "data": {"register": register.as_data()},
            "entrypoints": [t.name.removeprefix("data.").replace(".", "/") for _, t in runnable],
            "coverage": coverage,
        }
        outcomes, failure = _run_child(job, dict(found.modules), timeout_s)
        for position, (index, test) in enumerate(runnable):
            outcome = outcomes.get(position)
            if outcome is None:
                continue  # never ran: the run's failure says why
            results[index] = _result(
                test,
                outcome["status"],
                outcome["message"],
                output=outcome["output"],
                duration_ms=outcome["ms"],
            )
            for rule, defined in outcome["rules"].items():
                reached[rule] = reached.get(rule, False) or defined
    report_coverage = None
    if coverage:
        report_coverage = tuple(
            RuleCoverage(
                name=rule.name,
                path=rule.path,
                line=rule.line,
                covered=reached.get(rule.name, False),
                reached=rule.name in reached,
            )
            for rule in sorted(found.policy_rules.values(), key=lambda r: (r.path, r.line))
        )
    ordered = tuple(results[i] for i in sorted(results))
    return TestReport(results=ordered, failure=failure, coverage=report_coverage)


def _discover(policies_dir: Path) -> _Discovered:
    found = _Discovered()
    paths = sorted(policies_dir.rglob("*.rego"), key=lambda p: p.relative_to(policies_dir))
    for path in paths:
        name = path.relative_to(policies_dir).as_posix()
        source = _read(path)
        found.modules.append((name, source))
        is_test = path.name.endswith(TEST_SUFFIX)
        for rule in _rules(name, source):
            if is_test and _TEST.fullmatch(rule.name.rsplit(".", 1)[1]):
                found.tests.append(rule)
            elif not is_test:
                found.policy_rules.setdefault(rule.name, rule)
    return found


def _rules(path: str, source: str) -> Iterator[_Rule]:
    """Every rule head at the start of a line, with its line (a reading of the text)."""
    code = code_of(source)
    package = _PACKAGE.search(code)
    if package is None:
        return  # the compiler says what is wrong with it
    for m in _RULE_HEAD.finditer(code):
        line = code.count("\n", 0, m.start()) + 1
        rest = code[m.end(1) : m.end(1) + 200].lstrip()
        yield _Rule(
            name=f"data.{package.group(1)}.{m.group(1)}",
            path=path,
            line=line,
            has_args=rest.startswith("("),
        )


def _not_runnable(test: _Rule, tests: list[_Rule]) -> str | None:
    if test.has_args:
        return "a test rule takes no arguments"
    same = [t for t in tests if t.name == test.name]
    if len(same) > 1:
        where = ", ".join(f"{t.path}:{t.line}" for t in same)
        return f"defined more than once ({where}): Rego would OR them; name each test apart"
    return None


def _result(
    test: _Rule,
    status: Status,
    message: str = "",
    *,
    output: str = "",
    duration_ms: float = 0.0,
) -> TestResult:
    return TestResult(
        name=test.name,
        path=test.path,
        line=test.line,
        status=status,
        message=message,
        output=output,
        duration_ms=duration_ms,
    )


def _run_child(
    job: dict[str, Any], sources: dict[str, str], timeout_s: float
) -> tuple[dict[int, dict[str, Any]], str | None]:
    """Outcomes by position in ``job["entrypoints"]``, and what stopped the run, if anything."""
    with tempfile.TemporaryDirectory(prefix="doelpoort-policy-test-") as tmp:
        job_path, results_path = Path(tmp, "job.json"), Path(tmp, "results.jsonl")
        job_path.write_text(json.dumps(job), encoding="utf-8")
        results_path.touch()
        failure: str | None = None
        try:
            child = subprocess.run(
                [sys.executable, "-m", "gateway.policy.testing_worker", job_path, results_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            failure = f"did not finish within {timeout_s:g} s"
        else:
            if child.returncode != 0:
                failure = _crash(child.returncode, child.stderr)
        outcomes: dict[int, dict[str, Any]] = {}
        compiled, started = False, None
        for line in results_path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["event"] == "compile_error":
                return {}, "the tests do not compile: " + _describe(record["error"], sources)
            if record["event"] == "compiled":
                compiled = True
            elif record["event"] == "start":
                started = record["index"]
            elif record["event"] == "result":
                outcomes[record["index"]] = record
                started = None
    if failure is None:
        return outcomes, None
    if not compiled:
        return {}, f"the tests do not compile: {failure}"
    if started is not None:
        # The test that was running when the run stopped is the one to blame.
        outcomes[started] = {
            "status": "error",
            "message": failure,
            "output": "",
            "ms": 0.0,
            "rules": {},
        }
    left = len(job["entrypoints"]) - len(outcomes)
    return outcomes, (f"{failure}; {left} test(s) did not run" if left else None)


def _crash(returncode: int, stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    # rego-cpp's abort: "terminate called after throwing …" then "what():  <message>".
    what = next((line for line in reversed(lines) if line.startswith("what():")), None)
    cause = what.removeprefix("what():").strip() if what else (lines[-1] if lines else "")
    how = f"signal {-returncode}" if returncode < 0 else f"status {returncode}"
    return f"the Rego engine stopped ({how}){': ' + cause[:300] if cause else ''}"
