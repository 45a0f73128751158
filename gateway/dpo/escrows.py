"""Re-identification, overseen: the escrow released to the DPO, and pseudonym search.

``POST /dpo/api/escrows/{seq}`` hands the DPO an entry and its escrow ciphertext, but
only after the release itself is a committed audit entry (`ReidentificationRecord`:
which DPO, which entry, the stated reason): if that entry cannot be written, nothing is
released. The gateway cannot open the escrow (it is sealed to the DPO's key); the DPO's
``doelpoort audit reidentify`` checks it against the entry's digest and opens it offline.

``POST /dpo/api/search`` and the console page ``/dpo/search`` find the entries that
released a pseudonym — through the log's keyed index of pseudonym references, so no
escrow is opened to find them — or that belong to one disclosure, with their context.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from audit.clock import rfc3339
from audit.entry import REASON_MAX_CHARS, AuditRecord, ReidentificationRecord
from audit.query import LoggedEntry, entries_of_request, entries_with_pseudonym_refs, get_entry
from audit.reader import AuditReader
from gateway.dpo.forms import first, read_form
from gateway.dpo.pages import NO_STORE, html_page, read_log, twin
from gateway.errors import InvalidRequest, NoEscrow, NotFound
from gateway.ids import DISCLOSURE_ID_PATTERN, MAX_SEQ, REF_PATTERN
from gateway.peers import require_dpo, rt
from gateway.request_bodies import parse_json_body
from gateway.subject_refs import SubjectRefKey
from gateway.transport.identity import PeerIdentity

__all__ = ["ReleaseRequest", "SearchRequest", "router", "search_entries"]

log = logging.getLogger("doelpoort.dpo")

router = APIRouter()

_DIGITS = re.compile(r"[0-9]{5}")
_PSEUDONYM = rf"^{REF_PATTERN}$"
_DISCLOSURE_ID = rf"^{DISCLOSURE_ID_PATTERN}$"


class ReleaseRequest(BaseModel):
    """Why the DPO opens this escrow: a case or complaint reference, in words."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX_CHARS)
    ]

    @model_validator(mode="after")
    def _no_identifier(self) -> ReleaseRequest:
        # The reason is kept in clear; a run of five digits may be a BSN (as for refusals).
        if _DIGITS.search(self.reason):
            raise ValueError(
                "the reason must hold no run of five or more digits: name a case or"
                " complaint, never an identifier"
            )
        return self


@router.post(
    "/dpo/api/escrows/{seq}",
    include_in_schema=False,
    summary="Release an entry's escrow to the DPO, recorded first",
)
async def release_escrow(
    request: Request,
    seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    dpo: Annotated[PeerIdentity, Depends(require_dpo)],
) -> Response:
    """The entry and its escrow, once the release is a committed audit entry."""
    # Read here, after the peer check, within the body limit (FastAPI reads a declared
    # body parameter whole, before any dependency has looked at the certificate).
    body = await parse_json_body(request, ReleaseRequest)

    def look(reader: AuditReader) -> tuple[LoggedEntry | None, str | None]:
        entry = get_entry(reader, seq)
        return entry, (reader.escrow(seq) if entry is not None else None)

    entry, escrow = await read_log(request, look)
    if entry is None:
        raise NotFound(f"the audit log has no entry {seq}")
    record = entry.record
    if not isinstance(record, AuditRecord):
        raise NoEscrow(f"entry {seq} records no disclosure (it is a {record.decision} entry)")
    if record.escrow_sha256 is None:
        raise NoEscrow(f"entry {seq} has no escrow (the gateway ran without the DPO's key)")
    runtime = rt(request)
    now = runtime.disclosures.clock()
    if escrow is None:
        raise NoEscrow(_erased(seq, record.escrow_expires, now))
    release = ReidentificationRecord(
        time=rfc3339(now),
        dpo=dpo.id,
        entry_seq=seq,
        disclosure_id=record.disclosure_id,
        reason=body.reason,
    )
    # Raises AuditError (503) when the entry cannot be made durable: nothing leaves.
    (recorded,) = await runtime.audit.append([release])
    log.info(
        "the escrow of audit entry %d was released to DPO %s (entry %d)", seq, dpo.id, recorded
    )
    answer = {
        "seq": seq,
        "entry": {"seq": entry.seq, "prev": entry.prev.hex(), "body": entry.body.decode()},
        "escrow": escrow,
        "reidentification_seq": recorded,
    }
    return JSONResponse(answer, headers=NO_STORE)


