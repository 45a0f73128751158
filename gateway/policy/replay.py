"""Replay logged decisions against a candidate policy set: what would it have changed?

``doelpoort policy replay`` reads the audit log (read-only) and evaluates the policy input
each decision entry keeps (SPEC §8) with the candidate set, afresh: through
:meth:`EmbeddedEngine.decide_fresh`, never a memo, validated by ``decision_from_result``
as a live request's decision is. Each outcome is compared with what was logged:

- ``allow→deny`` and ``deny→allow`` (with the candidate's reasons for a new denial);
- ``allow→error`` and ``deny→error``: the candidate gives no valid decision (a policy
  error, an invalid decision, its time limit), which a live gateway would refuse with a
  503 — a flip too;
- ``field ops``: both allow, but some field's op differs (``old → new``; a field that is
  released on one side only is ``(not released)`` on the other).

Counted per purpose and requester, and within them per dataset. Entries that are no
decision of the policy are skipped and counted by why: refusals (no policy input),
decisions logged as errors (nothing to compare with), entries without a stored input.

Evaluations run on the engine's worker threads (rego-cpp releases the GIL); this
module keeps a window of them in flight. A candidate whose every worker runs over its
time limit stops the replay (PolicyUnavailable, naming the entry): the remaining entries would be
refused unevaluated, which is no answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.errors import PolicyError, PolicyUnavailable
from gateway.policy.bundle import PolicyBundle
from gateway.policy.engine import Decision, EmbeddedEngine

__all__ = ["NOT_RELEASED", "ReplayReport", "read_decisions", "replay"]

#: The side of a field-op change where the field is not released at all.
NOT_RELEASED = "(not released)"
#: Evaluations in flight per worker: enough to keep every worker busy, well inside the
#: engine's waiting line (gateway.policy.engine.WAITING_PER_WORKER).
_IN_FLIGHT_PER_WORKER = 32
_FLIP_KINDS = ("allow→deny", "deny→allow", "allow→error", "deny→error", "field ops")


@dataclass(frozen=True)
class LoggedDecision:
    """One decision entry to replay: what was logged, and the input it was made for."""

    seq: int
    purpose: str
    requester: str
    dataset: str
    allow: bool
    field_ops: Mapping[str, str]
    policy_input: Mapping[str, Any]


@dataclass
class DatasetChanges:
    """The flips of one dataset within a purpose and requester."""

    flips: Counter[str] = field(default_factory=Counter)
    #: The candidate's reasons for a new denial, and the causes of its errors.
    reasons: Counter[str] = field(default_factory=Counter)
    #: field → "old → new" → how many decisions.
    field_ops: dict[str, Counter[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "flips": dict(self.flips),
            "reasons": dict(self.reasons),
            "field_ops": {name: dict(changes) for name, changes in sorted(self.field_ops.items())},
        }


@dataclass
class GroupReport:
    """The replayed decisions of one purpose and requester."""

    purpose: str
    requester: str
    replayed: int = 0
    unchanged: int = 0
    flips: Counter[str] = field(default_factory=Counter)
    datasets: dict[str, DatasetChanges] = field(default_factory=dict)

    @property
    def flipped(self) -> int:
        return self.replayed - self.unchanged

    def as_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "requester": self.requester,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "flipped": self.flipped,
            "flips": {kind: self.flips[kind] for kind in _FLIP_KINDS if self.flips[kind]},
            "datasets": {name: c.as_json() for name, c in sorted(self.datasets.items())},
        }


@dataclass
class ReplayReport:
    """What a candidate policy set would have changed in the log's decisions."""

    policy_digest: str
    since: str | None = None
    entries: int = 0
    before_since: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[str, str], GroupReport] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def replayed(self) -> int:
        return sum(g.replayed for g in self.groups.values())

    @property
    def unchanged(self) -> int:
        return sum(g.unchanged for g in self.groups.values())

    @property
    def flipped(self) -> int:
        return self.replayed - self.unchanged

    @property
    def per_s(self) -> float:
        return self.replayed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "policy_digest": self.policy_digest,
            "since": self.since,
            "summary": {
                "entries": self.entries,
                "before_since": self.before_since,
                "replayed": self.replayed,
                "unchanged": self.unchanged,
                "flipped": self.flipped,
                "skipped": dict(sorted(self.skipped.items())),
            },
            "groups": [g.as_json() for _key, g in sorted(self.groups.items())],
        }

    def lines(self) -> list[str]:
        """The report as text: every flip grouped per purpose and requester, a summary."""
        out = [f"candidate policy {self.policy_digest}"]
        for (purpose, requester), group in sorted(self.groups.items()):
            kinds = ", ".join(f"{group.flips[k]} {k}" for k in _FLIP_KINDS if group.flips[k])
            line = f"{purpose} / {requester}: {group.replayed} replayed, {group.flipped} flipped"
            out.append(line + (f" ({kinds})" if kinds else ""))
            for name, changes in sorted(group.datasets.items()):
                kinds = ", ".join(
                    f"{changes.flips[k]} {k}" for k in _FLIP_KINDS if changes.flips[k]
                )
                out.append(f"  {name}: {kinds}")
                for reason, n in changes.reasons.most_common():
                    out.append(f"    {n}: {reason}")
                for field_name, ops in sorted(changes.field_ops.items()):
                    for change, n in ops.most_common():
                        out.append(f"    {field_name}: {change} ({n})")
        skipped = sum(self.skipped.values())
        period = f" since {self.since} ({self.before_since} before it)" if self.since else ""
        out.append(
            f"replayed {self.replayed} decisions{period}: {self.unchanged} unchanged,"
            f" {self.flipped} flipped; {skipped} entries skipped"
        )
        out.extend(f"  skipped {n}: {why}" for why, n in sorted(self.skipped.items()))
        return out


