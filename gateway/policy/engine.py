"""Policy engines: turn a policy input into a :class:`Decision`, or raise. Never both.

Every path that is not a well-formed decision raises a
:class:`~gateway.errors.PolicyError` (503, nothing disclosed): engine error, no answer
(undefined), timeout, a decision of the wrong shape, an op no operator implements, an op
that does not suit its field's type, an op for a field the dataset does not have, or an
allow that releases no field (every op ``drop``, or none at all: its empty records would
still tell the requester that the subject is in the dataset). An allowing
:class:`Decision` is only ever built after all of that was checked.

:class:`PolicyEngine` is the seam; two engines satisfy it, chosen by
``DOELPOORT_POLICY_ENGINE`` (`gateway.runtime`):

- :class:`EmbeddedEngine` (the default) evaluates the compiled bundle in-process with
  regopy, on bounded worker threads (`gateway.policy.workers`), and remembers decisions
  on the input keys the policy reads (`gateway.policy.memo`).
- `gateway.policy.opa.OpaEngine` asks an OPA server serving the same policy set as an
  OPA bundle (`gateway.policy.opa_bundle`, ``doelpoort policy bundle``): it queries
  ``/v1/data/doelpoort/disclosure/decision`` with the same input, checks that the bundle
  revision OPA decided with is this gateway's policy digest, and fails closed on
  anything else.

Both pass every answer through :func:`decision_from_result`, so they validate decisions
identically, and both decide the start-up probe inputs (:meth:`PolicyEngine.probe`)
before the gateway serves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from gateway.errors import (
    ConfigurationError,
    DoelpoortError,
    InvalidDecision,
    PolicyError,
    PolicyEvaluationError,
    PolicyUnavailable,
)
from gateway.operators import parse_op, validate_op
from gateway.policy.bundle import PolicyBundle
from gateway.policy.evaluator import UNDEFINED, RegoEvaluator
from gateway.policy.memo import DecisionMemo, input_dependencies
from gateway.policy.register import MAX_RETENTION_DAYS
from gateway.policy.workers import EvaluationWorkers

log = logging.getLogger("doelpoort.policy")

#: How long the start-up probe gives each decision: it is no timing test (a worker
#: compiles its bundle first), only a check that the policy decides at all.
PROBE_TIMEOUT_S = 10.0
#: Requests that may wait for a busy worker, per worker: a burst of fresh decisions
#: queues for a millisecond each rather than being refused.
WAITING_PER_WORKER = 64

_NO_REASON = "denied by the policy without a reason"
_DECISION_KEYS = frozenset({"allow", "reasons", "field_ops", "retention_days", "legal_basis"})


@dataclass(frozen=True)
class Decision:
    """One policy decision for one dataset."""

    allow: bool
    reasons: tuple[str, ...]
    field_ops: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    retention_days: int = 0
    legal_basis: str = ""
    policy_digest: str = ""


class PolicyEngine(Protocol):
    """What the pipeline needs of a policy engine."""

    @property
    def digest(self) -> str:
        """The digest of the policy bundle every decision of this engine comes from."""

    async def decide(self, policy_input: Mapping[str, Any]) -> Decision:
        """Decide one dataset; raises PolicyError on anything but a valid decision."""

    def ready(self) -> bool:
        """Whether the engine can answer (for /readyz)."""

    async def probe(self, inputs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Decide each labelled input afresh before serving; ConfigurationError (naming
        the input and the cause, :func:`probe_failure`) when one gives no valid decision."""

    async def aclose(self) -> None: ...


def probe_failure(label: str, cause: str) -> ConfigurationError:
    """The start-up error for a probe input that got no valid decision (every engine's)."""
    return ConfigurationError(
        f"the policy gives no valid decision for a probe input ({label}): {cause}"
    )


