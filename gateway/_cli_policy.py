"""``doelpoort policy``: the policy authors' tools (check, test, eval, replay, diff, bundle).

Each command is a thin shell over a module of `gateway.policy`; this file only parses
arguments and prints. `gateway._cli` adds the group to the ``doelpoort`` command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway._cli_common import fail as _fail
from gateway._cli_common import open_reader as _open_reader
from gateway._cli_common import settings_for as _settings

policy_app = typer.Typer(
    help="Policy authors' tools: check, test, explain, replay, diff and bundle policy sets.",
    no_args_is_help=True,
)


# -- eval and replay (gateway.policy.explain, gateway.policy.replay) --------------------

if TYPE_CHECKING:
    from audit.reader import AuditReader
    from gateway.connectors.catalog import Catalog
    from gateway.policy.bundle import PolicyBundle
    from gateway.policy.engine import Decision
    from gateway.policy.sets import NamedSet
    from gateway.policy.testing import TestReport
    from gateway.settings import Settings

PoliciesOption = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        file_okay=False,
        help="The policy set: *.rego and register.yaml (default: the deployment's).",
    ),
]
ConnectorsOption = Annotated[
    Path | None,
    typer.Option(
        "--connectors",
        file_okay=False,
        help="The connector catalog the register is checked against (default: the deployment's).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for machines.")]
VarDirOption = Annotated[
    Path | None,
    typer.Option("--var-dir", help="Runtime state directory with the audit log (default: var/)."),
]


def _policy_set(settings: Settings, policies: Path | None, connectors: Path | None) -> PolicyBundle:
    """The policy set compiled and checked against the catalog, as `serve` does."""
    from gateway.connectors.catalog import Catalog
    from gateway.errors import ConfigurationError
    from gateway.policy.bundle import compile_bundle
    from gateway.policy.register import REGISTER_FILE

    policies_dir = policies or settings.policies_dir
    catalog = Catalog.load(connectors or settings.connectors_dir, settings.var_dir)
    bundle = compile_bundle(policies_dir, catalog)
    try:
        bundle.register.check_against(catalog)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{policies_dir / REGISTER_FILE}: {exc.detail}") from exc
    return bundle


def policy_set_of_entry(
    digest: str, reader: AuditReader, given: Callable[[], PolicyBundle]
) -> PolicyBundle:
    """The policy set that made a logged decision (its ``policy_digest``).

    The log's archive of policy sets holds every set a gateway served since it kept one;
    an entry older than the archive needs the set given on the command line
    (``given()``), when its digest is the entry's; otherwise a ConfigurationError naming
    both.
    """
    from gateway.errors import ConfigurationError
    from gateway.policy.bundle import compile_sources

    archived = reader.policy_set(digest)  # PolicySetMismatch when it was altered
    if archived is not None:
        return compile_sources(tuple(archived.items()), where=Path(f"archived policy set {digest}"))
    bundle = given()
    if bundle.digest != digest:
        raise ConfigurationError(
            f"the entry was decided by policy set {digest}, which the log's archive does"
            f" not hold, and --policies holds {bundle.digest}: give the policy set that"
            " made it"
        )
    return bundle


def _decide(bundle: PolicyBundle, policy_input: dict[str, Any], timeout_s: float) -> Decision:
    """A fresh decision of ``bundle`` for the input (never a memo's); PolicyError."""
    import asyncio

    from gateway.policy.engine import EmbeddedEngine

    async def decide() -> Decision:
        engine = EmbeddedEngine(bundle, timeout_s=timeout_s, workers=1)
        try:
            return await engine.decide_fresh(policy_input)
        finally:
            await engine.aclose()

    return asyncio.run(decide())


def _read_input(path: Path) -> dict[str, Any]:
    import json

    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(f"{path}: not a readable JSON policy input ({type(exc).__name__})", 2) from exc
    if not isinstance(document, dict):
        raise _fail(f"{path}: a policy input is a JSON object", 2)
    return document


def _logged_input(reader: AuditReader, seq: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Entry ``seq``'s policy input and what it logged of its decision."""
    from audit.entry import AuditRecord, record_from_body

    entry = next(reader.iter_entries(seq), None)
    if entry is None or entry.seq != seq:
        raise _fail(f"the audit log has no entry {seq}", 2)
    try:
        record = record_from_body(entry.body)
    except (TypeError, ValueError) as exc:
        raise _fail(f"entry {seq} is not an audit record this version can read") from exc
    if not isinstance(record, AuditRecord):
        raise _fail(f"entry {seq} is a {record.kind} entry, which has no policy decision", 2)
    if not record.policy_input:
        raise _fail(f"entry {seq} keeps no policy input", 2)
    logged = {
        "decision": record.decision,
        "reasons": record.reasons,
        "field_ops": record.field_ops,
        "retention_days": record.retention_days,
        "legal_basis": record.legal_basis,
        "policy_digest": record.policy_digest,
        "error": record.error,
    }
    return record.policy_input, logged


def _decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "allow": decision.allow,
        "reasons": list(decision.reasons),
        "field_ops": dict(decision.field_ops),
        "retention_days": decision.retention_days,
        "legal_basis": decision.legal_basis,
        "policy_digest": decision.policy_digest,
    }


def _reproduces(decision: Decision | None, logged: dict[str, Any]) -> bool:
    if decision is None:
        return bool(logged["decision"] == "error" and logged["retention_days"] is None)
    return bool(
        logged["decision"] == ("allow" if decision.allow else "deny")
        and logged["field_ops"] == dict(decision.field_ops)
        and logged["reasons"] == list(decision.reasons)
        and logged["retention_days"] == decision.retention_days
        and logged["legal_basis"] == decision.legal_basis
    )


@policy_app.command("eval")
def policy_eval(
    input_file: Annotated[
        Path | None,
        typer.Option("--input", dir_okay=False, help="A policy input (JSON; - for stdin)."),
    ] = None,
    seq: Annotated[
        int | None,
        typer.Option(
            "--seq", min=1, max=2**63 - 1, help="Re-evaluate this audit entry's policy input."
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why: per field, register entry and rule.")
    ] = False,
    policies: PoliciesOption = None,
    connectors: ConnectorsOption = None,
    as_json: JsonOption = False,
    var_dir: VarDirOption = None,
) -> None:
    """Print the decision of a policy set for one policy input, evaluated afresh.

    With --seq N, entry N's stored input, evaluated with the policy set that made that
    decision (from the log's archive; for an entry older than the archive --policies
    must hold it: its digest is checked), and whether it reproduces what was logged.
    Exit 1 when the policy gives no valid decision or does not reproduce the logged one.
    """
    import json

    from gateway.errors import PolicyError
    from gateway.policy.explain import explain as explain_decision

    if (input_file is None) == (seq is None):
        raise _fail("give exactly one of --input FILE and --seq N", 2)
    settings = _settings(var_dir)
    logged: dict[str, Any] | None = None
    if input_file is not None:
        policy_input = _read_input(input_file)
        bundle = _policy_set(settings, policies, connectors)
    else:
        assert seq is not None
        with _open_reader(settings) as reader:
            policy_input, logged = _logged_input(reader, seq)
            bundle = policy_set_of_entry(
                str(logged["policy_digest"]),
                reader,
                lambda: _policy_set(settings, policies, connectors),
            )
    decision: Decision | None = None
    failure: PolicyError | None = None
    try:
        decision = _decide(bundle, policy_input, settings.policy_timeout_s)
    except PolicyError as exc:
        failure = exc
    explanation = (
        explain_decision(bundle, policy_input, decision)
        if explain and decision is not None
        else None
    )
    reproduced = _reproduces(decision, logged) if logged is not None else None
    if as_json:
        shown: dict[str, Any] = {
            "policy_digest": bundle.digest,
            "decision": _decision_json(decision) if decision is not None else None,
            "error": None if failure is None else {"code": failure.code, "detail": failure.detail},
        }
        if explanation is not None:
            shown["explanation"] = explanation.as_json()
        if logged is not None:
            shown["seq"] = seq
            shown["logged"] = logged
            shown["reproduced"] = reproduced
        typer.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"policy set   {bundle.digest}")
        if decision is None:
            assert failure is not None
            typer.echo(f"decision     error ({failure.code}): {failure.detail}")
        else:
            typer.echo(f"decision     {'allow' if decision.allow else 'deny'}")
            typer.echo(f"legal basis  {decision.legal_basis or '(none)'}")
            typer.echo(f"retention    {decision.retention_days} days")
            for reason in decision.reasons:
                typer.echo(f"reason       {reason}")
            for name, op in decision.field_ops.items():
                typer.echo(f"field op     {name}: {op}")
        if explanation is not None:
            for line in explanation.lines():
                typer.echo(line)
        if logged is not None:
            verdict = "reproduces" if reproduced else "does NOT reproduce"
            typer.echo(f"entry {seq}: this {verdict} the logged decision ({logged['decision']})")
    if decision is None or reproduced is False:
        raise typer.Exit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "a date (2026-12-01) or a time (2026-12-01T12:00:00Z)", param_hint="--since"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@policy_app.command("replay")
def policy_replay(
    policies: PoliciesOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only decisions logged at or after this date or time (UTC)."),
    ] = None,
    connectors: ConnectorsOption = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Evaluation threads (default: one per CPU).")
    ] = os.cpu_count() or 2,
    as_json: JsonOption = False,
    var_dir: VarDirOption = None,
) -> None:
    """Replay logged decisions against a candidate policy set and print the flips.

    Every decision entry's stored policy input is evaluated afresh with the candidate;
    allow↔deny flips, new errors and changed field ops are counted per purpose and
    requester. The audit log is only read.
    """
    import json

    from gateway.policy.replay import replay

    settings = _settings(var_dir)
    start = _since(since)
    bundle = _policy_set(settings, policies, connectors)
    with _open_reader(settings) as reader:
        rows = reader.iter_rows()
        if as_json or not sys.stderr.isatty():
            report = replay(
                bundle, rows, since=start, workers=workers, timeout_s=settings.policy_timeout_s
            )
        else:
            with typer.progressbar(
                length=reader.count(), label="replaying", file=sys.stderr
            ) as bar:
                report = replay(
                    bundle,
                    rows,
                    since=start,
                    workers=workers,
                    timeout_s=settings.policy_timeout_s,
                    progress=bar.update,
                )
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
        return
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"({report.per_s:.0f} decisions/s on {workers} threads)", err=True)


