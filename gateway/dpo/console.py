"""The DPO console's own pages (issue 14, point 1): the overview, the decision list grouped
by request, a request, an entry with its explanation, an archived policy set, and the
log's integrity.

Each page is one coroutine returning JSON-able data (`gateway.dpo.pages.twin`: the HTML
page and its ``/dpo/api/`` twin). Query parameters arrive as text and are checked here,
so a bad filter value is a 422 problem naming the parameter (an error page in HTML), never
a 500. What the pages read is `audit.query`'s; this module only shapes it for people.
Nothing here takes a subject's identifier: those travel in POST bodies (subject access).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from audit.clock import rfc3339, utc_now
from audit.entry import (
    AuditRecord,
    LogRecord,
    PolicyChangeRecord,
    RefusalRecord,
    RefusalSummaryRecord,
    entry_leaf_hash,
)
from audit.errors import PolicySetMismatch
from audit.policy_sets import DIGEST_PATTERN
from audit.query import (
    DECISIONS,
    KINDS,
    EntryFilter,
    LoggedEntry,
    RequestGroup,
    entries_of_request,
    get_entry,
    iter_selection,
    page_requests,
)
from audit.reader import AuditReader, StoredCheckpoint
from gateway.case_refs import check_filter
from gateway.dpo.explanation import explain_entry
from gateway.dpo.integrity import integrity_lifespan, monitor
from gateway.dpo.pages import NO_STORE, read_log, twin
from gateway.errors import DoelpoortError, DpoOnly, InvalidRequest, NotFound
from gateway.ids import DATASET_ID_PATTERN, DISCLOSURE_ID_PATTERN, ID_PATTERN, MAX_SEQ
from gateway.peers import require_dpo, rt

__all__ = ["router"]

# The log is verified once at start-up, in the background (`gateway.dpo.integrity`).
router = APIRouter(lifespan=integrity_lifespan)

PAGE_SIZE = 25
"""Requests per page of the decision list."""

_ID = re.compile(ID_PATTERN)
_DATASET = re.compile(DATASET_ID_PATTERN)
_CASE_REF = re.compile(r"[A-Za-z0-9/._-]{1,64}")
_DISCLOSURE_ID = re.compile(DISCLOSURE_ID_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,19}")


# -- the overview -------------------------------------------------------------------------


@twin(router, "/", "overview.html", summary="The DPO console: the log at a glance")
async def overview(request: Request) -> dict[str, Any]:
    now = utc_now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())  # Monday, 00:00 UTC

    def read(reader: AuditReader) -> dict[str, Any]:
        latest = reader.checkpoint()
        return {
            "entries": reader.count(),
            "latest_checkpoint": None if latest is None else _checkpoint(latest),
            "today": _counts(reader, today),
            "this_week": _counts(reader, week),
        }

    found = await read_log(request, read)
    latest = monitor(request).latest
    return {
        "now": rfc3339(now),
        "log": {"entries": found["entries"], "latest_checkpoint": found["latest_checkpoint"]},
        "integrity": None if latest is None else latest.as_json(),
        "periods": [
            {"label": "today", "since": rfc3339(today), **found["today"]},
            {"label": "this week", "since": rfc3339(week), **found["this_week"]},
        ],
    }


def _counts(reader: AuditReader, since: datetime) -> dict[str, int]:
    """Requests and dataset decisions since ``since`` (always both, always labelled)."""
    requests: set[str] = set()
    decisions = refusals = 0
    for entry in iter_selection(reader, EntryFilter(since=rfc3339(since))):
        record = entry.record
        if isinstance(record, AuditRecord):
            decisions += 1
            requests.add(record.disclosure_id)
        elif isinstance(record, RefusalRecord):
            refusals += 1
            requests.add(f"seq:{entry.seq}")
        elif isinstance(record, RefusalSummaryRecord):
            refusals += sum(record.counts.values())
    return {"requests": len(requests), "dataset_decisions": decisions, "refused_requests": refusals}


# -- the decision list, grouped by request ------------------------------------------------


@twin(router, "/requests", "requests.html", summary="Decisions grouped by request, filtered")
async def requests_page(
    request: Request,
    requester: str | None = None,
    provider: str | None = None,
    dataset: str | None = None,
    purpose: str | None = None,
    decision: str | None = None,
    kind: str | None = None,
    refusal: str | None = None,
    since: str | None = None,
    until: str | None = None,
    case_ref: str | None = None,
    policy_digest: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    given = {
        "requester": _checked(requester, "requester", _ID),
        "provider": _checked(provider, "provider", _ID),
        "dataset": _checked(dataset, "dataset", _DATASET),
        "purpose": _checked(purpose, "purpose", _ID),
        "decision": _blank(decision),
        "kind": _blank(kind),
        "refusal": _blank(refusal),
        "since": _blank(since),
        "until": _blank(until),
        "case_ref": check_filter(_checked(case_ref, "case_ref", _CASE_REF)),
        "policy_digest": _checked(policy_digest, "policy_digest", DIGEST_PATTERN),
    }
    try:
        flt = EntryFilter(**given)  # checks decision, kind, refusal and the period
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    older_than = _seq(before, "before")
    page = await read_log(
        request, lambda reader: page_requests(reader, flt, before=older_than, limit=PAGE_SIZE)
    )
    shown = {name: value for name, value in given.items() if value is not None}
    groups = [_group(group) for group in page.groups]
    return {
        "filter": shown,
        "choices": _choices(request),
        "requests": groups,
        "page": {
            "requests": len(groups),
            "dataset_decisions": sum(g["dataset_decisions"] for g in groups),
            "entries": sum(len(g["entries"]) for g in groups),
            # "15 denied entries were 3 requests": the entries with the decision asked for.
            "matching_entries": None
            if given["decision"] is None
            else sum(e["decision"] == given["decision"] for g in groups for e in g["entries"]),
            "before": older_than,
            "next_before": page.next_before,
            "next": None
            if page.next_before is None
            else "/dpo/requests?" + urlencode({**shown, "before": page.next_before}),
        },
    }


def _choices(request: Request) -> dict[str, list[str]]:
    """What the filters offer: the deployment's partners, datasets and purposes."""
    runtime = rt(request)
    catalog = runtime.catalog
    return {
        "requesters": sorted(catalog.partners),
        "providers": sorted({spec.provider for spec in catalog.datasets.values()}),
        "datasets": sorted(catalog.datasets),
        "purposes": sorted(runtime.register.purposes),
        "decisions": list(DECISIONS),
        "kinds": list(KINDS),
        "refusals": ["policy", "error", *_refusal_codes()],
    }


