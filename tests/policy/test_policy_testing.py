"""`doelpoort policy test`: the Rego test runner, on small policy sets and on the shipped one.

Every run is the real regopy engine in the runner's child process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway._cli import app
from gateway.policy.testing import TestReport, TestResult, run_tests
from tests.policy.policy_support import POLICIES

#: The shipped policies carry at least this many Rego tests (they may grow, not shrink).
SHIPPED_MINIMUM = 50

POLICY = """package demo

import rego.v1

default allow := false

allow if count(input.user) > 3

greeting := concat(" ", ["hello", input.user])

never if input.user == "nobody at all"

unused := 42

plus_one(x) := x + 1
"""

TESTS = """package demo_test

import rego.v1

import data.demo

test_passes if demo.allow with input.user as "alice"

test_fails if {
	print("greeting:", demo.greeting) with input.user as "bob"
	demo.allow with input.user as "bob"
}

test_errs if {
	x := 1 / 0
	x == 1
}

test_is_false := false

todo_test_not_yet if false

test_takes_args(x) if x

test_twice if true

test_twice if false

test_function if demo.plus_one(1) == 2

test_reads_the_register if data.register.purposes.p.retention_days == 30

test_never if {
	not demo.never with input.user as "alice"
}
"""

REGISTER = """purposes:
  p:
    legal_basis: a law
    retention_days: 30
    requester_roles: [someone]
    datasets: {}
"""


def policy_set(tmp_path: Path, tests: str | None = TESTS, policy: str = POLICY) -> Path:
    (tmp_path / "rules").mkdir(parents=True)
    (tmp_path / "register.yaml").write_text(REGISTER, encoding="utf-8")
    (tmp_path / "rules" / "demo.rego").write_text(policy, encoding="utf-8")
    if tests is not None:
        (tmp_path / "rules" / "demo_test.rego").write_text(tests, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> TestReport:
    return run_tests(policy_set(tmp_path_factory.mktemp("mixed")))


def by_name(report: TestReport) -> dict[str, TestResult]:
    return {r.name.removeprefix("data.demo_test."): r for r in report.results}


def test_each_test_rule_passes_fails_errs_or_is_skipped(mixed: TestReport) -> None:
    results = by_name(mixed)
    assert {name: r.status for name, r in results.items()} == {
        "test_passes": "pass",
        "test_fails": "fail",
        "test_errs": "error",
        "test_is_false": "fail",
        "todo_test_not_yet": "skip",
        "test_takes_args": "error",
        "test_twice": "error",
        "test_function": "pass",
        "test_reads_the_register": "pass",
        "test_never": "pass",
    }
    assert (mixed.passed, mixed.failed, mixed.skipped) == (4, 2, 1)
    assert mixed.errors == 4  # test_twice is reported once per definition
    assert not mixed.ok


def test_a_failure_names_its_file_line_and_why(mixed: TestReport) -> None:
    results = by_name(mixed)
    fails = results["test_fails"]
    assert fails.location == "rules/demo_test.rego:9"
    assert fails.name == "data.demo_test.test_fails"
    assert fails.message == "undefined"
    assert fails.output == "greeting: hello bob\n"  # what print() wrote
    assert results["test_is_false"].message == "false"
    assert results["test_errs"].message == "divide by zero (eval_builtin_error)"
    assert results["test_errs"].location == "rules/demo_test.rego:14"


def test_tests_that_cannot_be_run_faithfully_are_errors(mixed: TestReport) -> None:
    results = by_name(mixed)
    assert results["test_takes_args"].message == "a test rule takes no arguments"
    # Rego ORs two definitions of a name: the failing one would hide behind the other.
    twice = [r for r in mixed.results if r.name.endswith(".test_twice")]
    assert [r.line for r in twice] == [25, 27]
    assert all(r.status == "error" and "defined more than once" in r.message for r in twice)


def test_run_selects_tests_by_package_qualified_name(tmp_path: Path) -> None:
    report = run_tests(policy_set(tmp_path), run=r"demo_test\.test_(passes|function)$")
    assert [r.name for r in report.results] == [
        "data.demo_test.test_passes",
        "data.demo_test.test_function",
    ]
    assert report.ok


def test_an_empty_test_set_is_not_ok(tmp_path: Path) -> None:
    no_tests = run_tests(policy_set(tmp_path / "none", tests=None))
    assert no_tests.results == ()
    assert not no_tests.ok
    only_todo = run_tests(policy_set(tmp_path / "todo", tests=TESTS), run="todo_")
    assert only_todo.skipped == 1
    assert not only_todo.ok
    nothing_matches = run_tests(policy_set(tmp_path / "match", tests=TESTS), run="no such test")
    assert nothing_matches.results == ()
    assert not nothing_matches.ok


def test_a_test_that_does_not_compile_is_an_error_with_its_location(tmp_path: Path) -> None:
    broken = TESTS.replace("test_passes if demo.allow", "test_passes if demo.allow ==", 1)
    report = run_tests(policy_set(tmp_path, tests=broken))
    assert not report.ok
    assert report.errors == 4  # the compile error, and the tests that cannot run
    assert report.failure is not None
    assert report.failure.startswith("the tests do not compile: rules/demo_test.rego:7:")


def test_the_register_must_load(tmp_path: Path) -> None:
    policies = policy_set(tmp_path)
    (policies / "register.yaml").write_text("purposes: [\n", encoding="utf-8")
    with pytest.raises(Exception, match="register"):
        run_tests(policies)


def test_coverage_tells_covered_reached_and_unreached_rules(tmp_path: Path) -> None:
    report = run_tests(policy_set(tmp_path), coverage=True, run="passes|function|never")
    assert report.ok
    assert report.coverage is not None
    states = {
        r.name.removeprefix("data.demo."): (r.covered, r.reached, r.line) for r in report.coverage
    }
    assert states == {
        "allow": (True, True, 5),  # defined by test_passes
        "greeting": (False, False, 9),  # only test_fails reads it, and it did not run
        "never": (False, True, 11),  # evaluated by test_never, always undefined
        "unused": (False, False, 13),
        "plus_one": (True, True, 15),
    }
    assert report.coverage_percent == pytest.approx(40.0)
    assert report.as_json()["coverage"]["covered"] == 2


def test_the_shipped_policies_pass_their_own_tests() -> None:
    report = run_tests(POLICIES)
    problems = [
        f"{r.location} {r.name}: {r.message}"
        for r in report.results
        if r.status in {"fail", "error"}
    ]
    assert report.ok, problems or report.failure
    assert report.passed >= SHIPPED_MINIMUM
    # Every test file of the shipped policies is a file of tests, never served.
    assert {r.path.rsplit("/", 1)[-1] for r in report.results} >= {
        "disclosure_test.rego",
        "ct_assessment_test.rego",
        "vertrek_test.rego",
        "tf_screening_test.rego",
        "pnr_request_test.rego",
    }


def test_the_command_prints_failures_and_a_summary_and_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["policy", "test", "--policies", str(policy_set(tmp_path)), "--run", "passes|fails"]
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("rules/demo_test.rego:9: data.demo_test.test_fails: FAIL (")
    assert lines[0].endswith("ms): undefined")
    assert lines[1] == "    greeting: hello bob"
    assert lines[-2:] == ["PASS: 1/2", "FAIL: 1/2"]


def test_the_command_refuses_a_bad_run_expression(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "test", "--policies", str(tmp_path), "--run", "("])
    assert result.exit_code == 2