# -- diff, show, list: the archive of policy sets (issue 13, point 2) -------------------

_AuditDbOption = Annotated[
    Path | None,
    typer.Option(
        "--audit-db",
        help="The audit log whose archive to read (read-only; default: var/audit.sqlite3).",
        dir_okay=False,
    ),
]


class _Sources:
    """The archive and the catalog, opened once and only when a name needs them."""

    def __init__(self, audit_db: Path | None, connectors: Path | None) -> None:
        from gateway.settings import Settings

        self._settings = Settings.from_env()
        self._audit_db = audit_db or self._settings.audit_db_path
        self._connectors = connectors or self._settings.connectors_dir
        self._reader: AuditReader | None = None
        self._catalog: Catalog | None = None

    def archive(self) -> AuditReader:
        from audit.reader import AuditReader
        from gateway.errors import AuditError

        if self._reader is None:
            try:
                self._reader = AuditReader(self._audit_db)
            except AuditError as exc:
                raise _fail(f"no audit log at {self._audit_db}", 2) from exc
        return self._reader

    def catalog(self) -> Catalog:
        from gateway.connectors.catalog import Catalog

        if self._catalog is None:
            self._catalog = Catalog.load(self._connectors, self._settings.var_dir)
        return self._catalog

    def resolve(self, name: str, *, trouble: int, directories: bool = True) -> NamedSet:
        """The set `name` names; exit `trouble` when it cannot be read (2 for an unknown
        name)."""
        import sqlite3

        from gateway.errors import DoelpoortError
        from gateway.policy.sets import UnknownPolicySet, resolve

        try:
            return resolve(
                name, archive=self.archive, catalog=self.catalog, directories=directories
            )
        except UnknownPolicySet as exc:
            raise _fail(str(exc), 2) from exc
        except DoelpoortError as exc:  # a changed archived set, an unreadable directory
            raise _fail(str(exc), trouble) from exc
        except sqlite3.DatabaseError as exc:
            raise _fail(f"the audit database cannot be read: {exc}", trouble) from exc

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


