"""The HTTP surface: routes, peer identity, body limits, problem+json errors, and which
refusals are logged (`gateway.refusals`, `gateway.transport.security_log`).

Everything that decides lives elsewhere; this module turns HTTP into calls on
:class:`~gateway.disclosure.DisclosureService` and errors into RFC 9457 documents.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import __version__
from gateway.dpo.routes import dpo_router
from gateway.errors import (
    PROBLEM_TYPE_PREFIX,
    DoelpoortError,
    DpoOnly,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PurposeDenied,
    RequestError,
    Unauthenticated,
)
from gateway.openapi import openapi_document, server_url
from gateway.peers import identify, partner, peer, rt
from gateway.purposes import granted_purposes
from gateway.request_bodies import json_body
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger("doelpoort.app")

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, code: str, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A problem document for an HTTP status outside the error tree."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_from(
    exc: DoelpoortError, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = exc.problem()
    if isinstance(exc, PurposeDenied):
        body["reasons"] = exc.reasons
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=exc.status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Pydantic echoes the offending input; a problem document must not.
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]


def readiness_response(runtime: Runtime) -> JSONResponse:
    """``/readyz``: 200 while the policy engine and the audit store can answer, else 503;
    ``policy`` names the serving set and the last reload. A refused reload leaves the
    gateway ready: the set that passed vetting before still serves."""
    checks = runtime.readiness()
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "policy": runtime.policies.status(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def request_policy_reload(app: FastAPI, trigger: str) -> None:
    """Ask the running gateway to vet and swap in its policy set as its files now are
    (`gateway.policy_switch`); on the event loop. Before start-up has finished there is
    nothing to reload: start-up reads the files as they are."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        log.warning("policy reload (%s) ignored: the gateway is still starting", trigger)
        return
    runtime.request_policy_reload(trigger)