def _erased(seq: int, expires: int | None, now: datetime) -> str:
    if expires is None:
        return f"entry {seq}: its escrow was erased"
    when = rfc3339(datetime.fromtimestamp(expires, UTC))
    if now.timestamp() < expires:
        return (
            f"entry {seq}: its escrow was erased before its retention ended ({when}): the"
            " log was changed outside the gateway, or its clock was ahead"
        )
    return f"entry {seq}: its escrow was erased when the purpose's retention ended ({when})"


# -- pseudonym search ---------------------------------------------------------------------


class SearchRequest(BaseModel):
    """A pseudonym (``psn:…``) or a disclosure id (``urn:uuid:…``): exactly one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pseudonym: Annotated[str, StringConstraints(pattern=_PSEUDONYM)] | None = None
    disclosure_id: Annotated[str, StringConstraints(pattern=_DISCLOSURE_ID)] | None = None

    @model_validator(mode="after")
    def _one(self) -> SearchRequest:
        if (self.pseudonym is None) == (self.disclosure_id is None):
            raise ValueError("give a pseudonym or a disclosure_id (one of them)")
        return self


def search_entries(
    reader: AuditReader, query: SearchRequest, key: SubjectRefKey, now: datetime
) -> dict[str, Any]:
    """The entries that released ``query.pseudonym`` (through the keyed index) or belong
    to ``query.disclosure_id``, each with its context; no escrow is read."""
    if query.pseudonym is not None:
        found = entries_with_pseudonym_refs(reader, [key.pseudonym_ref(query.pseudonym)])
    else:
        assert query.disclosure_id is not None
        found = entries_of_request(reader, query.disclosure_id)
    entries = [_context(e, now) for e in found if isinstance(e.record, AuditRecord)]
    return {
        "entries": entries,
        "requests": len({e["disclosure_id"] for e in entries}),
        "error": None,
    }


def _context(entry: LoggedEntry, now: datetime) -> dict[str, Any]:
    record = entry.record
    assert isinstance(record, AuditRecord)
    if record.escrow_sha256 is None:
        escrow = "none"
    elif record.escrow_expires is not None and record.escrow_expires <= now.timestamp():
        escrow = "erased (retention ended)"
    else:
        escrow = "sealed"
    return {
        "seq": entry.seq,
        "time": record.time,
        "requester": record.requester,
        "purpose": record.purpose,
        "provider": record.provider,
        "dataset": record.dataset,
        "decision": record.decision,
        "case_ref": record.case_ref,
        "disclosure_id": record.disclosure_id,
        "escrow": escrow,
    }


async def _search(request: Request, query: SearchRequest) -> dict[str, Any]:
    runtime = rt(request)
    key, now = runtime.subject_keys[0], runtime.disclosures.clock()
    return await read_log(request, lambda reader: search_entries(reader, query, key, now))


@twin(router, "/search", "search.html", summary="Pseudonym search: the form")
async def search_form(request: Request) -> dict[str, Any]:
    """The form (GET); the search is a POST."""
    return {"entries": None, "requests": 0, "error": None, "post": "/dpo/api/search"}


@router.post("/dpo/api/search", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def search_json(request: Request) -> Response:
    """JSON twin: the entries with their context."""
    query = await parse_json_body(request, SearchRequest)
    return JSONResponse(await _search(request, query), headers=NO_STORE)


@router.post("/dpo/search", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def search_page(request: Request) -> Response:
    """The form's answer, as a page."""
    form = await read_form(request)
    given = {k: (first(form, k) or "").strip() for k in ("pseudonym", "disclosure_id")}
    try:
        query = SearchRequest.model_validate({k: v for k, v in given.items() if v})
    except ValueError:
        data = {
            "entries": None,
            "requests": 0,
            "error": "give a pseudonym (psn: and 32 hexadecimal digits) or a disclosure id"
            " (urn:uuid:…), one of them",
        }
        page = html_page("search.html", request, data)
        page.status_code = InvalidRequest.status
        return page
    return html_page("search.html", request, await _search(request, query))
