"""The DPO's statistics over a period of the audit log, and the flags worth a look.

Two things are counted and never mixed: **requests** (one partner call: a disclosure
request is every decision sharing a ``disclosure_id``; a refused request is its refusal
entry, or one count of a refusal summary) and **dataset decisions** (one entry per
dataset of a disclosure request: allow, deny or error). Every table labels which it
counts. The database does the counting (`audit.storage.sqlite.statistics`); this module
shapes its rows, works out local office hours and raises the flags.

The flags are hints for a person, each with its numbers and the rule that raised it;
their thresholds are the constants below. Months are UTC months (``YYYY-MM`` of the
entry's RFC 3339 time); office hours are local to the Netherlands (Europe/Amsterdam).
See docs/dpo.md, "Statistics and the annual report".
"""

from __future__ import annotations

import statistics as stats
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from audit.clock import rfc3339
from audit.query import EntryFilter
from audit.reader import AuditReader

__all__ = [
    "FISHING_MIN_REQUESTS",
    "FISHING_REFUSAL_RATE",
    "OFFICE_HOURS",
    "OFF_HOURS_MIN_REQUESTS",
    "OFF_HOURS_SHARE",
    "PROBING_MIN_REQUESTS",
    "VOLUME_JUMP_FACTOR",
    "VOLUME_JUMP_MIN_REQUESTS",
    "DecisionTally",
    "Flag",
    "RequestTally",
    "Row",
    "Statistics",
    "statistics",
]

VOLUME_JUMP_FACTOR = 3.0
"""A requester's month is a jump when it made more than this many times the median of
its own previous months (from its first month in the log, quiet months counted as 0)."""
VOLUME_JUMP_MIN_REQUESTS = 20
"""… and at least this many requests that month (a partner going from 2 to 7 is no
news)."""
VOLUME_JUMP_MIN_HISTORY = 2
"""… and it has at least this many previous months to compare with."""
FISHING_REFUSAL_RATE = 0.3
"""Many refusals (fishing): a requester whose requests were refused — by the policy or
before any decision — at this rate or more in the period …"""
FISHING_MIN_REQUESTS = 10
"""… out of at least this many requests."""
PROBING_MIN_REQUESTS = 3
"""Probing: this many requests or more naming a dataset the catalog does not know
(refusal ``unknown-dataset``), a purpose the register does not hold (denied as "not in
the register"), or names not fit to record (refusals with ``unrecorded_names``)."""
OFFICE_HOURS = (7, 19)
"""Office hours, local time in the Netherlands: from 07:00 to 19:00, Monday to Friday."""
OFF_HOURS_SHARE = 0.2
"""Outside office hours: a requester with at least this share of its requests outside
them …"""
OFF_HOURS_MIN_REQUESTS = 5
"""… and at least this many such requests."""
LOCAL_TIME = ZoneInfo("Europe/Amsterdam")
NO_PURPOSE = "(none recorded)"
"""The purpose row of refused requests whose body named no purpose fit to record."""

PROBING_PROBLEMS = frozenset({"unknown-dataset"})
"""Refusal problems that mean a name was tried that the deployment does not know."""


@dataclass(frozen=True)
class RequestTally:
    """Requests (partner calls), by outcome."""

    requests: int = 0
    released: int = 0
    """Something was released (some datasets may have been denied: see partly_refused)."""
    partly_refused: int = 0
    """Of the released, some datasets were denied by the policy."""
    refused_by_policy: int = 0
    """Every dataset decision was a deny (403 purpose-denied)."""
    refused_before_decision: int = 0
    """Refused before any decision (refusal entries and summaries: 4xx)."""
    errors: int = 0
    """A decision failed (nothing was released)."""

    @property
    def refused(self) -> int:
        return self.refused_by_policy + self.refused_before_decision

    @property
    def refusal_rate(self) -> float:
        """Requests refused / requests (0 for none)."""
        return self.refused / self.requests if self.requests else 0.0

    def __add__(self, other: RequestTally) -> RequestTally:
        return RequestTally(
            self.requests + other.requests,
            self.released + other.released,
            self.partly_refused + other.partly_refused,
            self.refused_by_policy + other.refused_by_policy,
            self.refused_before_decision + other.refused_before_decision,
            self.errors + other.errors,
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "refused": self.refused, "refusal_rate": self.refusal_rate}


