"""``doelpoort policy``: the policy authors' tools (check, test, eval, replay, diff, bundle).

Each command is a thin shell over a module of `gateway.policy`; this file only parses
arguments and prints. `gateway._cli` adds the group to the ``doelpoort`` command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.policy.testing import TestReport

policy_app = typer.Typer(
    help="Policy authors' tools: check, test, explain, replay, diff and bundle policy sets.",
    no_args_is_help=True,
)


# --- doelpoort policy test ------------------------------------------------------------


@policy_app.command("test")
def policy_test(
    policies: Annotated[
        Path | None,
        typer.Option("--policies", help="Policies directory (default: the settings')."),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Only tests whose data.<package>.<rule> name matches."),
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Report which policy rules the tests evaluated.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Every test, and print() output.")
    ] = False,
) -> None:
    """Run the test_* rules of every *_test.rego, as `opa test` does (todo_ rules skipped).

    Exits 1 when a test fails or errs, or when no test ran.
    """
    import json
    import re

    from gateway.policy.testing import run_tests
    from gateway.settings import Settings

    if run is not None:
        try:
            re.compile(run)
        except re.error as exc:
            raise typer.BadParameter(
                f"not a regular expression: {exc}", param_hint="--run"
            ) from None
    policies_dir = policies if policies is not None else Settings.from_env().policies_dir
    report = run_tests(policies_dir, run=run, coverage=coverage)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        for line in _test_lines(report, verbose=verbose):
            typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)


def _test_lines(report: TestReport, *, verbose: bool) -> Iterator[str]:
    for result in report.results:
        if result.status == "pass" and not verbose:
            continue
        timing = f" ({result.duration_ms:.1f}ms)" if result.status != "skip" else ""
        why = f": {result.message}" if result.message else ""
        yield f"{result.location}: {result.name}: {_STATUS[result.status]}{timing}{why}"
        if result.output and (verbose or result.status != "pass"):
            yield from (f"    {line}" for line in result.output.rstrip("\n").splitlines())
    if report.failure is not None:
        yield f"ERROR: {report.failure}"
    total = len(report.results)
    if total:
        yield "-" * 80
    errored = sum(1 for result in report.results if result.status == "error")
    for label, count in (
        ("PASS", report.passed),
        ("FAIL", report.failed),
        ("ERROR", errored),
        ("SKIPPED", report.skipped),
    ):
        if count:
            yield f"{label}: {count}/{total}"
    if total == 0 and report.failure is None:
        yield "no tests found (*_test.rego files with test_ rules)"
    if report.coverage is not None:
        yield "-" * 80
        for rule in report.coverage:
            state = "covered" if rule.covered else "reached, never defined"
            yield f"{rule.location}: {rule.name}: {state if rule.reached else 'not reached'}"
        covered = sum(rule.covered for rule in report.coverage)
        yield (
            f"COVERAGE: {covered}/{len(report.coverage)} rules"
            f" ({report.coverage_percent or 0.0:.1f}%)"
        )


_STATUS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIPPED"}
