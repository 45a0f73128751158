"""HTTPS with mutual TLS on uvicorn, and the peer certificate in the ASGI scope.

By default the gateway terminates TLS itself (behind a proxy: `gateway/transport/proxied.py`, which
fills the same extension). `server_ssl_context` requires a client certificate
from the partner CA (TLS 1.2+, the CRL checked for the leaf), so a missing, foreign or
revoked-before-start-up certificate never gets past the handshake (and each refusal is
a security log line: `gateway/transport/handshake.py`).

`TLSHttpToolsProtocol` then hands the certificate the handshake verified to the app as
the ASGI TLS extension (https://asgi.readthedocs.io/en/latest/specs/tls.html), in
``scope["extensions"]["tls"]``. The app reads it back with `peer_certificate_der`; no
header the client writes can take its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeAlias, cast

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import ConfigurationError, DoelpoortError, HeadersTooLarge, RequestError
from gateway.keys import check_private_file
from gateway.transport.handshake import watched_tls
from gateway.transport.identity import RevocationList
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.serving import AnnouncingServer, OnServing

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# Private key beside the spec's keys: the verified DER, so the app need not decode PEM.
PEER_DER_KEY = "_doelpoort_der"

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are all AEAD already.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def require_partner_pki(paths: PkiPaths, *files: Path) -> None:
    """Fail at start-up, not per request, when the partner CA, its CRL or one of
    ``files`` is missing, or the CRL is unreadable, badly signed or expired (OpenSSL
    would then reject every client and say little about why; proxy mode, every peer)."""
    for path in (*files, paths.ca_cert, paths.crl):
        if not path.is_file():
            raise ConfigurationError(f"{path.name} is missing; run `doelpoort pki init`")
    if RevocationList(paths.crl, paths.ca_cert).is_revoked(-1):
        raise ConfigurationError("the CRL is expired or unusable; run `doelpoort pki init`")


def server_ssl_context(paths: PkiPaths) -> ssl.SSLContext:
    """The server's TLS context: our certificate, partner-CA client certificates only."""
    require_partner_pki(paths, paths.server_cert, paths.server_key)
    check_private_file(paths.server_key)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(paths.server_cert, paths.server_key)
        # Only the partner CA, never the system store: no public CA vouches for partners.
        ctx.load_verify_locations(cafile=paths.ca_cert)
        ctx.load_verify_locations(cafile=paths.crl)  # OpenSSL reads CRLs from PEM files too
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError("the server certificate, key or partner CA is unusable") from exc
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    # No session tickets: a TLS 1.3 connection always presents its certificate and has it
    # verified afresh, rather than resuming on a ticket issued before it expired. (TLS 1.2
    # clients may still resume from the in-process session cache for a few minutes; the
    # session keeps the verified certificate, and the app checks the live CRL per request.)
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


#: Request line plus headers. httptools buffers a header whole before handing it over,
#: so the limit is enforced on the bytes received, before they reach the parser, and
#: again on what the parser hands over, for a head that arrives in the same read as the
#: end of the request before it.
MAX_HEAD_BYTES = 32 * 1024


def _refusal(error: DoelpoortError) -> bytes:
    """A whole HTTP/1.1 response with ``error``'s problem document, closing the connection.

    For requests the app never sees (a head over the limit, bytes that are not HTTP): the
    transport answers with the same document the app would have written.
    """
    body = json.dumps(error.problem()).encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s"
        % (error.status, HTTPStatus(error.status).phrase.encode(), len(body), body)
    )


_HEAD_TOO_LARGE = _refusal(
    HeadersTooLarge(f"request line and headers are limited to {MAX_HEAD_BYTES} bytes")
)
_NOT_HTTP = _refusal(RequestError("the request is not valid HTTP/1.1"))