@dataclass(frozen=True)
class DecisionTally:
    """Dataset decisions (audit entries of kind decision), by decision."""

    decisions: int = 0
    allowed: int = 0
    denied: int = 0
    errors: int = 0

    @property
    def denial_rate(self) -> float:
        """Decisions denied / decisions (0 for none)."""
        return self.denied / self.decisions if self.decisions else 0.0

    def __add__(self, other: DecisionTally) -> DecisionTally:
        return DecisionTally(
            self.decisions + other.decisions,
            self.allowed + other.allowed,
            self.denied + other.denied,
            self.errors + other.errors,
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "denial_rate": self.denial_rate}


@dataclass(frozen=True)
class Row:
    """One line of a table: requests and dataset decisions for one key."""

    key: str
    requests: RequestTally
    decisions: DecisionTally

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "requests": self.requests.as_json(),
            "decisions": self.decisions.as_json(),
        }


@dataclass(frozen=True)
class FieldTally:
    """Fields released by allowed decisions: in clear (op ``keep``), minimised (every
    other op that releases something), dropped (op ``drop``: not released)."""

    clear: int = 0
    minimised: int = 0
    dropped: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    by_purpose: dict[str, dict[str, int]] = field(default_factory=dict)
    """purpose → {"clear", "minimised", "dropped"} → fields."""


@dataclass(frozen=True)
class Reidentifications:
    """Escrows released to a DPO (entries of kind ``reidentification``)."""

    total: int = 0
    by_dpo: dict[str, int] = field(default_factory=dict)
    by_month: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyVersion:
    """A policy set that made decisions in the period."""

    digest: str
    first_used: str
    last_used: str
    decisions: int
    archived: bool
    """Whether the log's archive holds its text (`AuditReader.policy_set`)."""


@dataclass(frozen=True)
class Flag:
    """Something a DPO should look at: what, about whom, the numbers, and the rule."""

    kind: str
    """volume-jump | many-refusals | probing | outside-office-hours"""
    requester: str
    summary: str
    rule: str
    numbers: dict[str, int | float | str]


