"""Behind a TLS-terminating proxy (SPEC §4): the client certificate the proxy forwards.

In this mode the gateway does not terminate TLS. A proxy (HAProxy, nginx, Envoy) does,
requires a client certificate from the partner CA, and forwards each request over a unix
socket with that certificate in the RFC 9440 ``Client-Cert`` header (``:`` base64 of the
DER ``:``). The header is trusted only because of where it comes from: in this mode the
gateway listens on nothing but a unix socket that only its own user and group may open
(mode 0660; put the proxy's user in that group), so no remote client can write the
header. In TLS mode the header is never read.

The gateway does not take the proxy's word alone: it verifies the forwarded certificate
against the partner CA itself (chain, validity period, the clientAuth key usage), and
``peer()`` checks the CRL per request, as in TLS mode. The result goes into the same ASGI
TLS extension that :class:`~gateway.tls.TLSHttpToolsProtocol` fills, so everything after
the transport is the same in both modes. The header is removed before the app sees it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import socket
import stat
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.errors import ConfigurationError
from gateway.pki import PkiPaths
from gateway.tls import PEER_DER_KEY, ASGIApp, TLSHttpToolsProtocol, client_cert_info

CLIENT_CERT_HEADER = b"client-cert"
SOCKET_MODE = 0o660
_CACHE_SIZE = 1024


class ForwardedCertificates:
    """Verifies forwarded client certificates against the partner CA; caches the
    verified ones (a certificate stays valid only within its validity period)."""

    def __init__(self, ca_cert: Path) -> None:
        try:
            roots = x509.load_pem_x509_certificates(ca_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"the partner CA {ca_cert} is unreadable") from exc
        self._verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
        self._verified: OrderedDict[bytes, tuple[datetime, datetime]] = OrderedDict()

    def verify(self, header: bytes) -> bytes | None:
        """The DER of a valid partner-CA client certificate in an RFC 9440 value; or None."""
        der = _decode(header)
        if der is None:
            return None
        now = datetime.now(UTC)
        window = self._verified.get(der)
        if window is None:
            try:
                leaf = x509.load_der_x509_certificate(der)
                self._verifier.verify(leaf, [])
            except (ValueError, VerificationError):
                return None
            window = (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
            self._verified[der] = window
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return der if window[0] <= now <= window[1] else None


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
    gateway has verified it, becomes the ASGI TLS extension (request-head limit kept)."""

    forwarded: ForwardedCertificates  # set on the subclass `protocol_for` makes

    def on_headers_complete(self) -> None:
        values = [v for n, v in self.headers if n == CLIENT_CERT_HEADER]
        self.headers[:] = [(n, v) for n, v in self.headers if n != CLIENT_CERT_HEADER]
        # One certificate or none: two headers would leave the choice to us.
        der = self.forwarded.verify(values[0]) if len(values) == 1 else None
        if der is not None:
            pem, name = client_cert_info(der)
            self.scope["extensions"] = {
                "tls": {
                    "server_cert": None,
                    "client_cert_chain": [pem],
                    "client_cert_name": name,
                    "client_cert_error": None,
                    "tls_version": None,
                    "cipher_suite": None,
                    PEER_DER_KEY: der,
                }
            }
        super().on_headers_complete()


def protocol_for(ca_cert: Path) -> type[ProxiedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to the partner CA."""
    forwarded = ForwardedCertificates(ca_cert)
    return type("ProxiedProtocol", (ProxiedHttpToolsProtocol,), {"forwarded": forwarded})


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening-ready socket at ``path``, mode 0660 from the start.

    A stale socket file (no one accepting) is replaced; a live one is an error, as is
    any other file in its place.
    """
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigurationError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # stale: left by a gateway that stopped
            else:
                raise ConfigurationError(f"another process is serving on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o777 & ~SOCKET_MODE)  # no moment at which others may connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {path}: {exc}") from exc
    finally:
        os.umask(previous)
    with contextlib.suppress(OSError):
        os.chmod(path, SOCKET_MODE)
    return sock


class _SocketServer(uvicorn.Server):
    """A uvicorn server on a socket bound before it starts."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.socket = sock

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        super().run(sockets=[self.socket])


def build_proxied_server(
    app: ASGIApp, *, socket_path: Path, paths: PkiPaths, log_level: str = "warning"
) -> uvicorn.Server:
    """A uvicorn server for *app* on the proxy's unix socket (plain HTTP, see above)."""
    if not paths.ca_cert.is_file() or not paths.crl.is_file():
        raise ConfigurationError("the partner CA or its CRL is missing; run `doelpoort pki init`")
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
    return _SocketServer(config, bind_unix_socket(socket_path))
