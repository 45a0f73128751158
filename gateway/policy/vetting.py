"""Vetting a candidate policy set before it serves: at start-up and before every swap.

`vet` compiles the candidate (`gateway.policy.bundle.compile_bundle`), runs each step of
`VETTING_STEPS` on it in order, and finally decides the start-up probe inputs
(`gateway.policy.probe`) with a fresh engine — the engine that then serves it, warm. The
first step that gives reasons refuses the set: its reasons (file, line, rule, purpose or
dataset names; never a request's content) are what the log and the audit entry say.

A step is a plain function of a `Vetting` (the candidate, its compiled set, the catalog,
the pinned digest) returning its reasons, empty when it passes. Steps compile, read
files and run tests, so `vet` runs each on a worker thread: the event loop keeps serving
requests meanwhile. Adding a step is one line in `VETTING_STEPS`; `policy_check` is
`doelpoort policy check`, and `rego_tests_step` adapts a Rego test runner's report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from audit.clock import Clock
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy.bundle import PolicyBundle, compile_bundle
from gateway.policy.check import check_policy_set
from gateway.policy.engine import PolicyEngine
from gateway.policy.probe import probe_inputs
from gateway.policy.register import REGISTER_FILE
from gateway.policy.sources import Candidate
from gateway.policy.testing import run_tests

__all__ = [
    "MAX_REASONS",
    "RELOAD_STEPS",
    "VETTING_STEPS",
    "Refused",
    "Step",
    "Unchanged",
    "Vetted",
    "Vetting",
    "policy_check",
    "rego_tests_step",
    "vet",
]

log = logging.getLogger("doelpoort.policy")

MAX_REASONS = 20
"""Reasons kept of one refusal: the first ones say enough, and an entry stays small."""
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Vetting:
    """What a step looks at."""

    candidate: Candidate
    bundle: PolicyBundle
    catalog: Catalog
    pinned: str | None


Step = Callable[[Vetting], Sequence[str]]
"""One check of a compiled candidate: the reasons it refuses the set (empty: it passes)."""


@dataclass(frozen=True)
class Vetted:
    """A set that passed every step, and the probed engine that will serve it."""

    bundle: PolicyBundle
    engine: PolicyEngine


@dataclass(frozen=True)
class Refused:
    """A set refused, and why; ``digest`` is None when it did not compile."""

    reasons: tuple[str, ...]
    digest: str | None


@dataclass(frozen=True)
class Unchanged:
    """The candidate is the set that serves already: nothing to vet or swap."""

    digest: str


# -- the steps -----------------------------------------------------------------------


def pinned_digest(vetting: Vetting) -> list[str]:
    """With ``DOELPOORT_POLICY_DIGEST`` set, only that one set serves."""
    if vetting.pinned is None or vetting.bundle.digest == vetting.pinned:
        return []
    return [
        f"its digest {vetting.bundle.digest} is not the pinned {vetting.pinned} "
        "(DOELPOORT_POLICY_DIGEST)"
    ]


def bundle_revision(vetting: Vetting) -> list[str]:
    """A bundle's files must be the set its signed manifest names."""
    revision = vetting.candidate.revision
    if revision is None or revision == vetting.bundle.digest:
        return []
    return [
        f"the bundle's manifest names revision {revision}, but its files are the policy "
        f"set {vetting.bundle.digest}"
    ]


def register_fits_catalog(vetting: Vetting) -> list[str]:
    """Every dataset, field, op, role and requester of the register is the catalog's."""
    try:
        vetting.bundle.register.check_against(vetting.catalog)
    except ConfigurationError as exc:
        return [f"{vetting.candidate.directory / REGISTER_FILE}: {exc.detail}"]
    return []


class RegoTestReport(Protocol):
    """What vetting reads of a policy test run (`gateway.policy.testing`)."""

    @property
    def ok(self) -> bool: ...
    @property
    def failed(self) -> object: ...
    @property
    def errors(self) -> object: ...


