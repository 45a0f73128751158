"""The operations app: health, readiness, the public JWKS, and metrics for this host.

SPEC §4: ``/metrics`` is for operators only; ``/healthz``, ``/readyz`` and the public
JWKS need no client certificate. They are served here, in plain HTTP, on a listener of
their own (`gateway.transport.ops_listener`; ``DOELPOORT_OPS_HOST``/``_PORT``), not to
partners over mutual TLS:

- ``/healthz``: the process serves (a load balancer's liveness check);
- ``/readyz``: 200 while the policy engine and the audit store can answer, else 503;
- ``/.well-known/jwks.json``: the receipt keys' public halves, current and retired: a
  court or supervisor verifies a receipt with them, and needs no certificate to;
- ``/metrics``: counts by route, status and outcome across every partner, which tell
  one partner what the others do; so only to a client on this host (its TCP address
  is loopback: a local Prometheus agent, or an SSH tunnel). Anyone else gets 403.

Everything else is 404, as problem+json. The app reads the running gateway's runtime
(`runtime_of`); before it exists, ``/readyz`` and the JWKS answer 503.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.app import ContainFailures, problem, readiness_response
from gateway.runtime import Runtime

__all__ = ["create_ops_app", "from_this_host"]

METRICS_MEDIA_TYPE = "text/plain; version=0.0.4"


def from_this_host(client: tuple[str, int] | None) -> bool:
    """Whether the TCP peer is on this host: 127.0.0.0/8 or ::1 (also IPv4-mapped, as a
    dual-stack listener sees 127.0.0.1)."""
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def create_ops_app(runtime_of: Callable[[], Runtime | None]) -> ContainFailures:
    """The operations app, reading the gateway's runtime through ``runtime_of``."""

    def starting() -> Response:
        return problem(503, "starting", "The gateway is starting", "the gateway is not ready yet")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        runtime = runtime_of()
        return starting() if runtime is None else readiness_response(runtime)

    async def jwks(request: Request) -> Response:
        runtime = runtime_of()
        return starting() if runtime is None else JSONResponse(runtime.signer.jwks())

    async def metrics(request: Request) -> Response:
        client = request.scope.get("client")
        if not from_this_host(tuple(client) if client else None):
            return problem(
                403,
                "operators-only",
                "Metrics are for operators",
                "metrics are served only to clients on the gateway's own host",
            )
        runtime = runtime_of()
        if runtime is None:
            return starting()
        return Response(runtime.metrics.render(), media_type=METRICS_MEDIA_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        code = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
        detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return problem(status, code, detail, detail, headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: not_found},
    )
    # "/metrics/" is a 404, not a redirect whose Location comes from the Host header.
    app.router.redirect_slashes = False
    return ContainFailures(app)
