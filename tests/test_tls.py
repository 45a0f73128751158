"""Mutual TLS end to end: real sockets, real certificates from our own development PKI."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.dev.pki import init_pki, revoke
from gateway.errors import ConfigurationError
from gateway.transport.identity import RevocationList, identity_from_der
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.tls import (
    PEER_DER_KEY,
    ASGIApp,
    Receive,
    Scope,
    Send,
    build_server,
    peer_certificate_der,
    server_ssl_context,
)
from tests.server_thread import ServerThread

# Paths of the requests that reached the app: a refused handshake adds none.
server_hits: list[str] = []
CONFIGURED = frozenset({"politie", "kmar", "ind"})
PARTNERS = [*CONFIGURED, "fiod", "onbekend"]  # fiod: revoked before start; onbekend: unconfigured


def make_app(revocations: RevocationList) -> ASGIApp:
    """A stand-in for the gateway: names the peer from the scope, as the real app does."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        server_hits.append(scope["path"])
        if scope["path"] == "/slow":
            await asyncio.sleep(0.3)  # still answering when a pipelined request follows
        der = peer_certificate_der(scope)
        identity = identity_from_der(der) if der else None
        body: dict[str, object] = {}
        if identity is None or revocations.is_revoked(identity.serial):
            status = 401
        elif identity.kind == "partner" and identity.id not in CONFIGURED:
            status = 403
        else:
            status = 200
            tls = scope["extensions"]["tls"]
            body = {
                "kind": identity.kind,
                "id": identity.id,
                "serial": identity.serial,
                "fingerprint": identity.fingerprint,
                "tls": {k: v for k, v in tls.items() if k != PEER_DER_KEY},
            }
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    pki_dir = tmp_path_factory.mktemp("pki")
    init_pki(pki_dir, PARTNERS, dpo_names=("dpo",))
    revoke(pki_dir, "fiod")
    return PkiPaths(pki_dir)


