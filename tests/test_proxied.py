"""Behind a TLS-terminating proxy: the forwarded Client-Cert header, over a real unix socket.

The proxy itself (HAProxy, nginx, Envoy) cannot run here; each test plays its part by
writing the header it would forward. Everything on the gateway's side is real: the
socket, the server, the verification against the partner CA, the live CRL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner

from gateway._cli import app
from gateway.dev.pki import init_pki, revoke
from gateway.errors import ConfigurationError
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.proxied import (
    SOCKET_MODE,
    ForwardedCertificates,
    bind_unix_socket,
    build_proxied_server,
)
from tests.gateway_support import GHOST, Deployment, make_settings, running_gateway


def client_cert(path: Path) -> str:
    """The RFC 9440 Client-Cert value a proxy forwards for the certificate at ``path``."""
    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
    return ":" + base64.b64encode(der).decode() + ":"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # Unix socket paths are short (108 bytes): not under pytest's deep temporary tree.
    with tempfile.TemporaryDirectory(prefix="dp-") as short:
        var = tmp_path_factory.mktemp("proxied") / "var"
        settings = make_settings(var).replace(proxy_socket=Path(short) / "gateway.sock")
        with running_gateway(settings) as deployment:
            yield deployment


def over_socket(gateway: Deployment) -> httpx.Client:
    assert gateway.settings.proxy_socket is not None
    transport = httpx.HTTPTransport(uds=str(gateway.settings.proxy_socket))
    return httpx.Client(transport=transport, base_url="http://gateway", timeout=10.0)


def request_body(gateway: Deployment) -> dict[str, object]:
    return {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0950",
        "justification": "proxy mode test",
        "subject": gateway.subjects["ct_subject"],
        "datasets": ["ind/residence"],
    }


def disclose(
    gateway: Deployment, headers: dict[str, str] | list[tuple[str, str]]
) -> httpx.Response:
    with over_socket(gateway) as client:
        return client.post("/v1/disclosures", json=request_body(gateway), headers=headers)


def test_a_forwarded_partner_certificate_is_that_partner(proxied: Deployment) -> None:
    header = client_cert(proxied.paths.partner_cert("politie"))
    response = disclose(proxied, {"Client-Cert": header})
    assert response.status_code == 200, response.text
    assert response.json()["disclosure"]["requester"] == "politie"


def test_the_dpo_certificate_opens_the_dpo_endpoints(proxied: Deployment) -> None:
    with over_socket(proxied) as client:
        headers = {"Client-Cert": client_cert(proxied.paths.dpo_cert("dpo"))}
        assert client.get("/openapi.json", headers=headers).status_code == 200
        assert client.get("/openapi.json").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "politie",
        ":not base64!:",
        ":" + base64.b64encode(b"not a certificate").decode() + ":",
        "::",
        "",
    ],
)
def test_a_malformed_forwarded_certificate_is_no_certificate(
    proxied: Deployment, header: str
) -> None:
    response = disclose(proxied, {"Client-Cert": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_without_a_forwarded_certificate_the_request_is_unauthenticated(
    proxied: Deployment,
) -> None:
    assert disclose(proxied, {}).status_code == 401


def test_two_forwarded_certificates_are_refused(proxied: Deployment) -> None:
    one = client_cert(proxied.paths.partner_cert("politie"))
    other = client_cert(proxied.paths.partner_cert("kmar"))
    assert disclose(proxied, [("Client-Cert", one), ("Client-Cert", other)]).status_code == 401


def test_a_certificate_of_another_ca_is_refused_even_from_the_proxy(
    proxied: Deployment, tmp_path: Path
) -> None:
    # Same partner name, another CA: the gateway verifies the chain itself.
    init_pki(tmp_path / "foreign", ["politie"])
    foreign = client_cert(PkiPaths(tmp_path / "foreign").partner_cert("politie"))
    assert disclose(proxied, {"Client-Cert": foreign}).status_code == 401
    assert disclose(proxied, {"Client-Cert": foreign}).status_code == 401
    # The operator learns why, once per certificate: a security log line.
    der = base64.b64decode(foreign.strip(":"))
    said = [line for line in proxied.log.lines if hashlib.sha256(der).hexdigest() in line]
    assert len(said) == 1
    level, logger, message = said[0].split(" ", 2)
    assert (level, logger) == ("WARNING", "doelpoort.security")
    line = json.loads(message)
    assert line["event"] == "forwarded-certificate-refused"
    assert line["subject"] == "O=Doelpoort partners,CN=politie"
    assert line["peer"] is None  # the proxy's unix socket: no client address
    assert line["reason"].startswith("does not verify against the partner CA")


def test_a_server_certificate_is_no_client_certificate(proxied: Deployment) -> None:
    server = client_cert(proxied.paths.server_cert)  # the partner CA's, but not clientAuth
    assert disclose(proxied, {"Client-Cert": server}).status_code == 401


def test_an_unconfigured_partner_gets_403(proxied: Deployment) -> None:
    ghost = client_cert(proxied.paths.partner_cert(GHOST))
    assert disclose(proxied, {"Client-Cert": ghost}).status_code == 403


def test_a_revoked_certificate_is_refused_at_once(proxied: Deployment) -> None:
    header = client_cert(proxied.paths.partner_cert("om"))
    with over_socket(proxied) as client:
        assert client.get("/openapi.json", headers={"Client-Cert": header}).status_code == 200
        revoke(proxied.settings.pki_dir, "om")
        assert client.get("/openapi.json", headers={"Client-Cert": header}).status_code == 401


def test_validity_is_judged_at_each_request_not_at_start_up(tmp_path: Path) -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    init_pki(tmp_path, ["politie"], now=issued)
    header = client_cert(PkiPaths(tmp_path).partner_cert("politie")).encode()
    now = [issued - timedelta(hours=2)]  # the gateway started before the certificate
    forwarded = ForwardedCertificates(PkiPaths(tmp_path).ca_cert, clock=lambda: now[0])
    assert forwarded.verify(header) is None  # not yet valid
    now[0] = issued
    assert forwarded.verify(header) is not None  # issued since start-up: accepted
    now[0] = issued + timedelta(days=3 * 365)
    assert forwarded.verify(header) is None  # expired since it was first verified


def test_an_expired_crl_stops_start_up(tmp_path: Path) -> None:
    # As in TLS mode: an unusable CRL would otherwise turn every peer away as revoked.
    init_pki(tmp_path / "pki", ["politie"], now=datetime.now(UTC) - timedelta(days=200))
    with (
        tempfile.TemporaryDirectory(prefix="dp-") as short,
        pytest.raises(ConfigurationError, match="CRL"),
    ):
        build_proxied_server(
            object(),  # type: ignore[arg-type]  # never served
            socket_path=Path(short) / "g.sock",
            paths=PkiPaths(tmp_path / "pki"),
        )


def test_the_socket_directory_must_be_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigurationError, match="writable by no one else"):
        bind_unix_socket(shared / "g.sock")


def test_the_header_name_is_case_insensitive(proxied: Deployment) -> None:
    assert proxied.settings.proxy_socket is not None
    header = client_cert(proxied.paths.partner_cert("politie"))
    request = f"GET /openapi.json HTTP/1.1\r\nHost: g\r\nCLIENT-CERT: {header}\r\n\r\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(proxied.settings.proxy_socket))
        conn.settimeout(10)
        conn.sendall(request.encode())
        assert conn.makefile("rb").readline().split()[1] == b"200"


def test_the_socket_is_for_owner_and_group_only(proxied: Deployment) -> None:
    assert proxied.settings.proxy_socket is not None
    mode = proxied.settings.proxy_socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == SOCKET_MODE


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dp-") as short:
        path = Path(short) / "g.sock"
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()  # the file stays, no one listens
        live = bind_unix_socket(path)
        live.listen()
        try:
            with pytest.raises(ConfigurationError, match="another process"):
                bind_unix_socket(path)
        finally:
            live.close()
        path.unlink()
        path.write_text("not a socket")
        with pytest.raises(ConfigurationError, match="not a socket"):
            bind_unix_socket(path)


def test_in_tls_mode_the_header_is_never_read(gateway: Deployment) -> None:
    # The identity is the TLS peer's, whatever Client-Cert the client writes itself.
    forged = client_cert(gateway.paths.partner_cert("kmar"))
    with gateway.client("politie") as client:
        response = client.post(
            "/v1/disclosures", json=request_body(gateway), headers={"Client-Cert": forged}
        )
    assert response.status_code == 200, response.text
    assert response.json()["disclosure"]["requester"] == "politie"


def test_a_certificate_holds_for_its_own_request_only(proxied: Deployment) -> None:
    # One keep-alive connection from the proxy carries many partners' requests.
    assert proxied.settings.proxy_socket is not None
    politie = client_cert(proxied.paths.partner_cert("politie"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(proxied.settings.proxy_socket))
        conn.settimeout(10)
        reader = conn.makefile("rb")
        statuses = []
        for header in (f"Client-Cert: {politie}\r\n", "", f"Client-Cert: {politie}\r\n", ""):
            conn.sendall(f"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n{header}\r\n".encode())
            statuses.append(int(reader.readline().split()[1]))
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
    assert statuses == [200, 401, 200, 401]


@pytest.mark.parametrize("from_env", [False, True])
def test_serve_refuses_an_address_beside_the_proxy_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: bool
) -> None:
    socket_args = ["--proxy-socket", str(tmp_path / "g.sock")]
    if from_env:
        monkeypatch.setenv("DOELPOORT_PROXY_SOCKET", str(tmp_path / "g.sock"))
        socket_args = []
    args = ["serve", *socket_args, "--port", "9443", "--var-dir", str(tmp_path / "var")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "leave out --host and --port" in result.output