@dataclass(frozen=True)
class Statistics:
    """Everything the statistics page and the annual report show for one period."""

    since: str | None
    until: str | None
    year: int | None
    generated_at: str
    requests: RequestTally
    decisions: DecisionTally
    by_requester: list[Row]
    by_purpose: list[Row]
    by_provider: list[Row]
    """Per provider, ``requests`` are the requests that asked it for a dataset; of them
    ``refused_by_policy`` the ones it was denied for."""
    by_month: list[Row]
    requests_by_requester_month: dict[str, dict[str, int]]
    refusals_by_problem: dict[str, int]
    fields: FieldTally
    reidentifications: Reidentifications
    policy_versions: list[PolicyVersion]
    archived_policy_sets: list[tuple[str, str]]
    """Every set the log's archive holds: (digest, first used)."""
    policy_changes: dict[str, int]
    legal_bases: dict[str, list[str]]
    """purpose → the legal bases its decisions recorded (more than one when the register
    changed in the period)."""
    flags: list[Flag]
    months: list[str]

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict (the statistics page's JSON twin)."""
        return {
            "since": self.since,
            "until": self.until,
            "year": self.year,
            "generated_at": self.generated_at,
            "requests": self.requests.as_json(),
            "decisions": self.decisions.as_json(),
            "by_requester": [row.as_json() for row in self.by_requester],
            "by_purpose": [row.as_json() for row in self.by_purpose],
            "by_provider": [row.as_json() for row in self.by_provider],
            "by_month": [row.as_json() for row in self.by_month],
            "requests_by_requester_month": self.requests_by_requester_month,
            "refusals_by_problem": self.refusals_by_problem,
            "fields": asdict(self.fields),
            "reidentifications": asdict(self.reidentifications),
            "policy_versions": [asdict(v) for v in self.policy_versions],
            "archived_policy_sets": [
                {"digest": d, "first_used": f} for d, f in self.archived_policy_sets
            ],
            "policy_changes": self.policy_changes,
            "legal_bases": self.legal_bases,
            "flags": [asdict(flag) for flag in self.flags],
            "months": self.months,
        }


def year_bounds(year: int) -> tuple[str, str]:
    """[since, until) of a calendar year, in UTC."""
    if not 1970 <= year <= 9998:
        raise ValueError("year must be between 1970 and 9998")
    return f"{year:04d}-01-01T00:00:00Z", f"{year + 1:04d}-01-01T00:00:00Z"


def statistics(
    reader: AuditReader,
    *,
    year: int | None = None,
    since: str | None = None,
    until: str | None = None,
    now: datetime,
) -> Statistics:
    """The statistics of entries with ``since <= time < until`` (RFC 3339 UTC; None:
    unbounded), or of a calendar ``year`` (UTC), as of ``now``."""
    if year is not None:
        if since is not None or until is not None:
            raise ValueError("give a year or a period, not both")
        since, until = year_bounds(year)
    # The period as the console's searches read it: validated, to the second.
    period = EntryFilter(since=since, until=until).selection()
    rows = reader.statistics_rows(period.since, period.until)
    builder = _Builder()
    versions: dict[str, list[Any]] = {}
    bases: dict[str, Counter[str]] = defaultdict(Counter)
    for (
        requester,
        purpose,
        provider,
        month,
        decision,
        digest,
        basis,
        first,
        last,
        n,
    ) in rows.decisions:
        builder.decision(requester, purpose, provider, month, decision, n)
        seen = versions.setdefault(digest or "", [first, last, 0])
        seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), seen[2] + n
        if basis:
            bases[purpose][basis] += n
    providers: dict[str, RequestTally] = defaultdict(RequestTally)
    for requester, purpose, hour, outcome, unregistered, asked, denied_by, n in rows.requests:
        builder.request(requester, purpose, hour, _tally(outcome, n))
        builder.probes[requester] += unregistered
        denied = set(denied_by.split(",")) if denied_by else set()
        for provider in asked.split(",") if asked else ():
            refused = n if provider in denied else 0
            providers[provider] += RequestTally(n, n - refused, 0, refused, 0, 0)
    for requester, refused_purpose, hour, problem, unrecorded, n in rows.refusals:
        builder.request(
            requester, refused_purpose or NO_PURPOSE, hour, RequestTally(n, 0, 0, 0, n, 0)
        )
        builder.problems[problem] += n
        builder.probes[requester] += unrecorded + (n if problem in PROBING_PROBLEMS else 0)
    for requester, hour, problem, n in rows.summaries:
        builder.request(requester, NO_PURPOSE, hour, RequestTally(n, 0, 0, 0, n, 0))
        builder.problems[problem] += n
        builder.probes[requester] += n if problem in PROBING_PROBLEMS else 0
    archived = reader.policy_sets()
    archived_digests = {entry.digest for entry in archived}
    policy_versions = sorted(
        (
            PolicyVersion(digest, first, last, n, digest in archived_digests)
            for digest, (first, last, n) in versions.items()
        ),
        key=lambda version: (version.first_used, version.digest),
    )
    history = builder.monthly_requests(rows.history)
    return Statistics(
        since=since,
        until=until,
        year=year,
        generated_at=rfc3339(now),
        requests=sum(builder.by_requester.values(), RequestTally()),
        decisions=sum(builder.by_requester_decisions.values(), DecisionTally()),
        by_requester=_table(builder.by_requester, builder.by_requester_decisions),
        by_purpose=_table(builder.by_purpose, builder.by_purpose_decisions),
        by_provider=_table(providers, builder.by_provider_decisions),
        by_month=_table(builder.by_month, builder.by_month_decisions, by_key=True),
        requests_by_requester_month={
            requester: dict(sorted(months.items()))
            for requester, months in sorted(builder.requester_months.items())
        },
        refusals_by_problem=dict(builder.problems.most_common()),
        fields=_fields(rows.field_ops),
        reidentifications=_reidentifications(rows.reidentifications),
        policy_versions=policy_versions,
        archived_policy_sets=[(entry.digest, entry.first_used) for entry in archived],
        policy_changes=dict(sorted((outcome, n) for outcome, n in rows.policy_changes)),
        legal_bases={
            purpose: [basis for basis, _n in counts.most_common()]
            for purpose, counts in sorted(bases.items())
        },
        flags=[
            *_volume_jumps(history, builder.requester_months),
            *_many_refusals(builder.by_requester),
            *_probing(builder.probes, builder.by_requester),
            *_outside_office_hours(builder.off_hours, builder.by_requester),
        ],
        months=sorted(builder.by_month),
    )


def _tally(outcome: str, n: int) -> RequestTally:
    if outcome == "released":
        return RequestTally(requests=n, released=n)
    if outcome == "partly-refused":
        return RequestTally(requests=n, released=n, partly_refused=n)
    if outcome == "refused":
        return RequestTally(requests=n, refused_by_policy=n)
    return RequestTally(requests=n, errors=n)


