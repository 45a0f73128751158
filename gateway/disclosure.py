"""The disclosure pipeline: decide, fetch, minimise, log, sign.

One call of :meth:`DisclosureService.disclose` answers one ``POST /v1/disclosures``.
The order is the point:

0. when the purpose requires facts about the subject (`gateway.vocabulary.FactSpec`)
   and the requester holds one of its roles, each fact's dataset is fetched (once per
   dataset) and the fact reduced to true or false; a provider failure here fails the
   whole request closed with the connector's error — after logging it;
1. a policy decision per dataset, from an input that holds names, categories and those
   booleans only; any engine failure fails the whole request closed (503) — after
   logging it;
2. only allowed datasets are fetched (a fact's dataset is not fetched again),
   concurrently; a connector or operator failure withholds that dataset and is
   reported as its ``error`` result;
3. every decision is appended to the audit log (with the disclosure's escrow beside it,
   kept until the purpose's retention ends) and the call waits for the durable commit
   before anything leaves. Each entry carries the subject's references under the DPO
   subject key (`gateway.subject_refs`) — of every identity key the request and the
   records fetched for it reveal, so that the DPO's search by BSN also finds a request
   made by name and date of birth — and the references of the pseudonyms it released;
4. the disclosure is signed; a request whose every dataset was denied gets 403.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from audit.clock import Clock, rfc3339, utc_now
from audit.entry import AuditRecord, StoredEscrow, escrow_digest
from audit.store import AuditStore
from gateway.api_models import DisclosureRequest
from gateway.canonical import canonical_json
from gateway.connectors.catalog import Catalog
from gateway.errors import (
    ConnectorError,
    ConnectorResponseError,
    DoelpoortError,
    EscrowUnavailable,
    OperatorError,
    PolicyError,
    PurposeDenied,
    SigningError,
    UnknownDataset,
)
from gateway.escrow import EscrowSealer, RecordingPseudonymiser
from gateway.metrics import Metrics
from gateway.operators import minimise
from gateway.policy.engine import Decision, PolicyEngine
from gateway.policy.input import build_policy_input, dataset_input
from gateway.policy.register import Register
from gateway.pseudonyms import PseudonymKeys
from gateway.signing import Receipt, ReceiptSigner
from gateway.subject_refs import IdentityKey, SubjectRefKey, identity_keys
from gateway.vocabulary import Partner

log = logging.getLogger("doelpoort.disclosure")

_DAY_S = 86_400

Verdict = Literal["allow", "deny", "error"]

# Stands in for "no dataset" when a purpose covers none at all (e.g. it is not in the
# register): the policy still decides, so the denial and its reason are logged.
_NO_DATASET: dict[str, Any] = {
    "id": "",
    "provider": "",
    "domain": "",
    "fields": {},
    "identity_keys": [],
}


@dataclass(frozen=True)
class _DatasetPlan:
    """What the pipeline needs of one dataset, worked out once per gateway."""

    id: str
    provider: str
    policy_section: dict[str, Any]  # the policy input's ``dataset``; never changed
    field_types: Mapping[str, str]


@dataclass(eq=False)
class _Outcome:
    """What happened to one dataset, before it is logged."""

    plan: _DatasetPlan
    policy_input: dict[str, Any]
    decision: Decision | None = None
    records: list[dict[str, Any]] | None = None
    records_sha256: str | None = None
    pseudonyms: Sequence[str] = ()  # those the records hold, for the entry's references
    error: DoelpoortError | None = None
    note: str = ""

    @property
    def dataset(self) -> str:
        return self.plan.id

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return "error"
        assert self.decision is not None
        return "allow" if self.decision.allow else "deny"


class DisclosureService:
    """Wires the pipeline's parts; one instance per running gateway."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        register: Register,
        engine: PolicyEngine,
        pseudonyms: PseudonymKeys,
        subject_key: SubjectRefKey,
        audit: AuditStore,
        signer: ReceiptSigner,
        metrics: Metrics,
        escrow: EscrowSealer | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.catalog = catalog
        self.register = register
        self.engine = engine
        self.pseudonyms = pseudonyms
        self.subject_key = subject_key
        self.audit = audit
        self.signer = signer
        self.metrics = metrics
        self.escrow = escrow
        self.clock = clock
        self._plans: dict[str, _DatasetPlan] = {}

    def with_policy(self, register: Register, engine: PolicyEngine) -> DisclosureService:
        """This pipeline deciding by another policy set (a reload swaps it in whole:
        a request in flight keeps the service, so the set, it started with)."""
        service = copy.copy(self)
        service.register, service.engine = register, engine
        service._plans = {}  # worked out again, under the new set
        return service

    async def disclose(self, requester: Partner, request: DisclosureRequest) -> Receipt:
        """Answer one request; raise a :mod:`gateway.errors` class on refusal or failure."""
        now = self.clock()
        subject = request.subject.keys()
        datasets = self._datasets(requester, request)
        # The request's part of the policy input is built (and checked) once; each
        # dataset's input is it with that dataset's section.
        plans = [self._plan(dataset_id) for dataset_id in datasets]
        # Records fetched for a fact, by dataset: reused if that dataset is disclosed.
        fetched: dict[str, list[dict[str, Any]]] = {}
        failure: DoelpoortError | None = None
        try:
            subject_facts = await self._subject_facts(requester, request.purpose, subject, fetched)
        except ConnectorError as exc:
            failure, subject_facts = exc, {}
        request_input = build_policy_input(
            requester_id=requester.id,
            roles=requester.roles,
            purpose=request.purpose,
            case_ref=request.case_ref,
            has_justification=bool(request.justification.strip()),
            dataset=plans[0].policy_section,
            subject_keys=subject,
            now=now,
            subject_facts=subject_facts,
        )
        outcomes = [
            _Outcome(plan=plan, policy_input={**request_input, "dataset": plan.policy_section})
            for plan in plans
        ]

        disclosure_id = f"urn:uuid:{uuid.uuid4()}"
        if failure is not None:
            # Nothing is decided without the facts the purpose depends on.
            for outcome in outcomes:
                outcome.error = failure
                outcome.note = f"a fact purpose {request.purpose} requires could not be fetched"
        else:
            failure = await self._decide(outcomes)
        recorded: list[tuple[_Outcome, RecordingPseudonymiser]] = []
        if failure is None:
            # Never raises: every failure becomes that dataset's error, so it is logged.
            recorded = await self._fetch(requester, request.purpose, outcomes, subject, fetched)
        subject_refs = self._subject_refs(subject, fetched)
        escrow = self._seal_escrow(outcomes, recorded, request, now)
        seqs = await self._log(
            outcomes, requester, request, disclosure_id, subject_refs, now, escrow
        )
        verdicts = [o.verdict for o in outcomes]
        for verdict in verdicts:
            self.metrics.decisions.labels(verdict).inc()
        # Names, counts and sequence numbers only: never the subject or a value.
        log.info(
            "%s asked for %s: %d allow, %d deny, %d error (audit seq %d-%d)",
            requester.id,
            request.purpose,
            verdicts.count("allow"),
            verdicts.count("deny"),
            verdicts.count("error"),
            seqs[0],
            seqs[-1],
        )

        if failure is not None:
            raise failure
        if all(o.verdict == "deny" for o in outcomes):
            # The same reason (e.g. "not granted") often holds for every dataset: once.
            reasons = list(
                dict.fromkeys(r for o in outcomes if o.decision for r in o.decision.reasons)
            )
            raise PurposeDenied(
                f"purpose {request.purpose} releases nothing to {requester.id}", reasons
            )

        disclosure = {
            "id": disclosure_id,
            "issued_at": rfc3339(now),
            "requester": requester.id,
            "purpose": request.purpose,
            "case_ref": request.case_ref,
            "policy_digest": self.engine.digest,
            "results": [_result(o, seq) for o, seq in zip(outcomes, seqs, strict=True)],
        }
        try:
            return self.signer.sign_disclosure(disclosure)
        except Exception as exc:
            withdrawal = (requester, request, disclosure_id, subject_refs, now, escrow)
            await self._withdraw(outcomes, seqs, exc, *withdrawal)
            raise SigningError() from exc

    async def _withdraw(
        self,
        outcomes: Sequence[_Outcome],
        seqs: Sequence[int],
        cause: Exception,
        requester: Partner,
        request: DisclosureRequest,
        disclosure_id: str,
        subject_refs: list[str],
        now: datetime,
        escrow: StoredEscrow | None,
    ) -> None:
        """Log that logged allows were never released, so the DPO sees what went out."""
        log.error("receipt signing failed (%s): disclosure withheld", type(cause).__name__)
        withdrawn = SigningError()
        for outcome, seq in zip(outcomes, seqs, strict=True):
            if outcome.verdict == "allow":
                outcome.records = None
                outcome.error = withdrawn
                outcome.note = f"withdraws audit entry {seq}: nothing was released"
        withdrawals = [o for o in outcomes if o.note]
        if withdrawals:
            await self._log(
                withdrawals, requester, request, disclosure_id, subject_refs, now, escrow
            )

    def _plan(self, dataset_id: str) -> _DatasetPlan:
        plan = self._plans.get(dataset_id)
        if plan is None:
            spec = self.catalog.datasets.get(dataset_id)
            if spec is None:
                plan = _DatasetPlan(dataset_id, "", dataset_input(_NO_DATASET), {})
            else:
                plan = _DatasetPlan(
                    dataset_id,
                    spec.provider,
                    dataset_input(spec.policy_view()),
                    {name: field.type for name, field in spec.fields.items()},
                )
            self._plans[dataset_id] = plan
        return plan

    # -- steps -----------------------------------------------------------------------

    def _datasets(self, requester: Partner, request: DisclosureRequest) -> list[str]:
        if request.datasets is not None:
            wanted = list(dict.fromkeys(request.datasets))
            unknown = [d for d in wanted if d not in self.catalog.datasets]
            if unknown:
                raise UnknownDataset(f"unknown dataset(s): {', '.join(sorted(unknown))}")
            return wanted
        covered = self.register.covered_datasets(request.purpose, requester.id, requester.roles)
        if not covered:
            # Not granted: ask the policy about everything the purpose covers, so the
            # refusal carries its reasons and every refused dataset is logged.
            covered = self.register.covered_datasets(request.purpose, None, None)
        return [d for d in covered if d in self.catalog.datasets] or [""]

    async def _subject_facts(
        self,
        requester: Partner,
        purpose_name: str,
        subject: Mapping[str, str],
        fetched: dict[str, list[dict[str, Any]]],
    ) -> dict[str, bool]:
        """Whether each fact the purpose requires holds for the subject.

        Only for a purpose in the register and a requester holding one of its roles
        (anyone else is refused whatever the facts, and no provider is asked on their
        behalf): else ``{}``. A subject the fact's dataset does not know makes the fact
        false, as a subject it is not true for does: the policy cannot tell them apart.
        Raises ConnectorError when a provider fails.
        """
        purpose = self.register.purposes.get(purpose_name)
        if (
            purpose is None
            or not purpose.requires_facts
            or not set(requester.roles) & set(purpose.requester_roles)
        ):
            return {}
        facts: dict[str, bool] = {}
        for name in purpose.requires_facts:
            fact = self.catalog.facts.get(name)
            if fact is None:  # the register is checked against the catalog: fail closed
                facts[name] = False
                continue
            records = fetched.get(fact.dataset)
            if records is None:
                try:
                    records = await self.catalog.connector(fact.dataset).fetch(subject)
                except ConnectorError as exc:
                    log.warning("subject fact from %s unavailable: %s", fact.dataset, exc.code)
                    raise
                except Exception as exc:
                    # As in _fetch: only the class, whose message may quote a value.
                    log.error(
                        "subject fact from %s unavailable: unexpected %s",
                        fact.dataset,
                        type(exc).__name__,
                    )
                    raise ConnectorResponseError(
                        f"dataset {fact.dataset}: the connector failed unexpectedly"
                    ) from None
                fetched[fact.dataset] = records
            facts[name] = fact.holds(records)
        return facts

    async def _decide(self, outcomes: Sequence[_Outcome]) -> PolicyError | None:
        """Decide every dataset; on any policy failure mark all as errors (fail closed)."""
        failure: PolicyError | None = None
        # One after the other: a remembered decision returns without suspending, and a
        # task per dataset would cost more than the decision itself.
        for outcome in outcomes:
            started = time.perf_counter()
            try:
                outcome.decision = await self.engine.decide(outcome.policy_input)
            except PolicyError as exc:
                failure = failure or exc
            except Exception as exc:
                failure = failure or PolicyError("the policy engine failed")
                log.error("policy engine raised %s", type(exc).__name__)
            self.metrics.policy_seconds.observe(time.perf_counter() - started)
        if failure is not None:
            log.warning("policy failure (%s): request denied, nothing disclosed", failure.code)
            for outcome in outcomes:
                outcome.error = failure
        return failure

    async def _fetch(
        self,
        requester: Partner,
        purpose: str,
        outcomes: Sequence[_Outcome],
        subject: Mapping[str, str],
        fetched: dict[str, list[dict[str, Any]]],
    ) -> list[tuple[_Outcome, RecordingPseudonymiser]]:
        """Fetch and minimise the allowed datasets; with escrow on, what each one's
        pseudonyms stood for. ``fetched`` holds datasets already fetched for this
        subject (for a fact), which are not fetched again; each dataset fetched here is
        added to it."""
        allowed = [o for o in outcomes if o.decision is not None and o.decision.allow]
        if not allowed:
            return []
        domain = self.pseudonyms.domain(requester.id, purpose)
        recorded: list[tuple[_Outcome, RecordingPseudonymiser]] = []

        async def one(outcome: _Outcome) -> None:
            assert outcome.decision is not None
            try:
                raw = fetched.get(outcome.dataset)
                if raw is None:
                    raw = await self.catalog.connector(outcome.dataset).fetch(subject)
                    fetched[outcome.dataset] = raw
                recorder = RecordingPseudonymiser(domain)
                records = minimise(
                    raw, outcome.decision.field_ops, outcome.plan.field_types, recorder
                )
                outcome.records_sha256 = _records_digest(records)
                outcome.records = records
                outcome.pseudonyms = list(recorder.pairs)
                if self.escrow is not None and recorder.pairs:
                    recorded.append((outcome, recorder))
            except (ConnectorError, OperatorError, PolicyError) as exc:
                log.warning("dataset %s withheld: %s", outcome.dataset, exc.code)
                outcome.error = exc
            except Exception as exc:
                # A bug in a connector or operator: withhold the dataset, log only the
                # class (its message may quote a value), and keep the decision on record.
                log.error("dataset %s withheld: unexpected %s", outcome.dataset, type(exc).__name__)
                outcome.error = ConnectorResponseError(
                    f"dataset {outcome.dataset}: the connector failed unexpectedly"
                )

        # In-memory connectors answer without waiting: await them inline. Remote ones
        # run concurrently, so a request costs its slowest provider, not their sum.
        remote = []
        for outcome in allowed:
            if outcome.dataset in fetched or self.catalog.connector(outcome.dataset).in_process:
                await one(outcome)
            else:
                remote.append(outcome)
        if remote:
            results = await asyncio.gather(*(one(o) for o in remote), return_exceptions=True)
            for outcome, result in zip(remote, results, strict=True):
                # `one` contains every Exception; what still got out (a CancelledError
                # raised inside a connector) must not leave an allow without records.
                if isinstance(result, BaseException) and outcome.error is None:
                    log.error(
                        "dataset %s withheld: unexpected %s", outcome.dataset, type(result).__name__
                    )
                    outcome.records = None
                    outcome.error = ConnectorResponseError(
                        f"dataset {outcome.dataset}: the connector failed unexpectedly"
                    )
        return recorded

    def _subject_refs(
        self, subject: Mapping[str, str], fetched: Mapping[str, list[dict[str, Any]]]
    ) -> list[str]:
        """The subject's references: of the identity keys the request gave, and of every
        identity key of a fetched dataset that its records hold whole (a provider found
        by name and date of birth also tells the BSN). One HMAC per distinct key value."""
        keys: set[IdentityKey] = set(identity_keys(subject))
        for dataset_id, records in fetched.items():
            spec = self.catalog.datasets.get(dataset_id)
            if spec is None:
                continue
            for group in spec.identity_keys:
                for record in records:
                    values = [record.get(part) for part in group]
                    if not all(isinstance(value, str) and value for value in values):
                        continue
                    # As for the request: name with date of birth as one (in either
                    # order), never either alone; other parts alone.
                    keys.update(identity_keys(dict(zip(group, values, strict=True))))
        return sorted({self.subject_key.key_ref(key) for key in keys})

    def _seal_escrow(
        self,
        outcomes: Sequence[_Outcome],
        recorded: Sequence[tuple[_Outcome, RecordingPseudonymiser]],
        request: DisclosureRequest,
        now: datetime,
    ) -> StoredEscrow | None:
        """One escrow for the disclosure, beside each of its entries: the justification
        and what the pseudonyms of each dataset stood for. A dataset whose pseudonyms
        cannot be put in escrow is withheld (fail closed).

        It is kept as long as the purpose's retention (the register's, or a decision's if
        longer) and then erased; a purpose outside the register has none.
        """
        if self.escrow is None:
            return None
        pairs = {o.dataset: r.pairs for o, r in recorded}
        try:
            sealed = self.escrow.seal(request.justification, pairs)
        except Exception as exc:
            log.error("escrow could not be sealed: %s", type(exc).__name__)
            for outcome, _ in recorded:
                outcome.records = outcome.records_sha256 = None
                outcome.error = EscrowUnavailable()
            return None
        purpose = self.register.purposes.get(request.purpose)
        retention_days = max(
            [purpose.retention_days if purpose is not None else 0]
            + [o.decision.retention_days for o in outcomes if o.decision is not None]
        )
        return StoredEscrow(sealed, int(now.timestamp()) + retention_days * _DAY_S)

    async def _log(
        self,
        outcomes: Sequence[_Outcome],
        requester: Partner,
        request: DisclosureRequest,
        disclosure_id: str,
        subject_refs: list[str],
        now: datetime,
        escrow: StoredEscrow | None,
    ) -> list[int]:
        stamp = rfc3339(now)
        digest, expires = (
            (escrow_digest(escrow.sealed), escrow.expires) if escrow is not None else (None, None)
        )
        entries = [
            _audit_record(
                o,
                requester,
                request,
                disclosure_id,
                subject_refs,
                stamp,
                self.engine.digest,
                digest,
                expires,
                self.subject_key,
            )
            for o in outcomes
        ]
        started = time.perf_counter()
        seqs = await self.audit.append(entries, escrow)
        self.metrics.audit_seconds.observe(time.perf_counter() - started)
        return seqs