@pytest.fixture(scope="module")
def other_paths(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    pki_dir = tmp_path_factory.mktemp("other-pki")
    init_pki(pki_dir, ["politie"])
    return PkiPaths(pki_dir)


@pytest.fixture(scope="module")
def revocations(paths: PkiPaths) -> RevocationList:
    return RevocationList(paths.crl, paths.ca_cert)


@pytest.fixture(scope="module")
def server(paths: PkiPaths, revocations: RevocationList) -> Iterator[ServerThread]:
    app = make_app(revocations)
    with ServerThread(build_server(app, host="127.0.0.1", port=0, paths=paths)) as running:
        yield running


def client_context(
    paths: PkiPaths, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=paths.ca_cert)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def partner_context(paths: PkiPaths, partner: str) -> ssl.SSLContext:
    return client_context(paths, paths.partner_cert(partner), paths.partner_key(partner))


def get(server: ServerThread, ctx: ssl.SSLContext) -> httpx.Response:
    with httpx.Client(verify=ctx, timeout=5) as client:
        return client.get(f"https://127.0.0.1:{server.port}/")


def assert_handshake_refused(server: ServerThread, ctx: ssl.SSLContext) -> str:
    """Connect with *ctx* and assert the server refuses the TLS handshake; return the
    client's ``address:port``, as the server's security log names the peer.

    With TLS 1.3 the client finishes its side of the handshake before the server has
    checked the client certificate, so the refusal shows on the first read. asyncio's
    SSL transport closes the connection without flushing the TLS alert, so the client
    sees an end of stream (or a reset) rather than the alert's reason.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        host, port = raw.getsockname()[:2]
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                # No session tickets are issued, so an accepted peer would get no bytes.
                tls.settimeout(2)
                data = tls.recv(1)
        except (ssl.SSLError, ConnectionResetError):
            return f"{host}:{port}"
        except TimeoutError:
            pytest.fail("the server accepted the handshake")
    assert data == b"", "the server accepted the handshake"
    return f"{host}:{port}"


def security_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The security log's lines so far, each parsed from its JSON."""
    return [
        json.loads(record.getMessage())
        for record in list(caplog.records)  # the server thread appends meanwhile
        if record.name == "doelpoort.security"
    ]


def security_line_of(caplog: pytest.LogCaptureFixture, peer: str) -> dict[str, Any]:
    """The one security line about ``peer``; the server writes it on its own thread,
    just after the client has seen the refusal."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in security_lines(caplog) if line["peer"] == peer]
        if lines:
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.01)
    pytest.fail(f"no security log line about {peer}")


def assert_refused_handshake_logged(
    caplog: pytest.LogCaptureFixture, peer: str, reason: str
) -> None:
    line = security_line_of(caplog, peer)
    # Every field, always, in this order; the certificate is unknowable (handshake.py).
    assert list(line) == [
        "event", "time", "peer", "subject", "serial", "fingerprint", "reason",
    ]  # fmt: skip
    assert line["event"] == "handshake-refused"
    assert (line["subject"], line["serial"], line["fingerprint"]) == (None, None, None)
    assert line["reason"] == reason
    assert line["time"].endswith("Z")


def assert_request_refused(server: ServerThread, ctx: ssl.SSLContext) -> None:
    """An HTTP request with *ctx* fails at the transport and never reaches the app."""
    before = len(server_hits)
    with pytest.raises(httpx.TransportError):
        get(server, ctx)
    assert len(server_hits) == before


def test_partner_certificate_yields_identity(server: ServerThread, paths: PkiPaths) -> None:
    response = get(server, partner_context(paths, "politie"))
    assert response.status_code == 200
    body = response.json()
    cert = x509.load_pem_x509_certificate(paths.partner_cert("politie").read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert (body["kind"], body["id"]) == ("partner", "politie")
    assert body["serial"] == cert.serial_number
    assert body["fingerprint"] == hashlib.sha256(der).hexdigest()


def test_dpo_certificate_is_recognised_as_dpo(server: ServerThread, paths: PkiPaths) -> None:
    ctx = client_context(paths, paths.dpo_cert("dpo"), paths.dpo_key("dpo"))
    response = get(server, ctx)
    assert response.status_code == 200
    assert (response.json()["kind"], response.json()["id"]) == ("dpo", "dpo")


def test_scope_carries_the_asgi_tls_extension(server: ServerThread, paths: PkiPaths) -> None:
    tls = get(server, partner_context(paths, "kmar")).json()["tls"]
    assert tls["tls_version"] >= 0x0303
    assert tls["tls_version"] == 0x0304  # 1.3 preferred when both sides offer it
    assert isinstance(tls["cipher_suite"], int)
    assert 0 < tls["cipher_suite"] <= 0xFFFF
    assert tls["client_cert_error"] is None
    assert tls["client_cert_name"] == "O=Doelpoort partners,CN=kmar"
    assert tls["client_cert_chain"] == [paths.partner_cert("kmar").read_text()]
    assert tls["server_cert"] == paths.server_cert.read_text()


def test_tls_1_2_is_accepted(server: ServerThread, paths: PkiPaths) -> None:
    ctx = partner_context(paths, "politie")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    response = get(server, ctx)
    assert response.status_code == 200
    assert response.json()["tls"]["tls_version"] == 0x0303


def test_tls_below_1_2_is_refused(
    server: ServerThread, paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = partner_context(paths, "politie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer them at all
    peer = assert_handshake_refused(server, ctx)
    assert security_line_of(caplog, peer)["event"] == "handshake-refused"


def test_no_client_certificate_fails_the_handshake(
    server: ServerThread, paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    peer = assert_handshake_refused(server, client_context(paths))
    assert_refused_handshake_logged(caplog, peer, "PEER_DID_NOT_RETURN_A_CERTIFICATE")
    assert_request_refused(server, client_context(paths))


def test_certificate_of_another_ca_fails_the_handshake(
    server: ServerThread, paths: PkiPaths, other_paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    # Trusts our server, but presents a certificate from a CA the gateway does not know.
    ctx = client_context(
        paths, other_paths.partner_cert("politie"), other_paths.partner_key("politie")
    )
    peer = assert_handshake_refused(server, ctx)
    assert_refused_handshake_logged(
        caplog, peer, "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    )
    assert_request_refused(server, ctx)


def test_certificate_revoked_before_start_fails_the_handshake(
    server: ServerThread, paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    peer = assert_handshake_refused(server, partner_context(paths, "fiod"))
    assert_refused_handshake_logged(caplog, peer, "CERTIFICATE_VERIFY_FAILED: certificate revoked")
    assert_request_refused(server, partner_context(paths, "fiod"))


def test_server_certificate_is_no_client_certificate(
    server: ServerThread, paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    # Same CA, but its extended key usage is serverAuth only.
    ctx = client_context(paths, paths.server_cert, paths.server_key)
    peer = assert_handshake_refused(server, ctx)
    assert_refused_handshake_logged(
        caplog, peer, "CERTIFICATE_VERIFY_FAILED: unsuitable certificate purpose"
    )


def test_bytes_that_are_not_tls_are_a_refused_handshake(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        host, port = raw.getsockname()[:2]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(1) == b""
    assert_refused_handshake_logged(caplog, f"{host}:{port}", "HTTP_REQUEST")


def test_an_accepted_handshake_leaves_no_security_line(
    server: ServerThread, paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    context = partner_context(paths, "politie")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        host, port = tls.getsockname()[:2]
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(12) == b"HTTP/1.1 200"
    # A refusal after it: once its line is written, a line about the first would be too.
    security_line_of(caplog, assert_handshake_refused(server, client_context(paths)))
    assert f"{host}:{port}" not in [line["peer"] for line in security_lines(caplog)]


def test_valid_certificate_of_unconfigured_partner_is_forbidden(
    server: ServerThread, paths: PkiPaths
) -> None:
    assert get(server, partner_context(paths, "onbekend")).status_code == 403


def test_revocation_while_running_applies_to_the_next_request(
    server: ServerThread, paths: PkiPaths, revocations: RevocationList
) -> None:
    with httpx.Client(verify=partner_context(paths, "ind"), timeout=5) as client:
        url = f"https://127.0.0.1:{server.port}/"
        first = client.get(url)
        assert first.status_code == 200
        serial = first.json()["serial"]
        assert not revocations.is_revoked(serial)

        assert revoke(paths.pki_dir, "ind").revoked == (serial,)

        assert revocations.is_revoked(serial)
        # Same keep-alive connection: the handshake is not repeated, the app still refuses.
        assert client.get(url).status_code == 401


def exchange(server: ServerThread, paths: PkiPaths, data: bytes) -> bytes:
    """Send ``data`` on one politie connection; everything the server writes until it closes."""
    context = partner_context(paths, "politie")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.sendall(data)  # the server may close before all of it is sent
        answer = b""
        with contextlib.suppress(ssl.SSLError, OSError):
            while chunk := tls.recv(65536):
                answer += chunk
    return answer


def problem_of(response: bytes) -> dict[str, object]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem: dict[str, object] = json.loads(body)
    return problem


def test_bytes_that_are_not_http_get_a_problem_document(
    server: ServerThread, paths: PkiPaths
) -> None:
    answer = exchange(server, paths, b"GARBAGE / HTTP/9.9\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    problem = problem_of(answer)
    assert problem["type"] == "urn:doelpoort:problem:bad-request"
    assert problem["status"] == 400


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100_000 + b"\r\n\r\n", b"431"),
        # Small enough to arrive in the same read as the request before it.
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
    ],
    ids=["not-http", "head-too-large", "head-too-large-in-one-read"],
)
def test_a_refusal_comes_after_the_answers_to_the_requests_pipelined_before_it(
    server: ServerThread, paths: PkiPaths, refused: bytes, status: bytes
) -> None:
    # Written at once, the refusal would be read as the answer to the first request.
    first = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(server, paths, first + refused)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    refusal = answer.index(b"HTTP/1.1 " + status)
    assert answer.count(b"HTTP/1.1 ") == 2
    assert problem_of(answer[refusal:])["status"] == int(status)


def test_server_context_settings(paths: PkiPaths) -> None:
    ctx = server_ssl_context(paths)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    # Only the partner CA is trusted, not the system store.
    [ca] = ctx.get_ca_certs()
    assert ("commonName", "Doelpoort development CA") in (rdn[0] for rdn in ca["subject"])


def test_server_context_requires_a_crl(tmp_path: Path, paths: PkiPaths) -> None:
    copy = PkiPaths(tmp_path)
    for name in ("ca.pem", "server.pem", "server.key"):
        (tmp_path / name).write_bytes((paths.pki_dir / name).read_bytes())
    with pytest.raises(ConfigurationError, match=r"crl\.pem is missing"):
        server_ssl_context(copy)
    (tmp_path / "crl.pem").write_text("not a CRL")
    with pytest.raises(ConfigurationError, match="revocation list"):
        server_ssl_context(copy)


def test_peer_certificate_der_reads_the_extension(paths: PkiPaths) -> None:
    pem = paths.partner_cert("politie").read_text()
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert peer_certificate_der({"type": "http"}) is None
    assert peer_certificate_der({"extensions": {}}) is None
    # Without the cached DER (e.g. set by another server), the PEM chain is decoded.
    assert peer_certificate_der({"extensions": {"tls": {"client_cert_chain": [pem]}}}) == der
    failed = {"client_cert_chain": [pem], "client_cert_error": "expired", PEER_DER_KEY: der}
    assert peer_certificate_der({"extensions": {"tls": failed}}) is None


def test_identity_from_der_names_only_doelpoort_certificates(paths: PkiPaths) -> None:
    def der_of(path: Path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(path.read_text())

    partner = der_of(paths.partner_cert("politie"))
    assert identity_from_der(partner) is identity_from_der(partner)  # cached
    assert identity_from_der(der_of(paths.server_cert)) is None  # no doelpoort URI
    assert identity_from_der(b"not a certificate") is None

    ambiguous = _self_signed(
        [
            x509.UniformResourceIdentifier("urn:doelpoort:partner:politie"),
            x509.UniformResourceIdentifier("urn:doelpoort:dpo:dpo"),
        ]
    )
    assert identity_from_der(ambiguous) is None
    bad_id = _self_signed([x509.UniformResourceIdentifier("urn:doelpoort:partner:Politie")])
    assert identity_from_der(bad_id) is None


def test_revocation_list_fails_closed(
    tmp_path: Path, paths: PkiPaths, other_paths: PkiPaths
) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_bytes(paths.crl.read_bytes())
    revocations = RevocationList(crl, paths.ca_cert)
    assert not revocations.is_revoked(12345)
    # Expired: OpenSSL would refuse the handshake; the app refuses the request.
    assert revocations.is_revoked(12345, now=datetime.now(UTC) + timedelta(days=365))

    crl.write_bytes(other_paths.crl.read_bytes())  # signed by another CA
    assert revocations.is_revoked(12345)
    crl.write_text("garbage")
    assert revocations.is_revoked(12345)
    crl.unlink()
    assert revocations.is_revoked(12345)

    crl.write_bytes(paths.crl.read_bytes())  # recovers once the CRL is good again
    assert not revocations.is_revoked(12345)

    with pytest.raises(ConfigurationError):
        RevocationList(other_paths.crl, paths.ca_cert)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_partner_ca_with_a_dsa_key_is_refused(tmp_path: Path, paths: PkiPaths) -> None:
    # cryptography deprecates DSA, so the CA is made by the openssl command; the refusal
    # names the key type and raises no deprecation warning (filterwarnings = error).
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("dsaparam", "-out", "params.pem", "2048")
    openssl("gendsa", "-out", "ca.key", "params.pem")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Synthetic DSA CA",
            "-days", "30", "-out", "ca.pem")  # fmt: skip
    with pytest.raises(ConfigurationError, match="DSA key"):
        RevocationList(paths.crl, tmp_path / "ca.pem")


def _self_signed(sans: list[x509.GeneralName]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_broken_revocation_list_is_read_once_not_per_request(
    tmp_path: Path, paths: PkiPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Failing closed must not cost a file read and a signature check per request while
    # the operator mends the file; a new file (another stat) is read again at once.
    crl = tmp_path / "crl.pem"
    crl.write_bytes(paths.crl.read_bytes())
    revocations = RevocationList(crl, paths.ca_cert)
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    crl.write_text("garbage")
    assert all(revocations.is_revoked(12345) for _ in range(5))
    assert reads.count(crl) == 1
    crl.write_bytes(read_bytes(paths.crl))
    assert not revocations.is_revoked(12345)
    assert reads.count(crl) == 2