def decision_from_result(result: object, policy_input: Mapping[str, Any], digest: str) -> Decision:
    """Validate a raw decision document against the contract and the input's dataset.

    Raises InvalidDecision, UnknownOperator or PolicyEvaluationError; never returns an
    allowing decision that was not fully checked.
    """
    if not isinstance(result, dict):
        raise InvalidDecision("the decision is not an object")
    missing = _DECISION_KEYS - set(result)
    if missing:
        raise InvalidDecision(f"the decision lacks {', '.join(sorted(missing))}")
    if extra := set(result) - _DECISION_KEYS:
        # A misspelt key (``field_op``) is a policy mistake; say so rather than ignore it.
        raise InvalidDecision(f"the decision has unknown key(s) {', '.join(sorted(extra))}")
    allow, reasons, ops = result["allow"], result["reasons"], result["field_ops"]
    retention, legal_basis = result["retention_days"], result["legal_basis"]
    if not isinstance(allow, bool):
        raise InvalidDecision("decision.allow is not a boolean")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise InvalidDecision("decision.reasons is not a list of strings")
    if not isinstance(ops, dict) or not all(isinstance(o, str) for o in ops.values()):
        raise InvalidDecision("decision.field_ops is not an object of strings")
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 0:
        raise InvalidDecision("decision.retention_days is not a non-negative integer")
    if retention > MAX_RETENTION_DAYS:
        raise InvalidDecision(f"decision.retention_days is over {MAX_RETENTION_DAYS}")
    if not isinstance(legal_basis, str):
        raise InvalidDecision("decision.legal_basis is not a string")
    if not allow:
        # Ops of a denial are never applied; keep none so none can leak into a result.
        return Decision(
            allow=False,
            reasons=tuple(reasons) or (_NO_REASON,),
            retention_days=retention,
            legal_basis=legal_basis,
            policy_digest=digest,
        )
    if retention <= 0 or not legal_basis:
        raise InvalidDecision("an allowing decision needs retention_days and a legal_basis")
    fields = _input_fields(policy_input)
    for name, op in ops.items():
        spec = fields.get(name)
        if spec is None:
            raise InvalidDecision(f"decision.field_ops names field {name!r}, not in the dataset")
        validate_op(op, spec["type"])
    if all(parse_op(op)[0] == "drop" for op in ops.values()):
        raise InvalidDecision("an allowing decision releases no field (every op is drop)")
    return Decision(
        allow=True,
        reasons=tuple(reasons),
        field_ops=MappingProxyType(dict(ops)),
        retention_days=retention,
        legal_basis=legal_basis,
        policy_digest=digest,
    )


def _input_fields(policy_input: Mapping[str, Any]) -> Mapping[str, Mapping[str, str]]:
    try:
        fields = policy_input["dataset"]["fields"]
    except (KeyError, TypeError):
        raise InvalidDecision("the policy input has no dataset fields") from None
    if not isinstance(fields, Mapping):
        raise InvalidDecision("the policy input's dataset fields are not an object")
    return fields