@policy_app.command("diff")
def policy_diff(
    a: Annotated[str, typer.Argument(help="A digest in the archive, or a policy directory.")],
    b: Annotated[str, typer.Argument(help="Another digest or policy directory.")],
    audit_db: _AuditDbOption = None,
    connectors: ConnectorsOption = None,
) -> None:
    """Show what changed between two policy sets: a unified diff per file (catalog.json
    indented), with a summary on stderr. Exit 0 when identical, 1 when they differ, 2 on
    an unknown digest or a set that cannot be read."""
    from gateway.policy.sets import diff_sets

    sources = _Sources(audit_db, connectors)
    try:
        diff = diff_sets(sources.resolve(a, trouble=2), sources.resolve(b, trouble=2))
    finally:
        sources.close()
    for line in diff.unified():
        typer.echo(line, nl=False)
    typer.echo(f"A {diff.a.digest} ({diff.a.origin})", err=True)
    typer.echo(f"B {diff.b.digest} ({diff.b.origin})", err=True)
    if diff.identical:
        typer.echo("the policy sets are identical", err=True)
        return
    for what, paths in (
        ("changed", diff.changed),
        ("added", diff.added),
        ("removed", diff.removed),
    ):
        if paths:
            typer.echo(f"{what}: {', '.join(paths)}", err=True)
    raise typer.Exit(1)


