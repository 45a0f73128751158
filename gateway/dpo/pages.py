"""How a DPO page is served: one function, two routes.

Every console page has a JSON twin for scripts (issue 14): ``GET /dpo/<path>`` renders a
template, ``GET /dpo/api/<path>`` returns the same data as JSON. A page is written once,
as a coroutine that returns a JSON-able dict, and `twin` registers both routes with the
DPO-only dependency. The log is read on a worker thread (`read_log`), with a reader opened
for that call: SQLite reads are blocking, and a reader never holds up the gateway's writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from audit.reader import AuditReader
from gateway.dpo.render import render_html
from gateway.peers import require_dpo, rt

__all__ = ["PageHandler", "read_log", "twin"]

T = TypeVar("T")
PageHandler = Callable[..., Awaitable[dict[str, Any]]]

# Console pages must never be cached by a browser or proxy: they show the log.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Pages are served, styled and scripted only from this gateway; no frames.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def read_log(request: Request, work: Callable[[AuditReader], T]) -> T:
    """``work(reader)`` on a worker thread, with the audit log opened read-only for it."""
    path = rt(request).settings.audit_db_path

    def run() -> T:
        with AuditReader(path) as reader:
            return work(reader)

    return await asyncio.to_thread(run)


def html_page(template: str, request: Request, data: dict[str, Any]) -> Response:
    """``template`` rendered with ``data`` (as ``data``) and the request (for links)."""
    body = render_html(template, data=data, request=request)
    return HTMLResponse(body, headers={**NO_STORE, "Content-Security-Policy": CSP})


def twin(
    router: APIRouter, path: str, template: str, *, summary: str
) -> Callable[[PageHandler], PageHandler]:
    """Register ``handler`` as ``GET /dpo{path}`` (``template``) and ``GET /dpo/api{path}``
    (JSON), both for a DPO only. ``handler(request, **params)`` returns the page's data."""

    def register(handler: PageHandler) -> PageHandler:
        async def as_html(request: Request, data: dict[str, Any] = Depends(handler)) -> Response:
            return html_page(template, request, data)

        async def as_json(data: dict[str, Any] = Depends(handler)) -> Response:
            return JSONResponse(data, headers=NO_STORE)

        dpo = [Depends(require_dpo)]
        router.add_api_route(
            f"/dpo{path}",
            as_html,
            methods=["GET"],
            summary=summary,
            dependencies=dpo,
            include_in_schema=False,
        )
        router.add_api_route(
            f"/dpo/api{path}",
            as_json,
            methods=["GET"],
            summary=summary,
            dependencies=dpo,
            include_in_schema=False,
        )
        return handler

    return register
