"""The operations listener: plain HTTP beside the partners' listener, no certificates.

Load balancers, monitoring and anyone verifying a receipt reach it without a client
certificate (SPEC §4); what it serves, and to whom, is `gateway.ops`. It runs in both
modes, mutual TLS and behind a proxy, on ``DOELPOORT_OPS_HOST``/``DOELPOORT_OPS_PORT``.

Its socket is bound before the gateway starts, so a taken port stops ``serve`` at once
with one line; it listens (accepts) only once the gateway serves
(`gateway.transport.serving.BesideServer`). The client address the app sees is the TCP
peer's: no forwarded header is read, so none can make a remote client look local.
"""

from __future__ import annotations

import socket

import uvicorn

from gateway.errors import ConfigurationError
from gateway.transport.serving import BesideServer
from gateway.transport.tls import ASGIApp, TLSHttpToolsProtocol


def bind_tcp_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), not yet listening."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigurationError(f"the operations address {host} cannot be resolved") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} for operations: {exc.strerror or exc}"
        ) from exc
    return sock


def build_ops_server(
    app: ASGIApp, sock: socket.socket, *, log_level: str = "warning"
) -> BesideServer:
    """A uvicorn server for the operations app on ``sock``, to run beside the gateway."""
    config = uvicorn.Config(
        app,
        # The head limit and problem documents for bytes that are not HTTP; without TLS
        # the protocol adds no TLS extension, so no route here can see a peer identity.
        http=TLSHttpToolsProtocol,
        ws="none",
        lifespan="off",  # the gateway's app owns the runtime; this one only reads it
        access_log=False,
        log_level=log_level,
        proxy_headers=False,  # the client address is the TCP peer's (see above)
        server_header=False,
    )
    return BesideServer(config, sock)