def _records_digest(records: list[dict[str, Any]]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(records)).hexdigest()


def _audit_record(
    outcome: _Outcome,
    requester: Partner,
    request: DisclosureRequest,
    disclosure_id: str,
    subject_refs: list[str],
    stamp: str,
    policy_digest: str,
    escrow_sha256: str | None,
    escrow_expires: int | None,
    subject_key: SubjectRefKey,
) -> AuditRecord:
    """The audit entry of one outcome; ``policy_digest`` is the engine's, for entries
    whose decision failed (a decision carries its own)."""
    decision = outcome.decision
    disclosed = outcome.verdict == "allow" and outcome.records is not None
    reasons = list(decision.reasons) if decision is not None else []
    if outcome.error is not None:
        reasons.append(outcome.error.title)
    if outcome.note:
        reasons.append(outcome.note)
    return AuditRecord(
        time=stamp,
        disclosure_id=disclosure_id,
        requester=requester.id,
        provider=outcome.plan.provider,
        dataset=outcome.dataset,
        purpose=request.purpose,
        legal_basis=decision.legal_basis if decision is not None else "",
        case_ref=request.case_ref,
        decision=outcome.verdict,
        reasons=reasons,
        field_ops=dict(decision.field_ops) if decision is not None and decision.allow else {},
        record_count=len(outcome.records) if disclosed and outcome.records else 0,
        subject_refs=subject_refs,
        policy_digest=decision.policy_digest if decision is not None else policy_digest,
        records_sha256=outcome.records_sha256 if disclosed else None,
        escrow_sha256=escrow_sha256,
        escrow_expires=escrow_expires,
        retention_days=decision.retention_days if decision is not None else None,
        error=outcome.error.code if outcome.error is not None else None,
        policy_input=outcome.policy_input,
        subject_ref_key=subject_key.kid,
        pseudonym_refs=sorted({subject_key.pseudonym_ref(p) for p in outcome.pseudonyms})
        if disclosed
        else [],
    )


def _result(outcome: _Outcome, seq: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "dataset": outcome.dataset,
        "decision": outcome.verdict,
        "audit_seq": seq,
    }
    decision = outcome.decision
    if outcome.error is not None:
        result["error"] = {
            "type": outcome.error.type_uri,
            "title": outcome.error.title,
            "detail": outcome.error.detail,
        }
    elif decision is not None and decision.allow:
        result["field_ops"] = dict(decision.field_ops)
        result["records"] = outcome.records or []
    elif decision is not None:
        result["reasons"] = list(decision.reasons)
    return result
