"""The DPO's searches of the audit log: filtered pages of requests, an entry, a request,
a streamed selection, and the entries about a subject or a pseudonym.

A *request* is one partner call: the decision entries of one disclosure (they share its
``disclosure_id``), or an entry that is a request of its own (a refusal, a refusal
summary, a policy change, a re-identification), keyed ``seq:<n>``. The console lists
requests, newest first, each with *every* entry of the request, even when only some of
them match the filter (a disclosure of three datasets of which one was denied shows all
three under "decision = deny"). A request stands at the place of its newest matching
entry, and pages are keyset pages: `RequestPage.next_before` is the seq to pass as
`before` for the next, older page, so page 100 costs what page 1 does.

Filters are validated here (`EntryFilter` raises `ValueError` with a message fit for the
DPO) and run as indexed queries by the storage (`audit.storage.sqlite.queries`); only
this module parses bodies.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, time, timedelta

from audit.entry import LogRecord, record_from_body
from audit.errors import AuditError
from audit.reader import AuditReader
from audit.storage.interface import ChainRow, LogQueries, Selection

__all__ = [
    "DECISIONS",
    "KINDS",
    "EntryFilter",
    "LoggedEntry",
    "RequestGroup",
    "RequestPage",
    "entries_of_request",
    "entries_with_pseudonym_refs",
    "entries_with_subject_refs",
    "get_entry",
    "iter_selection",
    "page_requests",
]

DECISIONS = ("allow", "deny", "error", "refused", "policy-change", "reidentification")
"""The values of an entry's ``decision``: a dataset decision's, or its kind's for others."""
KINDS = ("decision", "refusal", "refusal-summary", "policy-change", "reidentification")
"""The kinds of entry: ``decision`` is a dataset decision (a body with no ``kind``)."""

MAX_LIMIT = 500
"""Most requests on one page."""
MAX_REFS = 1000
"""Most references in one search by subject or pseudonym."""
_MAX_VALUE = 256
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_EQUAL: tuple[str, ...] = ("requester", "provider", "dataset", "purpose", "decision")
_EQUAL += ("case_ref", "policy_digest", "disclosure_id")
_CHUNK = 4  # entries read per request wanted, per round: most requests have one to three


@dataclass(frozen=True)
class EntryFilter:
    """What the DPO is looking for; every field given must hold (None: any).

    Raises `ValueError` naming the field and what it accepts for a value it cannot be.
    """

    requester: str | None = None
    provider: str | None = None
    dataset: str | None = None
    purpose: str | None = None
    decision: str | None = None
    """One of `DECISIONS`."""
    refusal: str | None = None
    """``policy`` (a deny), ``error``, or a refusal's problem code (e.g.
    ``unknown-dataset``: refusals with it, and refusal summaries that count it)."""
    since: str | None = None
    """RFC 3339 (or a date: midnight UTC), inclusive."""
    until: str | None = None
    """RFC 3339 (or a date: midnight UTC), exclusive."""
    case_ref: str | None = None
    policy_digest: str | None = None
    disclosure_id: str | None = None
    kind: str | None = None
    """One of `KINDS`."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > _MAX_VALUE:
                raise ValueError(f"{item.name} must be a text of 1 to {_MAX_VALUE} characters")
            if not value.isprintable():
                raise ValueError(f"{item.name} must not hold control characters")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.refusal is not None and not _CODE.fullmatch(self.refusal):
            raise ValueError(
                "refusal must be policy, error or a problem code (lower-case letters, "
                "digits and hyphens)"
            )
        since, until = _moment(self.since, "since"), _moment(self.until, "until")
        if since is not None and until is not None and until < since:
            raise ValueError("until must not be before since")

    def selection(self) -> Selection:
        """The filter as the storage runs it."""
        equal = [(name, value) for name in _EQUAL if (value := getattr(self, name)) is not None]
        problem = None
        if self.refusal == "policy":
            equal.append(("decision", "deny"))
        elif self.refusal == "error":
            equal.append(("decision", "error"))
        elif self.refusal is not None:
            problem = self.refusal
        if self.kind is not None and self.kind != "decision":
            equal.append(("kind", self.kind))
        return Selection(
            equal=tuple(equal),
            decisions_only=self.kind == "decision",
            problem=problem,
            since=_seconds(_moment(self.since, "since")),
            until=_seconds(_moment(self.until, "until")),
        )


@dataclass(frozen=True)
class LoggedEntry:
    """One stored entry, with its body parsed."""

    seq: int
    prev: bytes
    body: bytes
    record: LogRecord


@dataclass(frozen=True)
class RequestGroup:
    """One request: a disclosure's decision entries, or one entry that is its own."""

    key: str
    """The disclosure id, or ``seq:<n>`` for an entry that is a request of its own."""
    entries: list[LoggedEntry] = field(default_factory=list)
    """Every entry of the request (not only those that matched), in seq order."""


@dataclass(frozen=True)
class RequestPage:
    groups: list[RequestGroup]
    """Newest first."""
    next_before: int | None
    """Pass as `before` for the next, older page; None when this is the last."""


