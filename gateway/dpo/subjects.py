"""The console's subject access page and its JSON twin (``/dpo/subjects``).

A subject's identifier travels in a POST body only — never in a URL, a log line or an
error — and is turned into its references at once, with the gateway's subject key and
the legacy key of the entries logged before it (`gateway.subject_refs`); the page, the
report and its download forms carry those references on, never the identifier.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from gateway.api_models import Subject
from gateway.dpo.forms import first, read_form
from gateway.dpo.pages import NO_STORE, html_page, read_log, twin
from gateway.dpo.subject_access import (
    IDENTITY_FIELDS,
    SubjectAccess,
    identified_by,
    render_subject_report,
    subject_decisions,
    validated_identity,
)
from gateway.errors import InvalidRequest
from gateway.ids import REF_PATTERN
from gateway.peers import require_dpo, rt
from gateway.request_bodies import parse_json_body
from gateway.subject_refs import COMPOUND

__all__ = ["identity_refs", "router"]

router = APIRouter()

_REF = re.compile(REF_PATTERN)
_KINDS = re.compile(r"[a-z_+]{1,40}")
_FORMATS: dict[str, Literal["html", "pdf"] | None] = {"page": None, "html": "html", "pdf": "pdf"}


def identity_refs(request: Request, identity: dict[str, str]) -> list[str]:
    """The subject's references under every subject key the gateway holds."""
    keys = rt(request).subject_keys
    return sorted({ref for key in keys for ref in key.refs(identity)})


async def _access(request: Request, refs: list[str], kinds: list[str]) -> SubjectAccess:
    clock = rt(request).disclosures.clock
    keys = len(rt(request).subject_keys)
    return await read_log(
        request,
        lambda reader: subject_decisions(reader, refs, identified_by=kinds, keys=keys, now=clock()),
    )


@twin(router, "/subjects", "subjects.html", summary="Subject access: the search form")
async def subjects_form(request: Request) -> dict[str, Any]:
    """The form (GET); the search itself is a POST, so no identifier is ever in a URL."""
    return {
        "access": None,
        "error": None,
        "refs": [],
        "post": {"html": "/dpo/subjects", "json": "/dpo/api/subjects"},
        "identity_keys": [*IDENTITY_FIELDS[:4], "+".join(COMPOUND)],
    }


@router.post("/dpo/api/subjects", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def subjects_json(request: Request) -> Response:
    """JSON twin: every decision about the subject the body identifies."""
    subject = await parse_json_body(request, Subject)
    identity = subject.keys()
    access = await _access(request, identity_refs(request, identity), identified_by(identity))
    return JSONResponse(access.as_json(), headers=NO_STORE)


@router.post("/dpo/subjects", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def subjects_page(request: Request) -> Response:
    """The form's answer: the page, or the report as HTML or PDF to keep."""
    form = await read_form(request)
    fmt = first(form, "format") or "page"
    if fmt not in _FORMATS:
        raise InvalidRequest("format is one of page, html and pdf")
    if form.get("ref"):
        # The download forms of a result page: references, never the identifier.
        refs = form["ref"]
        kinds = form.get("identified_by", [])
        if not all(_REF.fullmatch(r) for r in refs) or not all(_KINDS.fullmatch(k) for k in kinds):
            raise InvalidRequest("a reference is psn: and 32 hexadecimal digits")
    else:
        try:
            identity = validated_identity({k: first(form, k) or "" for k in IDENTITY_FIELDS})
        except InvalidRequest as exc:
            if fmt != "page":
                raise
            data: dict[str, Any] = {"access": None, "error": exc.detail, "refs": []}
            page = html_page("subjects.html", request, data)
            page.status_code = exc.status
            return page
        refs, kinds = identity_refs(request, identity), identified_by(identity)
    access = await _access(request, refs, kinds)
    download = _FORMATS[fmt]
    if download is None:
        return html_page("subjects.html", request, {"access": access, "error": None, "refs": refs})
    return _download(access, download)


def _download(access: SubjectAccess, fmt: Literal["html", "pdf"]) -> Response:
    name = f"subject-access-{access.generated_at[:10]}.{fmt}"
    media = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(render_subject_report(access, fmt), media_type=media, headers=headers)