class _Builder:
    """Sums the database's rows into the tables."""

    def __init__(self) -> None:
        self.by_requester: dict[str, RequestTally] = defaultdict(RequestTally)
        self.by_purpose: dict[str, RequestTally] = defaultdict(RequestTally)
        self.by_month: dict[str, RequestTally] = defaultdict(RequestTally)
        self.by_requester_decisions: dict[str, DecisionTally] = defaultdict(DecisionTally)
        self.by_purpose_decisions: dict[str, DecisionTally] = defaultdict(DecisionTally)
        self.by_provider_decisions: dict[str, DecisionTally] = defaultdict(DecisionTally)
        self.by_month_decisions: dict[str, DecisionTally] = defaultdict(DecisionTally)
        self.requester_months: dict[str, Counter[str]] = defaultdict(Counter)
        self.off_hours: Counter[str] = Counter()
        self.probes: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self._local: dict[str, bool] = {}

    def decision(
        self, requester: str, purpose: str, provider: str, month: str, decision: str, n: int
    ) -> None:
        tally = DecisionTally(
            decisions=n,
            allowed=n if decision == "allow" else 0,
            denied=n if decision == "deny" else 0,
            errors=n if decision == "error" else 0,
        )
        self.by_requester_decisions[requester] += tally
        self.by_purpose_decisions[purpose] += tally
        self.by_month_decisions[month] += tally
        if provider:
            self.by_provider_decisions[provider] += tally

    def request(self, requester: str, purpose: str, hour: str, tally: RequestTally) -> None:
        month = hour[:7]
        self.by_requester[requester] += tally
        self.by_purpose[purpose] += tally
        self.by_month[month] += tally
        self.requester_months[requester][month] += tally.requests
        if self._outside_office_hours(hour):
            self.off_hours[requester] += tally.requests

    def _outside_office_hours(self, hour: str) -> bool:
        """Whether the UTC hour ``YYYY-MM-DDTHH`` falls outside local office hours (the
        Netherlands' offsets are whole hours, so a UTC hour is one local hour)."""
        known = self._local.get(hour)
        if known is None:
            local = datetime.fromisoformat(f"{hour}:00:00+00:00").astimezone(LOCAL_TIME)
            start, end = OFFICE_HOURS
            known = local.weekday() >= 5 or not start <= local.hour < end
            self._local[hour] = known
        return known

    def monthly_requests(self, history: Iterable[tuple[str, str, int]]) -> dict[str, Counter[str]]:
        """Each requester's requests per month: before the period and in it."""
        months: dict[str, Counter[str]] = defaultdict(Counter)
        for requester, month, n in history:
            months[requester][month] += n
        for requester, counts in self.requester_months.items():
            months[requester].update(counts)
        return months


def _table(
    requests: Mapping[str, RequestTally],
    decisions: Mapping[str, DecisionTally],
    *,
    by_key: bool = False,
) -> list[Row]:
    keys = set(requests) | set(decisions)
    rows = [
        Row(k, requests.get(k, RequestTally()), decisions.get(k, DecisionTally())) for k in keys
    ]
    if by_key:
        return sorted(rows, key=lambda row: row.key)
    return sorted(rows, key=lambda row: (-row.requests.requests, -row.decisions.decisions, row.key))


def _fields(rows: Iterable[tuple[str, str, int]]) -> FieldTally:
    by_op: Counter[str] = Counter()
    by_purpose: dict[str, Counter[str]] = defaultdict(Counter)
    for purpose, op, n in rows:
        by_op[op] += n
        by_purpose[purpose][_form(op)] += n
    forms: Counter[str] = Counter()
    for counts in by_purpose.values():
        forms.update(counts)
    return FieldTally(
        clear=forms["clear"],
        minimised=forms["minimised"],
        dropped=forms["dropped"],
        by_op=dict(sorted(by_op.items())),
        by_purpose={
            purpose: {form: counts[form] for form in ("clear", "minimised", "dropped")}
            for purpose, counts in sorted(by_purpose.items())
        },
    )


def _form(op: str) -> str:
    """In which form a field op releases a field: ``keep`` in clear, ``drop`` not at all,
    every other op (pseudonymise, mask, exists, generalise:…) minimised."""
    if op == "keep":
        return "clear"
    if op == "drop":
        return "dropped"
    return "minimised"