def create_app(settings: Settings) -> FastAPI:
    """The gateway app; its :class:`Runtime` is built from ``settings`` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime = await Runtime.start(settings)
        _settle_garbage_collector()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Doelpoort",
        version=__version__,
        summary="Purpose-bound, minimised, signed and logged disclosures between partners.",
        lifespan=lifespan,
        # Served below behind the peer check; no browser UI on a partner gateway.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # A path with a stray slash is a 404, not a redirect whose Location Starlette
        # would build from the client's Host header.
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry switches on by itself once any tracer, meter or
        # logger provider is installed (or FASTAPI_OTEL_AUTO_CONFIGURE is set), and then
        # traces each request and logs validation failures with their input: values and
        # identifiers, sent to a system outside this gateway's guarantees. The gateway's
        # own metrics (/metrics) carry none.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    # Everything but the probes needs a verified, unrevoked peer: partner or DPO.
    known_peer = [Depends(peer)]

    # What each route answers is declared in gateway/openapi.py, which builds the document.
    @app.post("/v1/disclosures", summary="Ask for information about one subject for one purpose")
    async def post_disclosure(request: Request) -> Response:
        # Identity first: who asks decides whether their input is even looked at.
        requester = partner(request, await peer(request))
        # pydantic-core parses and validates in one pass (and bounds nesting); this is
        # the hot path, and FastAPI's generic body handling costs a third of a bare call.
        raw = await json_body(request)
        request.state.raw_body = raw  # read for names only if the request is refused
        # One policy set from here to the receipt, whatever a reload swaps in meanwhile.
        with rt(request).policy.in_use() as policy:
            try:
                body = policy.request_model.from_body(raw)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors()) from None
            receipt = await policy.disclosures.disclose(requester, body)
        return Response(receipt.response_body(), media_type="application/json")

    @app.get("/v1/purposes", summary="The purposes this partner may ask for, and what each covers")
    async def get_purposes(request: Request) -> Response:
        requester = partner(request, await peer(request))
        runtime = rt(request)
        granted = granted_purposes(
            runtime.register,
            runtime.catalog.datasets,
            requester,
            policy_digest=runtime.engine.digest,
        )
        body = granted.model_dump_json().encode()
        # Per partner (private: no shared cache may keep it), and it changes with the
        # policy set, so a client revalidates (no-cache) and gets a 304 while unchanged.
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @app.get(
        "/.well-known/jwks.json",
        summary="Receipt verification keys (current and retired)",
        dependencies=known_peer,
    )
    async def jwks(request: Request) -> Response:
        return JSONResponse(rt(request).signer.jwks())

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: policy engine and audit store")
    async def readyz(request: Request) -> Response:
        return readiness_response(rt(request))

    # No /metrics here: it shows every partner's activity, so it is served only to
    # operators, on the operations listener (gateway/ops.py), to clients on this host.

    @app.get("/openapi.json", summary="This API's contract", dependencies=known_peer)
    async def openapi(request: Request) -> Response:
        # Built once per policy set: the register and its case_ref formats are in it.
        policy = rt(request).policy
        cached = getattr(app.state, "openapi", None)
        if cached is None or cached[0] != policy.digest:
            document = openapi_document(
                app,
                server_url=server_url(settings, request.scope.get("server")),
                request_model=policy.request_model,
                register=policy.register,
                datasets=rt(request).catalog.datasets,
            )
            cached = app.state.openapi = (policy.digest, JSONResponse(document).body)
        return Response(cached[1], media_type="application/json")

    # The DPO's console, API and the log's proofs (gateway/dpo/).
    app.include_router(dpo_router)
    _install_error_handlers(app)
    app.add_middleware(RequestMetrics)
    app.add_middleware(ContainFailures)
    return app


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (RFC 9110 §13.1.2: ``*`` or a list
    of entity tags, compared weakly, so ``W/"x"`` matches ``"x"``)."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


# A disclosure allocates a few hundred short-lived dicts and lists, nearly all freed by
# reference counting; at the default threshold (700) the collector still ran several
# times per request and took about 6% of the loop's CPU under load (measured with perf).
_GC_YOUNG_THRESHOLD = 10_000


def _settle_garbage_collector() -> None:
    """Freeze what start-up built (catalog, indexes, policy, app) and collect less often.

    Those objects live as long as the process; frozen, no collection walks them again.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(max(_GC_YOUNG_THRESHOLD, gc.get_threshold()[0]), older, oldest)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DoelpoortError)
    async def on_doelpoort_error(request: Request, exc: DoelpoortError) -> Response:
        if exc.status >= 500:
            log.warning("request failed closed: %s", exc.code)
        elif isinstance(exc, RequestError | Unauthenticated | DpoOnly):
            # Not PurposeDenied: its decisions are audit entries already.
            await _log_refusal(request, exc.code, exc.status)
        return problem_from(exc)

    # Only a request's input raises this: the disclosure route wraps its own parse in it.
    # A pydantic error anywhere else is a bug, and stays a 500.
    @app.exception_handler(RequestValidationError)
    async def on_invalid_body(request: Request, exc: RequestValidationError) -> Response:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            err = InvalidRequest("the request body is not valid JSON")
        else:
            err = InvalidRequest("the request body does not match the schema")
        await _log_refusal(request, err.code, err.status)
        return problem_from(err, errors=_validation_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            # FastAPI's "error parsing the body" (e.g. an integer beyond Python's digit
            # limit): bad input like any other, so the same 422.
            err = InvalidRequest("the request body could not be parsed as JSON")
            await _log_refusal(request, err.code, err.status)
            return problem_from(err)
        if exc.status_code in (404, 405):
            # The router answers before any route's peer check: who is probing for
            # routes is worked out here (without changing the answer).
            identify(request)
            code = NotFound.code if exc.status_code == 404 else MethodNotAllowed.code
            await _log_refusal(request, code, exc.status_code)
        # The headers Starlette sets, such as a 405's Allow (RFC 9110 §15.5.6).
        if exc.status_code == 404:
            return problem_from(NotFound("no such path on this gateway"), exc.headers)
        if exc.status_code == 405:
            return problem_from(MethodNotAllowed("the Allow header lists the methods"), exc.headers)
        # No route or dependency here raises another status; should one ever, it is still
        # a problem document, if one outside the OpenAPI document's table.
        return problem(exc.status_code, "http-error", str(exc.detail), str(exc.detail), exc.headers)


async def _log_refusal(request: Request, code: str, status: int) -> None:
    """An audit entry for a refusal of a configured partner (`gateway.refusals`); a peer
    that is none has had its security log line from `_identify` already."""
    requester = getattr(request.state, "partner_id", None)
    if requester is None:
        return
    await rt(request).refusals.record(
        requester,
        code,
        status,
        method=request.method,
        route=getattr(request.scope.get("route"), "path", None),  # the template, not the path
        body=getattr(request.state, "raw_body", None),
    )


class ContainFailures:
    """Outermost ASGI middleware: a bug becomes a 500 problem and one log line.

    Starlette's own error middleware would log the traceback and re-raise, and an
    exception's message may quote a value (``KeyError('<a BSN>')``). Here only the
    exception's class is logged, and nothing is re-raised to the server.

    At start-up, a Doelpoort error (a missing key, a log another gateway is writing) is
    reported to the server as one line, ``cannot start: …``, instead of a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error("request failed: unexpected %s", type(exc).__name__)
            if scope["type"] == "http" and not started:
                bug = DoelpoortError("the gateway failed; nothing was disclosed")
                await problem_from(bug)(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def reported(message: Message) -> None:
            # Starlette sends the failure from inside its `except` block, so the
            # exception being handled is the one that stopped the start-up.
            failure = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(failure, DoelpoortError):
                message = {**message, "message": f"cannot start: {failure.detail}"}
            await send(message)

        with contextlib.suppress(DoelpoortError):  # reported above; the server stops
            await self.app(scope, receive, reported)


class RequestMetrics:
    """ASGI middleware counting requests by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                # The matched route's template, never the raw path.
                template = getattr(scope.get("route"), "path", "unmatched")
                runtime.metrics.requests.labels(template, str(status)).inc()
                runtime.metrics.request_seconds.labels(template).observe(
                    time.perf_counter() - started
                )
