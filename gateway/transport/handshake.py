"""The TLS handshake, watched: each one the server refuses becomes a security log line
naming the peer's address and OpenSSL's reason (`gateway.transport.security_log`).

uvloop terminates TLS in its own ``SSLProtocol`` (Cython, uvloop/sslproto.pyx). Given a
context, its server wraps each accepted connection in one, and a refused handshake then
reaches no code of ours: ``_on_handshake_complete`` passes the ``ssl.SSLError`` to
``_fatal_error``, which logs an ``OSError`` (and ``SSLError`` is one) only in the loop's
debug mode, and closes the connection. The context is reachable — ``SSLProtocol`` calls
``context.wrap_bio(...)`` and then ``do_handshake()`` on the object it returns, so an
``SSLContext.sslobject_class`` of our own sees the failure and its reason — but that
object holds two memory BIOs and no socket: the peer's address is out of its reach.

So the server here is given no context (``create_server(ssl=None)``), and the protocol
factory makes each connection's ``SSLProtocol`` itself, with the arguments uvloop's own
server passes (uvloop/handles/streamserver.pyx, ``_on_listen``), plus two things: the
subclass notes the peer's address when the connection is made, and the handshake's
waiter, whose outcome uvloop's server would otherwise consume, tells us how the
handshake ended. ``SSLProtocol`` is not in uvloop's documented API (``uvloop.loop``
exposes it all the same); tests/test_tls.py holds every path to it — a refused
handshake must still be refused, and logged, after any upgrade.

What a refused handshake's line cannot carry is the certificate: Python 3.11's ``ssl``
gives the peer certificate only once the handshake has succeeded (``getpeercert`` raises
"handshake not done yet") and exposes no verify callback, so the subject, serial and
fingerprint of a certificate from another CA, or of one revoked before start-up, stay
unknown. Connections that end, or time out, before the handshake does were not refused
and are not logged.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import uvloop.loop

from gateway.transport import security_log

# Not in uvloop's type stubs (see the module docstring).
_UvloopSSLProtocol: Any = uvloop.loop.SSLProtocol  # type: ignore[attr-defined]


class _WatchedHandshake(_UvloopSSLProtocol):  # type: ignore[misc]
    """uvloop's server-side TLS, plus the peer's address for the security log."""

    _peer: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Before the handshake starts (uvloop starts it in this call).
        self._peer = transport.get_extra_info("peername")
        super().connection_made(transport)

    def handshake_done(self, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():
            return
        # Read in any case, or asyncio reports an exception that was never retrieved.
        error = waiter.exception()
        if isinstance(error, ssl.SSLError):
            security_log.handshake_refused(self._peer, error)


def watched_tls(
    http_protocol: Callable[..., asyncio.Protocol], context: ssl.SSLContext
) -> Callable[..., asyncio.BaseProtocol]:
    """A protocol factory for uvicorn's ``http`` setting: ``http_protocol`` behind
    server-side TLS with ``context``, each refused handshake logged. The server it is
    given to must have no context of its own, or TLS would be wrapped twice."""

    def create(
        *, _loop: asyncio.AbstractEventLoop | None = None, **options: Any
    ) -> asyncio.BaseProtocol:
        loop = _loop or asyncio.get_running_loop()
        app_protocol = http_protocol(_loop=_loop, **options)
        waiter: asyncio.Future[None] = loop.create_future()
        protocol = _WatchedHandshake(loop, app_protocol, context, waiter, server_side=True)
        waiter.add_done_callback(protocol.handshake_done)
        return protocol

    return create