def policy_check(vetting: Vetting) -> list[str]:
    """`doelpoort policy check` (`gateway.policy.check`): each finding is a reason. The
    probe is left to the vetting's end, on the very engine that will serve."""
    findings = check_policy_set(vetting.candidate.directory, vetting.catalog, probe=False)
    return [str(finding) for finding in findings]


def rego_tests_step(run: Callable[[Path], RegoTestReport]) -> Step:
    """A step from a Rego test runner: the set passes when its tests do (and there are
    some). Only for the directory source: a bundle carries no tests, and its signature
    is the signer's word that the set passed them (`doelpoort policy bundle`)."""

    def tested(vetting: Vetting) -> list[str]:
        if vetting.candidate.kind != "directory":
            return []
        report = run(vetting.candidate.directory)
        if report.ok:
            return []
        return [
            f"its Rego tests do not pass: {_count(report.failed)} failed, "
            f"{_count(report.errors)} errors (run `doelpoort policy test` on it)"
        ]

    return tested


VETTING_STEPS: tuple[Step, ...] = (
    pinned_digest,
    bundle_revision,
    register_fits_catalog,
    policy_check,
)
"""Run in this order after the compile, before the probe; the first refusal stops. What
start-up runs."""

RELOAD_STEPS: tuple[Step, ...] = (*VETTING_STEPS, rego_tests_step(run_tests))
"""What a reload runs: the set's own Rego tests too (``DOELPOORT_POLICY_RELOAD_TESTS``).
Not at start-up: rego-cpp compiles tests slowly (tens of seconds for the shipped set),
and a gateway must come back quickly; CI runs `doelpoort policy test` before shipping."""


# -- vetting -------------------------------------------------------------------------


async def vet(
    candidate: Candidate,
    catalog: Catalog,
    *,
    new_engine: Callable[[PolicyBundle], Awaitable[PolicyEngine]],
    clock: Clock,
    pinned: str | None = None,
    serving: str | None = None,
    steps: Sequence[Step] = VETTING_STEPS,
) -> Vetted | Refused | Unchanged:
    """Vet ``candidate``: `Vetted` with the engine to serve it (the caller closes it),
    `Refused` with the reasons, or `Unchanged` when it compiles to ``serving``'s digest."""
    try:
        bundle = await asyncio.to_thread(compile_bundle, candidate.directory, catalog)
    except ConfigurationError as exc:
        return Refused(_reasons(candidate, [exc.detail]), None)
    if bundle.digest == serving:
        return Unchanged(bundle.digest)
    vetting = Vetting(candidate, bundle, catalog, pinned)
    for step in steps:
        try:
            reasons = await asyncio.to_thread(step, vetting)
        except ConfigurationError as exc:
            reasons = [exc.detail]
        except Exception as exc:
            # A step that breaks refuses the set: vetting fails closed. Only the class:
            # a message might quote what the step read.
            log.error("policy vetting step %s failed: %s", _name(step), type(exc).__name__)
            reasons = [f"vetting step {_name(step)} failed ({type(exc).__name__})"]
        if reasons:
            return Refused(_reasons(candidate, reasons), bundle.digest)
    try:
        # An OPA engine is refused here unless its server already serves this set.
        engine = await new_engine(bundle)
    except ConfigurationError as exc:
        return Refused(_reasons(candidate, [exc.detail]), bundle.digest)
    try:
        # A policy that decides no ordinary request is refused here, not on every request.
        await engine.probe(probe_inputs(bundle.register, catalog, clock()))
    except ConfigurationError as exc:
        await engine.aclose()
        return Refused(_reasons(candidate, [exc.detail]), bundle.digest)
    except BaseException:
        await engine.aclose()
        raise
    return Vetted(bundle, engine)


def _reasons(candidate: Candidate, reasons: Iterable[str]) -> tuple[str, ...]:
    kept: list[str] = []
    for reason in reasons:
        if len(kept) == MAX_REASONS:
            kept.append("… and more")
            break
        text = candidate.describe(reason)
        kept.append(text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…")
    return tuple(kept)


def _count(value: object) -> object:
    if isinstance(value, Sized):
        return len(value)
    return value


def _name(step: Step) -> str:
    return getattr(step, "__name__", type(step).__name__)