def client_ssl_context(
    ca_cert: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client's view: trust only the deployment's CA, present ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension in every scope, a limit
    on the size of request heads (431), and problem documents for requests that are not
    HTTP (400) — each sent after the responses to the requests pipelined before it."""

    server_certfile: Path | None = None  # the extension's server_cert (`build_server` sets it)
    _tls: dict[str, object] | None = None
    _in_head = True
    _head_bytes = 0
    _head_tail = b""
    _refusal: bytes | None = None  # the last response of this connection, once refused
    _parsed_head = 0  # bytes of the current head the parser has handed over

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio calls this once the handshake has completed, so the certificate is
        # already verified; computed once here, shared by every request on the connection.
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            self._tls = _tls_extension(ssl_object, self.server_certfile)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head = 0
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._parsed_head += size
        if self._parsed_head > MAX_HEAD_BYTES:
            # Stops the parser; uvicorn then calls send_400_response, which sends this.
            self._refusal = _HEAD_TOO_LARGE
            raise ValueError("request head over the limit")

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the connection ends once the earlier responses are out
        if self._in_head:
            # Count only the head: a chunk may also carry (part of) the body.
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            head_part = len(data) if end < 0 else end + 4 - len(self._head_tail)
            if self._head_bytes + head_part > MAX_HEAD_BYTES:
                self._refuse(_HEAD_TOO_LARGE)
                return
            self._head_bytes += head_part
            self._head_tail = seen[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._head_tail = True, 0, b""

    def send_400_response(self, msg: str) -> None:
        """Bytes the parser cannot read: a problem document, not uvicorn's plain text
        (or the 431 of a head that a parser callback found over the limit)."""
        self._refuse(self._refusal or _NOT_HTTP)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if any
        if self._refusal is not None and not self._answering():
            self._end_with_refusal()

    def _refuse(self, response: bytes) -> None:
        """End the connection with ``response``. Requests pipelined before the refused one
        are answered first: written now, it would be read as the answer to the first."""
        self._refusal = response
        self.flow.pause_reading()
        if not self._answering():
            self._end_with_refusal()

    def _answering(self) -> bool:
        """Whether a request of this connection is still waiting for its response."""
        in_flight = self.cycle is not None and not self.cycle.response_complete
        return in_flight or bool(self.pipeline)

    def _end_with_refusal(self) -> None:
        if self._refusal is not None and not self.transport.is_closing():
            self.transport.write(self._refusal)
            self.transport.close()


def peer_certificate_der(scope: Scope) -> bytes | None:
    """The client certificate the handshake verified, as DER; None without one."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, dict) or tls.get("client_cert_error") is not None:
        return None
    der = tls.get(PEER_DER_KEY)
    if isinstance(der, bytes):
        return der
    chain = tls.get("client_cert_chain") or []
    if not chain or not isinstance(chain[0], str):
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(chain[0])
    except ValueError:
        return None


def build_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    paths: PkiPaths,
    log_level: str = "warning",
    on_serving: OnServing | None = None,
) -> AnnouncingServer:
    """A uvicorn server for *app* on HTTPS with mutual TLS; ``on_serving`` is called
    with its listening sockets once it serves (`gateway.transport.serving`).

    TLS is not uvicorn's to set up: each connection's protocol comes with its own
    (`gateway.transport.handshake`), so a refused handshake is logged with the peer's
    address. uvicorn itself is given no certificate and no context.
    """
    context = server_ssl_context(paths)  # built now, so configuration errors surface here
    http = type("TLSProtocol", (TLSHttpToolsProtocol,), {"server_certfile": paths.server_cert})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvloop: faster than the stdlib loop, and its SSL transport also exposes
        # `ssl_object`, which the protocol reads (tests/test_tls.py holds it to that).
        loop="uvloop",
        http=cast(type[asyncio.Protocol], watched_tls(http, context)),  # a factory will do
        ws="none",  # websocket upgrades would bypass the TLS extension; we serve none
        access_log=False,
        log_level=log_level,
        # Forwarded headers must not rewrite the client address or scheme; the
        # proxy mode, where one is trusted, is explicit and separate.
        proxy_headers=False,
        server_header=False,
    )
    return AnnouncingServer(config, on_serving)


# --- the extension --------------------------------------------------------------------


def tls_extension(
    der: bytes | None,
    *,
    server_cert: str | None = None,
    tls_version: int | None = None,
    cipher_suite: int | None = None,
) -> dict[str, object]:
    """The ASGI TLS extension for a client certificate that has been verified."""
    pem, name = _client_cert_info(der) if der else (None, None)
    return {
        "server_cert": server_cert,
        # Python 3.11 exposes only the leaf, not the verified chain.
        "client_cert_chain": [pem] if pem else [],
        "client_cert_name": name,
        # Only verified certificates get here: TLS with CERT_REQUIRED, or proxy mode.
        "client_cert_error": None,
        "tls_version": tls_version,
        "cipher_suite": cipher_suite,
        PEER_DER_KEY: der,
    }


def _tls_extension(ssl_object: ssl.SSLObject, server_certfile: Path | None) -> dict[str, object]:
    cipher = ssl_object.cipher()
    return tls_extension(
        ssl_object.getpeercert(binary_form=True),
        server_cert=_server_cert_pem(server_certfile) if server_certfile else None,
        tls_version=_TLS_VERSIONS.get(ssl_object.version() or ""),
        cipher_suite=_cipher_id(ssl_object.context, cipher[0]) if cipher else None,
    )


@lru_cache(maxsize=4096)
def _client_cert_info(der: bytes) -> tuple[str, str | None]:
    """The PEM and RFC 4514 subject of a verified client certificate (for the extension)."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    try:
        name: str | None = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        name = None
    return pem, name


@lru_cache(maxsize=16)
def _server_cert_pem(path: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        # Only the first certificate: the spec's server_cert is the leaf, not a chain.
        leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
        return leaf.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return None


_CIPHER_IDS: dict[str, int] = {}


def _cipher_id(context: ssl.SSLContext, name: str) -> int | None:
    """The IANA 16-bit id of an OpenSSL cipher name (names are global, so cached)."""
    if name not in _CIPHER_IDS:
        for cipher in context.get_ciphers():
            # OpenSSL ids carry a 0x0300 prefix above the two IANA bytes.
            _CIPHER_IDS.setdefault(str(cipher["name"]), int(cipher["id"]) & 0xFFFF)
    return _CIPHER_IDS.get(name)