class EmbeddedEngine:
    """The regopy (rego-cpp) engine, in-process, on at most ``workers`` threads.

    A decision that takes longer than ``timeout_s`` raises PolicyEvaluationError at its
    time limit; rego-cpp cannot stop the evaluation, so its worker is written off until
    it ends (`gateway.policy.workers`). With every worker written off a request is
    refused at once (PolicyUnavailable), and :meth:`ready` is false; remembered
    decisions are still answered. :meth:`aclose` never waits for an evaluation. Every
    failure is logged with its cause (names only: a policy input holds no identifiers,
    and quoted text is left out of rego-cpp's messages).
    """

    def __init__(self, bundle: PolicyBundle, *, timeout_s: float = 1.0, workers: int = 2) -> None:
        if timeout_s <= 0 or workers < 1:
            raise ValueError("timeout_s must be positive and workers at least 1")
        self._bundle = bundle
        self._timeout_s = timeout_s
        self._workers = EvaluationWorkers(
            lambda: RegoEvaluator(bundle),
            size=workers,
            max_waiting=WAITING_PER_WORKER * workers,
        )
        dependencies = input_dependencies(source for _name, source in bundle.modules)
        self._memo = DecisionMemo[Decision](dependencies) if dependencies is not None else None

    @property
    def memo(self) -> DecisionMemo[Decision] | None:
        """The decision memo, or None when the policy's inputs cannot be told apart."""
        return self._memo

    @property
    def digest(self) -> str:
        return self._bundle.digest

    def ready(self) -> bool:
        return self._workers.available()

    async def aclose(self) -> None:
        # Never waits: an evaluation still running is abandoned, not awaited.
        self._workers.close()

    async def decide(self, policy_input: Mapping[str, Any]) -> Decision:
        if self._workers.closed:
            raise PolicyUnavailable("the policy engine is closed")
        memo_key = self._memo.key(policy_input) if self._memo is not None else None
        if memo_key is not None and self._memo is not None:
            remembered = self._memo.get(memo_key)
            if remembered is not None:
                return remembered
        try:
            result = await self._evaluate(policy_input, self._timeout_s)
            decision = decision_from_result(result, policy_input, self.digest)
        except PolicyError as exc:
            log.error("policy decision failed (%s): %s", exc.code, exc.detail)
            raise
        if memo_key is not None and self._memo is not None:
            self._memo.put(memo_key, decision)
        return decision

    async def decide_fresh(
        self, policy_input: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> Decision:
        """Evaluate and validate one input afresh, never from the memo nor into it.

        What the authors' tools (``policy eval`` and ``policy replay``) and the start-up
        probe decide with: a decision of *this* policy set for *this* input, checked by
        :func:`decision_from_result` exactly as a request's. Raises PolicyError.
        """
        result = await self._evaluate(policy_input, timeout_s or self._timeout_s)
        return decision_from_result(result, policy_input, self.digest)

    async def probe(self, inputs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Decide each labelled input afresh (never from the memo) before serving.

        Raises ConfigurationError naming the input and the cause when one gives no
        valid decision: no ``decision`` rule, a rule undefined or failing for it, a
        decision of the wrong shape, no answer within :data:`PROBE_TIMEOUT_S`.
        """
        for label, policy_input in inputs:
            try:
                await self.decide_fresh(
                    policy_input, timeout_s=max(self._timeout_s, PROBE_TIMEOUT_S)
                )
            except PolicyError as exc:
                cause = exc.detail
                if cause == UNDEFINED and not self._bundle.declares_entrypoint():
                    cause = f"the policy set has no rule {self._bundle.entrypoint}"
                raise probe_failure(label, cause) from exc

    async def _evaluate(self, policy_input: Mapping[str, Any], timeout_s: float) -> object:
        """The raw decision document, from a worker within ``timeout_s``; PolicyError
        otherwise (PolicyUnavailable at once when no worker can take it)."""
        try:
            document = json.dumps(policy_input)
        except (TypeError, ValueError):
            raise PolicyEvaluationError("the policy input is not JSON") from None
        job = self._workers.submit(document)
        try:
            async with asyncio.timeout(timeout_s):
                return await job.future
        except TimeoutError:
            self._workers.abandon(job, write_off=True)
            log.warning(
                "policy evaluation abandoned after %g s: its worker is written off until it"
                " ends (%d of %d written off)",
                timeout_s,
                self._workers.written_off,
                self._workers.size,
            )
            raise PolicyEvaluationError(
                f"the policy did not decide within {timeout_s:g} s"
            ) from None
        except asyncio.CancelledError:
            self._workers.abandon(job, write_off=False)
            raise
        except DoelpoortError:
            raise
        except Exception as exc:
            # Fail closed on anything unforeseen in a worker.
            raise PolicyEvaluationError(f"the policy engine failed: {type(exc).__name__}") from exc