def page_requests(
    reader: AuditReader, flt: EntryFilter, *, before: int | None = None, limit: int = 25
) -> RequestPage:
    """Up to `limit` requests with an entry that matches `flt`, newest first, below seq
    `before` (None: from the newest). Raises `ValueError` for a limit out of range."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
    if before is not None and before < 1:
        raise ValueError("before must be a positive sequence number")
    selection = flt.selection()
    with reader.queries() as queries:
        places = _requests(queries, selection, before, limit + 1)
        more = len(places) > limit
        places = places[:limit]
        disclosures = [key for _, key in places if not key.startswith("seq:")]
        own = [seq for seq, key in places if key.startswith("seq:")]
        rows = queries.disclosures(disclosures) + queries.entries_at(own)
    by_key: dict[str, list[LoggedEntry]] = {key: [] for _, key in places}
    for row in sorted(rows):
        entry = _logged(row)
        by_key[_key(entry)].append(entry)
    groups = [RequestGroup(key, by_key[key]) for _, key in places]
    return RequestPage(groups, places[-1][0] if more else None)


def get_entry(reader: AuditReader, seq: int) -> LoggedEntry | None:
    """Entry `seq`, parsed; None when there is none."""
    with reader.queries() as queries:
        row = queries.entry(seq)
    return None if row is None else _logged(row)


def entries_of_request(reader: AuditReader, disclosure_id: str) -> list[LoggedEntry]:
    """Every decision entry of the disclosure, in seq order (none for an unknown id)."""
    with reader.queries() as queries:
        return [_logged(row) for row in queries.disclosures([disclosure_id])]


def iter_selection(reader: AuditReader, flt: EntryFilter) -> Iterator[LoggedEntry]:
    """Every entry that matches `flt`, in seq order, streamed in chunks from one view of
    the log: memory stays constant however many match (exports)."""
    selection = flt.selection()
    with reader.queries() as queries:
        for row in queries.matching(selection):
            yield _logged(row)


def entries_with_subject_refs(reader: AuditReader, refs: Collection[str]) -> list[LoggedEntry]:
    """The entries whose ``subject_refs`` hold any of `refs`, in seq order."""
    return _with_refs(reader, "subject_refs", refs)


def entries_with_pseudonym_refs(reader: AuditReader, refs: Collection[str]) -> list[LoggedEntry]:
    """The entries whose ``pseudonym_refs`` hold any of `refs`, in seq order."""
    return _with_refs(reader, "pseudonym_refs", refs)


def _with_refs(reader: AuditReader, table: str, refs: Collection[str]) -> list[LoggedEntry]:
    wanted = sorted(set(refs))
    if len(wanted) > MAX_REFS:
        raise ValueError(f"a search takes at most {MAX_REFS} references")
    if not all(isinstance(ref, str) for ref in wanted):
        raise ValueError("references are texts")
    if not wanted:
        return []
    with reader.queries() as queries:
        return [_logged(row) for row in queries.with_refs(table, wanted)]


def _requests(
    queries: LogQueries, selection: Selection, before: int | None, wanted: int
) -> list[tuple[int, str]]:
    """Up to `wanted` requests (the seq of their newest matching entry, their key) below
    `before`, newest first. A disclosure whose entries matched at or above `before` was
    on an earlier page already and is left out."""
    places: list[tuple[int, str]] = []
    seen: set[str] = set()
    below = before
    while len(places) < wanted:
        rows = queries.newest(selection, below, _CHUNK * wanted)
        for seq, disclosure_id in rows:
            key = f"seq:{seq}" if disclosure_id is None else disclosure_id
            if key in seen:
                continue
            seen.add(key)
            if (
                disclosure_id is not None
                and before is not None
                and queries.matches_from(selection, disclosure_id, before)
            ):
                continue  # shown already, where its newest matching entry stands
            places.append((seq, key))
            if len(places) == wanted:
                break
        if len(rows) < _CHUNK * wanted:
            break
        below = rows[-1][0]
    return places


def _logged(row: ChainRow) -> LoggedEntry:
    seq, prev, body = row
    try:
        record = record_from_body(body)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"entry {seq} is not a record this version of Doelpoort can read") from exc
    return LoggedEntry(seq, bytes(prev), bytes(body), record)


def _key(entry: LoggedEntry) -> str:
    """The request an entry belongs to."""
    record = entry.record
    if getattr(record, "kind", None) is None:
        disclosure_id = getattr(record, "disclosure_id", None)
        if isinstance(disclosure_id, str):
            return disclosure_id
    return f"seq:{entry.seq}"


def _moment(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 time (with ``Z`` or an offset) or a date (midnight UTC), as UTC."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 time or a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must give its offset from UTC (e.g. 2026-06-01T09:00:00Z)")
    return moment.astimezone(UTC)


def _seconds(moment: datetime | None) -> str | None:
    """`moment` rounded up to a whole second: entry times are compared to the second."""
    if moment is None:
        return None
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")