def read_decisions(
    rows: Iterable[tuple[int, bytes, bytes]],
    report: ReplayReport,
    since: datetime | None = None,
) -> Iterator[LoggedDecision]:
    """The decision entries among ``rows`` (an audit reader's), in log order.

    Counts every row in ``report``: read, before ``since``, or skipped and why.
    """
    for seq, _prev, body in rows:
        report.entries += 1
        try:
            content = json.loads(body)
        except ValueError:
            report.skipped["unreadable entry"] += 1
            continue
        if not isinstance(content, dict):
            report.skipped["unreadable entry"] += 1
            continue
        if since is not None:
            after = _at_or_after(content.get("time"), since)
            if after is None:
                report.skipped["no readable time"] += 1
                continue
            if not after:
                report.before_since += 1
                continue
        kind = content.get("kind")
        if kind is not None:
            report.skipped[f"not a decision ({kind} entry)"] += 1
            continue
        decision = content.get("decision")
        if decision == "error":
            report.skipped[f"logged as an error ({content.get('error') or 'no code'})"] += 1
            continue
        policy_input = content.get("policy_input")
        ops = content.get("field_ops")
        if decision not in ("allow", "deny") or not isinstance(ops, dict):
            report.skipped["unreadable entry"] += 1
            continue
        if not isinstance(policy_input, dict) or not policy_input:
            report.skipped["no policy input stored"] += 1
            continue
        yield LoggedDecision(
            seq=seq,
            purpose=str(content.get("purpose", "")),
            requester=str(content.get("requester", "")),
            dataset=str(content.get("dataset", "")),
            allow=decision == "allow",
            field_ops=ops,
            policy_input=policy_input,
        )


def replay(
    bundle: PolicyBundle,
    rows: Iterable[tuple[int, bytes, bytes]],
    *,
    since: datetime | None = None,
    workers: int = 2,
    timeout_s: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay the decision entries of ``rows`` against ``bundle``; see the module docstring.

    ``progress`` is called with the number of entries read since its last call. Raises
    PolicyUnavailable when the candidate can no longer be evaluated at all.
    """
    report = ReplayReport(
        policy_digest=bundle.digest,
        since=since.isoformat() if since is not None else None,
    )
    started = time.perf_counter()
    asyncio.run(_replay(bundle, rows, report, since, workers, timeout_s, progress))
    report.elapsed_s = time.perf_counter() - started
    return report


async def _replay(
    bundle: PolicyBundle,
    rows: Iterable[tuple[int, bytes, bytes]],
    report: ReplayReport,
    since: datetime | None,
    workers: int,
    timeout_s: float,
    progress: Callable[[int], None] | None,
) -> None:
    engine = EmbeddedEngine(bundle, timeout_s=timeout_s, workers=workers)
    window = workers * _IN_FLIGHT_PER_WORKER
    reported = 0
    try:
        batch: list[LoggedDecision] = []
        for logged in read_decisions(rows, report, since):
            batch.append(logged)
            if len(batch) == window:
                await _decide(engine, batch, report)
                batch = []
                if progress is not None:
                    progress(report.entries - reported)
                    reported = report.entries
        await _decide(engine, batch, report)
        if progress is not None:
            progress(report.entries - reported)
    finally:
        await engine.aclose()


async def _decide(
    engine: EmbeddedEngine, batch: list[LoggedDecision], report: ReplayReport
) -> None:
    outcomes = await asyncio.gather(
        *(engine.decide_fresh(logged.policy_input) for logged in batch), return_exceptions=True
    )
    for logged, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, PolicyUnavailable):
            raise PolicyUnavailable(
                f"replay stopped at entry {logged.seq}: the candidate policy cannot be"
                f" evaluated ({outcome.detail})"
            )
        if isinstance(outcome, BaseException) and not isinstance(outcome, PolicyError):
            raise outcome
        _compare(logged, outcome, report)


def _compare(logged: LoggedDecision, outcome: Decision | PolicyError, report: ReplayReport) -> None:
    key = (logged.purpose, logged.requester)
    group = report.groups.get(key)
    if group is None:
        group = report.groups[key] = GroupReport(logged.purpose, logged.requester)
    group.replayed += 1
    old = "allow" if logged.allow else "deny"
    changes: Counter[str] = Counter()
    reasons: list[str] = []
    ops: dict[str, str] = {}
    if isinstance(outcome, PolicyError):
        kind = f"{old}→error"
        reasons = [f"{outcome.code}: {outcome.detail}"]
    elif outcome.allow != logged.allow:
        kind = f"{old}→{'allow' if outcome.allow else 'deny'}"
        reasons = list(outcome.reasons) if not outcome.allow else []
    else:
        if outcome.allow:
            ops = _op_changes(logged.field_ops, outcome.field_ops)
        if not ops:
            group.unchanged += 1
            return
        kind = "field ops"
    changes[kind] += 1
    group.flips.update(changes)
    dataset = group.datasets.get(logged.dataset)
    if dataset is None:
        dataset = group.datasets[logged.dataset] = DatasetChanges()
    dataset.flips.update(changes)
    dataset.reasons.update(reasons)
    for name, change in ops.items():
        dataset.field_ops.setdefault(name, Counter())[change] += 1


def _op_changes(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    return {
        name: f"{old.get(name, NOT_RELEASED)} → {new.get(name, NOT_RELEASED)}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }


def _at_or_after(stamp: object, since: datetime) -> bool | None:
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when >= since
