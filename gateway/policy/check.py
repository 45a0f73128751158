"""``doelpoort policy check``: everything that can be known about a policy set before it serves.

:func:`check_policy_set` runs, in order, and reports every finding (not just the first)
with its file, line and column where there is one:

1. the register: it loads and validates (`gateway.policy.register`), and fits the
   connector catalog (:meth:`Register.check_against`: legal basis, retention, ops,
   fields, datasets, requesters …);
2. every ``*.rego`` module parses, in the engine itself (`gateway.policy.rego_ast`);
3. the static checks of `gateway.policy.rego_check` (undefined rules, data and input
   paths, unknown built-ins, rules that can never be defined or that nothing reads);
4. the policy set compiles into the serving bundle;
5. the start-up probe (`gateway.policy.probe`): an ordinary request of every purpose
   gets a valid decision from the embedded engine.

A later step runs only when the earlier ones leave it something sound to work on (the
bundle is not compiled when a module does not parse or a rule conflicts; nothing is
probed without a bundle). ``serve`` and a policy reload run the same check as a vetting
step (`gateway.policy.vetting`): a set with a finding does not start or swap in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from regopy import Interpreter

from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy.bundle import ENTRYPOINT, compile_bundle
from gateway.policy.engine import EmbeddedEngine
from gateway.policy.probe import probe_inputs
from gateway.policy.register import REGISTER_FILE, Register
from gateway.policy.rego_ast import AstUnreadable, RegoSyntaxError, line_col, parse_module
from gateway.policy.rego_check import Problem, RegoModule, check_modules

__all__ = ["CODES", "Finding", "check_policy_set"]

#: Every finding code, with what it means (docs/architecture.md lists them too).
CODES = {
    "register": "the register does not load or is invalid",
    "catalog": "the register does not fit the connector catalog",
    "syntax": "a module the engine cannot parse",
    "checker": "the checker could not read a module's syntax tree (it fails closed)",
    "undefined-ref": "a name that is no rule, import, variable or argument",
    "unknown-builtin": "a call of neither a built-in nor a function rule",
    "unknown-data": "a data path outside the rules and data.register",
    "unknown-input": "an input path outside the documented input schema",
    "unknown-key": "a key the value of a rule never has",
    "never-defined": "a rule that can never be defined",
    "unreachable": "a rule nothing on the way to the entrypoint reads",
    "conflict": "a rule defined as different kinds, or a function of different arities",
    "no-entrypoint": "no rule defines the entrypoint",
    "compile": "the policy set does not compile",
    "probe": "an ordinary request of a purpose gets no valid decision",
}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem of a policy set. ``path`` is relative to the policies directory."""

    path: str
    line: int | None
    column: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message} [{self.code}]"


def check_policy_set(
    policies_dir: Path,
    catalog: Catalog,
    *,
    now: datetime | None = None,
    entrypoints: Iterable[str] = (ENTRYPOINT,),
    probe: bool = True,
) -> list[Finding]:
    """Every finding of the policy set under ``policies_dir``; [] when it is clean.

    ``probe=False`` leaves the start-up probe out, for a caller that probes the engine it
    will serve with anyway (`gateway.policy.vetting`).

    ``entrypoints`` are rule paths (``doelpoort/disclosure/decision``): the rules nothing
    on the way to one of them reads are findings.
    """
    findings: list[Finding] = []
    register = _register(policies_dir, catalog, findings)
    modules, sound = _modules(policies_dir, findings)
    if not modules and sound:
        findings.append(Finding(".", None, None, "compile", "no .rego policy files"))
        sound = False
    paths = tuple(tuple(e.split("/")) for e in entrypoints)
    interpreter = Interpreter()
    # The rules of a module that does not parse are unknown: judging the others by
    # them would report every use of those rules. The syntax errors come first.
    problems = (
        check_modules(modules, is_builtin=interpreter.is_builtin, entrypoints=paths)
        if sound
        else []
    )
    sources = {module.name: module.source for module in modules}
    for problem in problems:
        findings.append(_finding(problem, sources[problem.module]))
        if problem.code == "conflict":
            sound = False  # rego-cpp crashes on some conflicts: never compile them
    if sound and register is not None:
        findings.extend(_compile_and_probe(policies_dir, register, catalog, now, probe))
    return sorted(findings)


def _register(policies_dir: Path, catalog: Catalog, findings: list[Finding]) -> Register | None:
    try:
        register = Register.load(policies_dir / REGISTER_FILE)
    except ConfigurationError as exc:
        findings.append(Finding(REGISTER_FILE, None, None, "register", _without_path(exc)))
        return None
    try:
        register.check_against(catalog)
    except ConfigurationError as exc:
        findings.append(Finding(REGISTER_FILE, None, None, "catalog", exc.detail))
        return None
    return register


def _without_path(exc: ConfigurationError) -> str:
    # Register.load puts the file's full path first; the finding names it already.
    detail = exc.detail
    head, sep, rest = detail.partition(": ")
    return rest if sep and head.endswith(REGISTER_FILE) else detail


def _modules(policies_dir: Path, findings: list[Finding]) -> tuple[list[RegoModule], bool]:
    modules: list[RegoModule] = []
    sound = True
    for path in sorted(policies_dir.rglob("*.rego")):
        name = path.relative_to(policies_dir).as_posix()
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(Finding(name, None, None, "syntax", f"cannot read the file: {exc}"))
            sound = False
            continue
        try:
            modules.append(RegoModule(name, source, parse_module(name, source)))
        except RegoSyntaxError as exc:
            sound = False
            for problem in exc.problems:
                line, column = (
                    line_col(source, problem.offset) if problem.offset is not None else (None, None)
                )
                findings.append(Finding(name, line, column, "syntax", problem.message))
        except AstUnreadable as exc:
            sound = False
            findings.append(Finding(name, None, None, "checker", f"{exc}: not checked"))
    return modules, sound


def _finding(problem: Problem, source: str) -> Finding:
    line, column = line_col(source, problem.offset) if problem.offset is not None else (None, None)
    return Finding(problem.module, line, column, problem.code, problem.message)


def _compile_and_probe(
    policies_dir: Path, register: Register, catalog: Catalog, now: datetime | None, probe: bool
) -> list[Finding]:
    try:
        # The serving bundle: the policy modules and the register, never the tests.
        bundle = compile_bundle(policies_dir, catalog)
    except ConfigurationError as exc:
        return [Finding(".", None, None, "compile", exc.detail)]
    if not probe:
        return []

    async def decide_probes() -> None:
        engine = EmbeddedEngine(bundle, workers=1)
        try:
            await engine.probe(probe_inputs(register, catalog, now or datetime.now(UTC)))
        finally:
            await engine.aclose()

    # The probe is asynchronous (it runs on the engine's worker threads, with its time
    # limit); run it on a loop of its own, so this works inside a running loop too.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="policy-check") as pool:
        try:
            pool.submit(asyncio.run, decide_probes()).result()
        except ConfigurationError as exc:
            return [Finding(REGISTER_FILE, None, None, "probe", exc.detail)]
    return []