def _refusal_codes() -> list[str]:
    """The problem codes a refused request can carry: the error tree's 4xx codes."""
    codes: set[str] = set()
    pending: list[type[DoelpoortError]] = [DoelpoortError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if 400 <= cls.status < 500 and cls.__module__.startswith(("gateway.", "audit.")):
            codes.add(cls.code)
    codes.discard("purpose-denied")  # a policy's denial: its decisions are entries of their own
    return sorted(codes)


def _group(group: RequestGroup) -> dict[str, Any]:
    """One request as the list shows it: who, when, why, and per dataset the decision."""
    first = group.entries[0]
    record = first.record
    entries = [_entry_line(entry) for entry in group.entries]
    decided = [e for e in entries if e["kind"] == "decision"]
    shown: dict[str, Any] = {
        "key": group.key,
        "kind": entries[0]["kind"],
        "time": record.time,
        "requester": getattr(record, "requester", None),
        "purpose": getattr(record, "purpose", None),
        "case_ref": getattr(record, "case_ref", None),
        "entries": entries,
        "dataset_decisions": len(decided),
        "outcome": dict(Counter(e["decision"] for e in entries)),
        "link": f"/dpo/entries/{first.seq}",
    }
    if isinstance(record, AuditRecord):
        shown["disclosure_id"] = record.disclosure_id
        shown["link"] = f"/dpo/requests/{record.disclosure_id}"
    return shown


def _entry_line(entry: LoggedEntry) -> dict[str, Any]:
    """One entry in a list: its seq, what it decided, about which dataset."""
    record = entry.record
    line: dict[str, Any] = {
        "seq": entry.seq,
        "link": f"/dpo/entries/{entry.seq}",
        "decision": record.decision,
        "kind": _kind(record),
    }
    if isinstance(record, AuditRecord):
        line.update(
            dataset=record.dataset,
            provider=record.provider,
            reasons=record.reasons,
            record_count=record.record_count,
            error=record.error,
        )
    elif isinstance(record, RefusalRecord):
        line.update(problem=record.problem, status=record.status, datasets=record.datasets)
    elif isinstance(record, RefusalSummaryRecord):
        line.update(counts=record.counts, interval=[record.interval_start, record.interval_end])
    elif isinstance(record, PolicyChangeRecord):
        line.update(outcome=record.outcome, new_digest=record.new_digest, reasons=record.reasons)
    else:  # a re-identification, or a kind this console does not know by name
        line.update({k: v for k, v in vars(record).items() if k not in ("time", "decision")})
    return line


def _kind(record: LogRecord) -> str:
    return "decision" if isinstance(record, AuditRecord) else str(getattr(record, "kind", "?"))


# -- a request, an entry ------------------------------------------------------------------


@twin(
    router,
    "/requests/{disclosure_id}",
    "request.html",
    summary="One disclosure request: every dataset decision it got",
)
async def request_detail(request: Request, disclosure_id: str) -> dict[str, Any]:
    if _DISCLOSURE_ID.fullmatch(disclosure_id) is None:
        raise InvalidRequest("a disclosure id is urn:uuid: and a lowercase UUID")
    entries = await read_log(request, lambda reader: entries_of_request(reader, disclosure_id))
    if not entries:
        raise NotFound("the log holds no request with this disclosure id")
    group = _group(RequestGroup(key=disclosure_id, entries=entries))
    first = entries[0].record
    assert isinstance(first, AuditRecord)
    group["legal_basis"] = first.legal_basis
    group["policy_digest"] = first.policy_digest
    return {"request": group}


@twin(router, "/entries/{seq}", "entry.html", summary="One audit entry, explained")
async def entry_detail(request: Request, seq: str) -> dict[str, Any]:
    number = _seq(seq, "seq")
    assert number is not None

    def read(reader: AuditReader) -> dict[str, Any] | None:
        entry = get_entry(reader, number)
        if entry is None:
            return None
        return {
            "entry": entry,
            "checkpoint": _covering(reader.covering_checkpoint(number)),
            "escrow_held": isinstance(entry.record, AuditRecord)
            and entry.record.escrow_sha256 is not None
            and reader.escrow(number) is not None,
        }

    found = await read_log(request, read)
    if found is None:
        raise NotFound("the log holds no entry with this sequence number")
    entry: LoggedEntry = found["entry"]
    record = entry.record
    data: dict[str, Any] = {
        "seq": entry.seq,
        "kind": _kind(record),
        "record": json.loads(entry.body),
        "summary": _entry_line(entry),
        "digests": {
            "leaf_hash": entry_leaf_hash(entry.seq, entry.prev, entry.body).hex(),
            "prev": entry.prev.hex(),
        },
        "checkpoint": found["checkpoint"],
    }
    if isinstance(record, AuditRecord):
        data["digests"].update(
            policy_digest=record.policy_digest,
            records_sha256=record.records_sha256,
            escrow_sha256=record.escrow_sha256,
        )
        data["request_link"] = f"/dpo/requests/{record.disclosure_id}"
        data["policy_set_link"] = f"/dpo/policy-sets/{record.policy_digest}"
        data["escrow"] = _escrow_status(record, held=found["escrow_held"])
        data["explanation"] = await explain_entry(
            rt(request).settings.audit_db_path, entry.seq, record
        )
    elif isinstance(record, PolicyChangeRecord):
        data["policy_set_link"] = f"/dpo/policy-sets/{record.old_digest}"
    return data


def _covering(checkpoint: StoredCheckpoint | None) -> dict[str, Any] | None:
    return None if checkpoint is None else _checkpoint(checkpoint)


def _checkpoint(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    return {
        "size": checkpoint.size,
        "root": checkpoint.root.hex(),
        "signed_at": checkpoint.created_at,
        "note": checkpoint.note,
    }


def _escrow_status(record: AuditRecord, *, held: bool) -> dict[str, Any]:
    """none; held until its retention ends; or erased (when that has passed)."""
    if record.escrow_sha256 is None:
        return {"status": "none", "text": "no escrow: the entry released no pseudonyms"}
    until = (
        rfc3339(datetime.fromtimestamp(record.escrow_expires, UTC))
        if record.escrow_expires is not None
        else None
    )
    if held:
        return {"status": "held", "until": until, "text": f"held until {until}"}
    early = until is not None and until > rfc3339(utc_now())
    text = (
        f"MISSING before its retention ended ({until}): not the gateway's erasure"
        if early
        else f"erased when its retention ended ({until})"
    )
    return {"status": "missing" if early else "erased", "until": until, "text": text}


# -- an archived policy set ---------------------------------------------------------------


@twin(
    router,
    "/policy-sets/{digest}",
    "policy_set.html",
    summary="An archived policy set: the text that made the decisions naming its digest",
)
async def policy_set_page(request: Request, digest: str) -> dict[str, Any]:
    if DIGEST_PATTERN.fullmatch(digest) is None:
        raise InvalidRequest("a policy digest is sha256: and 64 lowercase hex digits")

    def read(reader: AuditReader) -> dict[str, Any]:
        first_used = next((s.first_used for s in reader.policy_sets() if s.digest == digest), None)
        try:
            files = reader.policy_set(digest)
        except PolicySetMismatch as exc:
            return {"files": None, "mismatch": exc.detail, "first_used": first_used}
        return {"files": files, "mismatch": None, "first_used": first_used}

    found = await read_log(request, read)
    if found["files"] is None and found["mismatch"] is None:
        raise NotFound("the log's archive holds no policy set with this digest")
    files = found["files"] or {}
    return {
        "digest": digest,
        "first_used": found["first_used"],
        "mismatch": found["mismatch"],
        "serving": digest == rt(request).engine.digest,
        "files": [{"path": path, "text": files[path]} for path in sorted(files)],
        "decisions_link": "/dpo/requests?" + urlencode({"policy_digest": digest}),
    }


# -- integrity ----------------------------------------------------------------------------


@twin(router, "/integrity", "integrity.html", summary="The log's integrity status")
async def integrity_page(request: Request) -> dict[str, Any]:
    def read(reader: AuditReader) -> dict[str, Any]:
        stored = reader.checkpoint()
        latest = None if stored is None else _checkpoint(stored)
        cosignatures = [
            {
                "size": c.size,
                "witness": c.key_name,
                "key_id": c.key_id.hex(),
                "stored_at": c.created_at,
                "line": c.line,
            }
            for c in reader.cosignatures()
        ]
        return {
            "entries": reader.count(),
            "latest_checkpoint": latest,
            "cosignatures": cosignatures,
        }

    found = await read_log(request, read)
    latest = monitor(request).latest
    return {
        **found,
        "verification": None if latest is None else latest.as_json(),
        "origin": rt(request).settings.origin,
    }


async def _verify_now(request: Request) -> None:
    # A client certificate goes with every request the browser sends, a cross-site
    # form's too: only a form of this console may start a verification.
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise DpoOnly("a form of another site cannot start a verification")
    monitor(request).start("dpo")


@router.post("/dpo/integrity/verify", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def verify_now(request: Request) -> Response:
    """The "verify now" button: start a verification, then back to the integrity page."""
    await _verify_now(request)
    return RedirectResponse("/dpo/integrity", status_code=303, headers=NO_STORE)


@router.post(
    "/dpo/api/integrity/verify", include_in_schema=False, dependencies=[Depends(require_dpo)]
)
async def verify_now_api(request: Request) -> Response:
    """Start a verification (or join the running one); 202 with its status."""
    await _verify_now(request)
    latest = monitor(request).latest
    body = None if latest is None else latest.as_json()
    return JSONResponse(body, status_code=202, headers=NO_STORE)


def _own_origin(request: Request) -> str:
    server = request.scope.get("server")
    host = request.headers.get("host") or (f"{server[0]}:{server[1]}" if server else "")
    return f"https://{host}"


# -- checking the query -------------------------------------------------------------------


def _checked(value: str | None, name: str, pattern: re.Pattern[str]) -> str | None:
    """``value`` when it has the parameter's syntax; None when absent or empty (a form's
    empty field); else a 422 naming the parameter (never quoting the value)."""
    if value is None or value == "":
        return None
    if pattern.fullmatch(value) is None:
        raise InvalidRequest(f"{name}: not a valid value for this filter")
    return value


def _blank(value: str | None) -> str | None:
    """None for a form's empty field."""
    return value or None


def _seq(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if _DIGITS.fullmatch(value) is None or not 1 <= int(value) <= MAX_SEQ:
        raise InvalidRequest(f"{name}: a sequence number (a positive integer)")
    return int(value)
