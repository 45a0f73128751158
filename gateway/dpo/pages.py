"""How a DPO page is served: one function, two routes.

Every console page has a JSON twin for scripts (issue 14): ``GET /dpo/<path>`` renders a
template, ``GET /dpo/api/<path>`` returns the same data as JSON. A page is written once,
as a coroutine that returns a JSON-able dict, and `twin` registers both routes with the
DPO-only dependency. The log is read on a worker thread (`read_log`), with a reader opened
for that call: SQLite reads are blocking, and a reader never holds up the gateway's writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute

from audit.reader import AuditReader
from gateway.dpo.render import render_html
from gateway.errors import InvalidRequest, RequestError
from gateway.peers import require_dpo, rt

__all__ = ["HtmlPageRoute", "PageHandler", "html_page", "read_log", "twin"]

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


def html_page(
    template: str, request: Request, data: dict[str, Any], status_code: int = 200
) -> Response:
    """``template`` rendered with ``data`` (as ``data``) and the request (for links)."""
    body = render_html(template, data=data, request=request)
    headers = {**NO_STORE, "Content-Security-Policy": CSP}
    return HTMLResponse(body, status_code=status_code, headers=headers)


class HtmlPageRoute(APIRoute):
    """A console page: bad input (a filter value, an unknown entry) gets an error page
    for people, with the status and the words of the problem document its JSON twin
    gets. Who may see the page is decided before (`require_dpo`), and an access error
    goes on to the app's handler, which logs a partner's refusal."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as exc:
                return _error_page(request, exc)
            except RequestValidationError as exc:
                wrong = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
                return _error_page(request, InvalidRequest(f"not a valid value: {wrong}"))

        return handle


def _error_page(request: Request, exc: RequestError) -> Response:
    data = {"status": exc.status, "title": exc.title, "detail": exc.detail, "code": exc.code}
    return html_page("error.html", request, data, status_code=exc.status)


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
            route_class_override=HtmlPageRoute,
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