@policy_app.command("show")
def policy_show(
    digest: Annotated[str, typer.Argument(help="The digest of an archived policy set.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the set's files into this new (or empty) directory instead.",
            file_okay=False,
        ),
    ] = None,
    audit_db: _AuditDbOption = None,
) -> None:
    """Print an archived policy set, exactly the text that made the decisions whose
    entries name its digest; or write it out with --output. Exit 2 on an unknown digest."""
    from gateway.errors import ConfigurationError
    from gateway.policy.sets import write_set

    sources = _Sources(audit_db, None)
    try:
        found = sources.resolve(digest, trouble=1, directories=False)
    finally:
        sources.close()
    if output is None:
        for path, content in sorted(found.files.items()):
            typer.echo(f"==> {path} <==")
            typer.echo(content, nl=not content.endswith("\n"))
        return
    try:
        written = write_set(found.files, output)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror or exc}", 1) from exc
    typer.echo(f"wrote {len(written)} files of {found.digest} to {output}", err=True)


@policy_app.command("list")
def policy_list(
    audit_db: _AuditDbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List the archived policy sets, with when the gateway first used each, earliest
    first."""
    import json

    sources = _Sources(audit_db, None)
    try:
        archived = sources.archive().policy_sets()
    finally:
        sources.close()
    if as_json:
        document = [{"digest": s.digest, "first_used": s.first_used} for s in archived]
        typer.echo(json.dumps(document, indent=2))
        return
    for found in archived:
        typer.echo(f"{found.digest}  first used {found.first_used}")
    if not archived:
        typer.echo("the archive holds no policy set yet", err=True)


# -- bundle, keygen (OPA bundles: gateway.policy.opa_bundle) ---------------------------

_BUNDLE_FILE = Path("doelpoort-policy.tar.gz")


@policy_app.command("bundle")
def policy_bundle(
    policies: PoliciesOption = None,
    connectors: ConnectorsOption = None,
    output: Annotated[
        Path, typer.Option(dir_okay=False, help="The bundle to write (.tar.gz).")
    ] = _BUNDLE_FILE,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="PEM private key (EC or RSA) to sign the bundle with, OPA's format."),
    ] = None,
    key_id: Annotated[
        str, typer.Option(help="The key id the signature names (OPA's keys configuration).")
    ] = "doelpoort",
) -> None:
    """Write the policy set as an OPA bundle: its revision is the policy digest.

    Only a set that passes `doelpoort policy check` and its own Rego tests (`doelpoort
    policy test`) is bundled: a gateway reloading a signed bundle does not run the tests
    again (the bundle carries none), so the signature stands for them. Exit 1 otherwise,
    and nothing is written.
    """
    import asyncio

    from gateway.connectors.catalog import Catalog
    from gateway.policy.check import check_policy_set
    from gateway.policy.opa_bundle import write_bundle
    from gateway.policy.testing import run_tests

    settings = _settings(None)
    policies_dir = policies or settings.policies_dir
    # The key first: a missing key should not cost a test run.
    key = signing_key.read_bytes() if signing_key is not None else None
    bundle = _policy_set(settings, policies, connectors)
    catalog = Catalog.load(connectors or settings.connectors_dir, settings.var_dir)
    try:
        findings = check_policy_set(policies_dir, catalog)
    finally:
        asyncio.run(catalog.aclose())
    if findings:
        count = len(findings)
        raise _fail(
            f"{policies_dir}: not bundled: `doelpoort policy check` has {count}"
            f" finding{'s' if count != 1 else ''}, the first: {findings[0]}"
        )
    report = run_tests(policies_dir)
    if not report.ok:
        why = (
            "it has no Rego tests"
            if not report.results and report.failure is None
            else f"its Rego tests do not pass: {report.failed} failed, {report.errors} errors"
        )
        raise _fail(f"{policies_dir}: not bundled: {why} (run `doelpoort policy test` on it)")
    # What was checked and tested must be what is written: files edited meanwhile are not.
    if _policy_set(settings, policies, connectors).digest != bundle.digest:
        raise _fail(f"{policies_dir}: not bundled: its files changed while it was checked")
    write_bundle(bundle, output, signing_key=key, key_id=key_id)
    signed = f", signed as {key_id}" if key is not None else ", unsigned"
    typer.echo(f"wrote {output}: revision {bundle.digest}{signed}")


@policy_app.command("keygen")
def policy_keygen(
    private_key: Annotated[
        Path, typer.Option(help="Where the private key goes (mode 0600, never overwritten).")
    ] = Path("bundle-signing.pem"),
    public_key: Annotated[
        Path, typer.Option(help="Where the public key goes (for OPA and the gateway).")
    ] = Path("bundle-signing.pub.pem"),
) -> None:
    """Make an ECDSA P-256 key pair (ES256) for signing policy bundles."""
    from gateway.policy.opa_bundle import generate_signing_key

    if private_key.exists():
        typer.echo(f"{private_key} exists already: not overwritten", err=True)
        raise typer.Exit(1)
    generate_signing_key(private_key, public_key)
    typer.echo(f"wrote {private_key} (private, 0600) and {public_key} (public)")


# -- check (gateway.policy.check) --------------------------------------------------------


@policy_app.command("check")
def check(
    policies: PoliciesOption = None,
    connectors: ConnectorsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a policy set as `serve` does before it starts: register, catalog, syntax,
    undefined names and paths, unknown built-ins, rules that never apply, the probe.

    Exit 0 when clean, 1 on any finding.
    """
    import asyncio
    import json

    from gateway.connectors.catalog import Catalog
    from gateway.policy.check import check_policy_set

    settings = _settings(None)
    policies_dir = policies or settings.policies_dir
    if not policies_dir.is_dir():
        typer.echo(f"error: {policies_dir}: no such policy directory", err=True)
        raise typer.Exit(2)
    catalog = Catalog.load(connectors or settings.connectors_dir, settings.var_dir)
    try:
        findings = check_policy_set(policies_dir, catalog)
    finally:
        asyncio.run(catalog.aclose())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "policies": str(policies_dir),
                    "clean": not findings,
                    "findings": [
                        {
                            "path": f.path,
                            "line": f.line,
                            "column": f.column,
                            "code": f.code,
                            "message": f.message,
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        for finding in findings:
            typer.echo(f"{policies_dir / finding.path}{str(finding)[len(finding.path) :]}")
        count = len(findings)
        typer.echo(
            f"{policies_dir}: "
            + ("clean" if not findings else f"{count} finding{'s' if count != 1 else ''}")
        )
    if findings:
        raise typer.Exit(1)


# -- test (gateway.policy.testing) -------------------------------------------------------


@policy_app.command("test")
def policy_test(
    policies: PoliciesOption = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Only tests whose data.<package>.<rule> name matches."),
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Report which policy rules the tests evaluated.")
    ] = False,
    as_json: JsonOption = False,
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

    if run is not None:
        try:
            re.compile(run)
        except re.error as exc:
            raise typer.BadParameter(
                f"not a regular expression: {exc}", param_hint="--run"
            ) from None
    policies_dir = policies if policies is not None else _settings(None).policies_dir
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
