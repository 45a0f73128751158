"""Behind a TLS-terminating proxy (SPEC §4): the client certificate the proxy forwards.

In this mode the gateway does not terminate TLS. A proxy (HAProxy, nginx, Envoy) does,
requires a client certificate from the partner CA, and forwards each request over a unix
socket with that certificate in the RFC 9440 ``Client-Cert`` header (``:`` base64 of the
DER ``:``). The header is trusted only because of where it comes from: in this mode the
gateway listens on nothing but a unix socket that only its own user and group may open
(mode 0660; put the proxy's user in that group), so no remote client can write the
header. In TLS mode the header is never read.

The gateway does not take the proxy's word alone: it verifies the forwarded certificate
against the partner CA itself (chain, validity period, and the leaf check both modes
share: no CA, clientAuth), and admits it per request as in TLS mode (CRL, issuance
register or pins: `gateway.transport.admission`). The result goes into the same ASGI
TLS extension that :class:`~gateway.transport.tls.TLSHttpToolsProtocol` fills, so everything after
the transport is the same in both modes. The header is removed before the app sees it.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
import stat
from datetime import datetime
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from audit.clock import Clock, utc_now
from gateway.errors import ConfigurationError
from gateway.transport import security_log
from gateway.transport.identity import client_leaf_problem
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.serving import AnnouncingServer, OnServing
from gateway.transport.tls import ASGIApp, TLSHttpToolsProtocol, require_partner_pki, tls_extension

CLIENT_CERT_HEADER = b"client-cert"
SOCKET_MODE = 0o660
_CACHE_SIZE = 1024


class ForwardedCertificates:
    """Verifies forwarded client certificates against the partner CA.

    A verified certificate is remembered with the span in which its whole chain is
    valid, so a repeat costs a look-up; every verification reads the clock, so a
    certificate issued after start-up is accepted and one that expires is refused.
    """

    def __init__(self, ca_cert: Path, *, clock: Clock = utc_now) -> None:
        try:
            self._store = Store(x509.load_pem_x509_certificates(ca_cert.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"the partner CA {ca_cert} is unreadable") from exc
        self._clock = clock
        self._verified: dict[bytes, tuple[datetime, datetime]] = {}
        # Said once each (a security log line), so a misconfigured proxy shows in the log
        # without flooding it.
        self._reported: set[bytes] = set()

    def verify(self, header: bytes) -> bytes | None:
        """The DER of a valid partner-CA client certificate in an RFC 9440 value; or None."""
        der = _decode(header)
        if der is None:
            self._report(None, "a Client-Cert header is not RFC 9440 (:base64 DER:)")
            return None
        now = self._clock()
        span = self._verified.get(der)
        if span is None:
            try:
                verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
                chain = verifier.verify(x509.load_der_x509_certificate(der), []).chain
            except (ValueError, VerificationError) as exc:
                self._report(der, f"does not verify against the partner CA: {exc}")
                return None
            # cryptography's verifier takes a leaf without extended key usage; the
            # check TLS mode applies refuses it here too.
            if (problem := client_leaf_problem(der)) is not None:
                self._report(der, f"not a client certificate: {problem}")
                return None
            span = (
                max(c.not_valid_before_utc for c in chain),
                min(c.not_valid_after_utc for c in chain),
            )
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()  # bounded; partners are far fewer than this
            self._verified[der] = span
        return der if span[0] <= now <= span[1] else None

    def _report(self, der: bytes | None, reason: str) -> None:
        key = der or b""
        if key not in self._reported and len(self._reported) < _CACHE_SIZE:
            self._reported.add(key)
            security_log.forwarded_certificate_refused(der, reason)


def _decode(header: bytes) -> bytes | None:
    """RFC 9440: a structured-field byte sequence, ``:`` base64 ``:``."""
    value = header.strip()
    if len(value) < 3 or value[:1] != b":" or value[-1:] != b":":
        return None
    try:
        return base64.b64decode(value[1:-1], validate=True)
    except (binascii.Error, ValueError):
        return None


class ProxiedHttpToolsProtocol(TLSHttpToolsProtocol):
    """uvicorn's protocol on the proxy's unix socket: the forwarded certificate, once the
    gateway has verified it, becomes the ASGI TLS extension (request-head limit kept).

    ``Client-Cert`` never enters the scope's headers, trailers included.
    """

    forwarded: ForwardedCertificates  # set on the subclass `protocol_for` makes
    _client_certs: list[bytes]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._client_certs = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == CLIENT_CERT_HEADER:
            self._client_certs.append(value)
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # One certificate or none: with two, the choice would be ours to guess.
        certs = self._client_certs
        der = self.forwarded.verify(certs[0]) if len(certs) == 1 else None
        if der is not None:
            self.scope["extensions"] = {"tls": tls_extension(der)}  # type: ignore[dict-item]
        super().on_headers_complete()


def protocol_for(ca_cert: Path) -> type[ProxiedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to the partner CA."""
    forwarded = ForwardedCertificates(ca_cert)
    return type("ProxiedProtocol", (ProxiedHttpToolsProtocol,), {"forwarded": forwarded})


def bind_unix_socket(path: Path) -> socket.socket:
    """A socket bound at ``path`` with mode 0660, not yet listening.

    Until uvicorn listens, connecting is refused, so no one connects while the mode is
    still the umask's. The directory must be the gateway user's own and not writable by
    others (or another user could put their socket in its place). A stale socket file
    (connection refused) is replaced; a live one, or any other file, is an error.
    """
    parent = path.parent.stat()
    if parent.st_uid != os.geteuid() or parent.st_mode & 0o022:
        raise ConfigurationError(
            f"{path.parent} must belong to this user and be writable by no one else"
        )
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigurationError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                pass  # stale: left by a gateway that stopped
            except OSError as exc:
                raise ConfigurationError(f"cannot tell whether {path} is in use: {exc}") from exc
            else:
                raise ConfigurationError(f"another process is serving on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink(missing_ok=True)
        sock.bind(str(path))
        os.chmod(path, SOCKET_MODE, follow_symlinks=False)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {path}: {exc}") from exc
    return sock


class _SocketServer(AnnouncingServer):
    """A uvicorn server on a socket bound before it starts; removes its file at the end."""

    def __init__(
        self,
        config: uvicorn.Config,
        sock: socket.socket,
        path: Path,
        on_serving: OnServing | None = None,
    ) -> None:
        super().__init__(config, on_serving)
        self.socket = sock
        self._path = path
        self._inode = path.stat().st_ino

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets=[self.socket])
        finally:
            try:
                if self._path.lstat().st_ino == self._inode:
                    self._path.unlink()
            except OSError:
                pass  # gone already, or replaced: not ours to remove


def build_proxied_server(
    app: ASGIApp,
    *,
    socket_path: Path,
    paths: PkiPaths,
    log_level: str = "warning",
    on_serving: OnServing | None = None,
) -> AnnouncingServer:
    """A uvicorn server for *app* on the proxy's unix socket (plain HTTP, see above);
    ``on_serving`` is called once it serves (`gateway.transport.serving`)."""
    require_partner_pki(paths)
    protocol = protocol_for(paths.ca_cert)  # the CA is read now: errors surface here
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=protocol,
        ws="none",
        access_log=False,
        log_level=log_level,
        proxy_headers=False,  # the one forwarded header trusted is Client-Cert, read above
        server_header=False,
    )
    return _SocketServer(config, bind_unix_socket(socket_path), socket_path, on_serving)