def _reidentifications(rows: Iterable[tuple[str, str, int]]) -> Reidentifications:
    by_dpo: Counter[str] = Counter()
    by_month: Counter[str] = Counter()
    for dpo, month, n in rows:
        by_dpo[dpo] += n
        by_month[month] += n
    return Reidentifications(
        total=sum(by_dpo.values()),
        by_dpo=dict(sorted(by_dpo.items())),
        by_month=dict(sorted(by_month.items())),
    )


def _month_range(first: str, last: str) -> list[str]:
    """Every ``YYYY-MM`` from ``first`` to ``last``, both included."""
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _volume_jumps(
    history: Mapping[str, Counter[str]], in_period: Mapping[str, Counter[str]]
) -> list[Flag]:
    flags = []
    for requester, counts in sorted(history.items()):
        months = _month_range(min(counts), max(counts))
        for i, month in enumerate(months):
            if month not in in_period.get(requester, {}) or i < VOLUME_JUMP_MIN_HISTORY:
                continue
            n = counts[month]
            median = stats.median(counts[m] for m in months[:i])
            if n >= VOLUME_JUMP_MIN_REQUESTS and n > VOLUME_JUMP_FACTOR * median:
                flags.append(
                    Flag(
                        kind="volume-jump",
                        requester=requester,
                        summary=(
                            f"{requester} made {n} requests in {month}, against a median of "
                            f"{median:g} a month before"
                        ),
                        rule=(
                            f"more than {VOLUME_JUMP_FACTOR:g} times the median of its own "
                            f"previous months (at least {VOLUME_JUMP_MIN_HISTORY} of them) "
                            f"and at least {VOLUME_JUMP_MIN_REQUESTS} requests"
                        ),
                        numbers={
                            "month": month,
                            "requests": n,
                            "median_before": median,
                            "months_before": i,
                        },
                    )
                )
    return flags


def _many_refusals(by_requester: Mapping[str, RequestTally]) -> list[Flag]:
    return [
        Flag(
            kind="many-refusals",
            requester=requester,
            summary=(
                f"{tally.refused} of {requester}'s {tally.requests} requests were refused "
                f"({tally.refusal_rate:.0%})"
            ),
            rule=(
                f"a refusal rate of {FISHING_REFUSAL_RATE:.0%} or more over at least "
                f"{FISHING_MIN_REQUESTS} requests (possible fishing)"
            ),
            numbers={
                "requests": tally.requests,
                "refused": tally.refused,
                "refused_by_policy": tally.refused_by_policy,
                "refused_before_decision": tally.refused_before_decision,
                "refusal_rate": round(tally.refusal_rate, 4),
            },
        )
        for requester, tally in sorted(by_requester.items())
        if tally.requests >= FISHING_MIN_REQUESTS and tally.refusal_rate >= FISHING_REFUSAL_RATE
    ]


def _probing(probes: Mapping[str, int], by_requester: Mapping[str, RequestTally]) -> list[Flag]:
    return [
        Flag(
            kind="probing",
            requester=requester,
            summary=f"{requester} named unknown datasets or purposes in {n} requests",
            rule=(
                f"at least {PROBING_MIN_REQUESTS} requests naming a dataset the catalog does "
                "not know, a purpose the register does not hold, or names unfit to record"
            ),
            numbers={"probing_requests": n, "requests": by_requester[requester].requests},
        )
        for requester, n in sorted(probes.items())
        if n >= PROBING_MIN_REQUESTS
    ]


def _outside_office_hours(
    off_hours: Mapping[str, int], by_requester: Mapping[str, RequestTally]
) -> list[Flag]:
    start, end = OFFICE_HOURS
    flags = []
    for requester, n in sorted(off_hours.items()):
        total = by_requester[requester].requests
        if n >= OFF_HOURS_MIN_REQUESTS and n / total >= OFF_HOURS_SHARE:
            flags.append(
                Flag(
                    kind="outside-office-hours",
                    requester=requester,
                    summary=(
                        f"{n} of {requester}'s {total} requests came outside office hours "
                        f"({n / total:.0%})"
                    ),
                    rule=(
                        f"at least {OFF_HOURS_MIN_REQUESTS} requests and {OFF_HOURS_SHARE:.0%} "
                        f"of its requests outside {start:02d}:00 to {end:02d}:00 Monday to Friday, "
                        "Dutch local time"
                    ),
                    numbers={
                        "outside_office_hours": n,
                        "requests": total,
                        "share": round(n / total, 4),
                    },
                )
            )
    return flags
