"""Only known certificates get in, in both modes (issue 12): the attacks, over real TLS.

A certificate the partner CA's key signed is not enough. The gateway admits one the
development CA issued through its register, or one the catalog pins for its partner;
`pki revoke <partner>` revokes every certificate the partner was ever issued, at once
and after a restart; and a leaf that is a CA, or lacks clientAuth, is refused in TLS
mode as behind a proxy. Proxy mode is played as tests/test_proxied.py plays it: the
test writes the Client-Cert header a proxy would forward.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from gateway._cli import app
from gateway.dev import issuance
from gateway.dev.pki import issue_partner_certificate
from gateway.settings import Settings
from gateway.transport.pki_paths import PkiPaths
from tests.gateway_support import Deployment, copy_tree, make_settings, running_gateway
from tests.pki_support import der, sign_with_ca, write_pair


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # Unix socket paths are short (108 bytes): not under pytest's deep temporary tree.
    with tempfile.TemporaryDirectory(prefix="dp-") as short:
        var = tmp_path_factory.mktemp("admission-proxied") / "var"
        settings = make_settings(var).replace(proxy_socket=Path(short) / "gateway.sock")
        with running_gateway(settings) as deployment:
            yield deployment


@pytest.fixture(params=["tls", "proxied"])
def deployment(
    request: pytest.FixtureRequest, gateway: Deployment, proxied: Deployment
) -> Deployment:
    """The gateway in each mode: terminating TLS itself, and behind a proxy."""
    return gateway if request.param == "tls" else proxied


def status(gw: Deployment, cert: Path, key: Path) -> int:
    """The status of a request that needs a known peer, made with ``cert``."""
    if gw.settings.proxy_socket is None:
        context = gw.ssl_context(cert, key)
        with httpx.Client(base_url=gw.base_url, verify=context, timeout=10.0) as client:
            return client.get("/.well-known/jwks.json").status_code
    forwarded = x509.load_pem_x509_certificate(cert.read_bytes())
    header = ":" + base64.b64encode(der(forwarded)).decode() + ":"
    transport = httpx.HTTPTransport(uds=str(gw.settings.proxy_socket))
    with httpx.Client(transport=transport, base_url="http://gateway", timeout=10.0) as client:
        return client.get("/.well-known/jwks.json", headers={"Client-Cert": header}).status_code


def own_pair(gw: Deployment, partner: str) -> tuple[Path, Path]:
    return gw.paths.partner_cert(partner), gw.paths.partner_key(partner)


SECURITY_LINE = "WARNING doelpoort.security "


def refusals(gw: Deployment, cert: x509.Certificate) -> list[dict[str, Any]]:
    """The security log's lines about ``cert``, each a JSON object (deploy/README.md)."""
    fingerprint = hashlib.sha256(der(cert)).hexdigest()
    lines = [json.loads(line.removeprefix(SECURITY_LINE)) for line in gw.log.lines
             if line.startswith(SECURITY_LINE)]  # fmt: skip
    return [line for line in lines if line["fingerprint"] == fingerprint]


def record_in_register(gw: Deployment, cert: x509.Certificate, partner: str) -> None:
    """As if the development CA had issued ``cert`` through its register."""
    line = issuance.issued_line(cert, "partner", partner, datetime.now(UTC))
    issuance.append(gw.paths, [line])


# --- a certificate the CA key signed outside the register -------------------------------


def test_a_certificate_signed_outside_the_register_is_refused_and_logged(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Whoever holds the CA key (a copy of ca.key, a CA that signs what it is given)
    # makes a second certificate for politie, with a key of their own.
    rogue, key = sign_with_ca(deployment.paths, "politie")
    cert_path, key_path = write_pair(tmp_path, "rogue", rogue, key)

    assert status(deployment, cert_path, key_path) == 401
    assert status(deployment, *own_pair(deployment, "politie")) == 200

    [line] = refusals(deployment, rogue)[-1:]
    assert line["event"] == "certificate-refused"
    assert line["serial"] == f"{rogue.serial_number:x}"
    assert line["subject"] == "O=Not via the register,CN=politie"
    if deployment.settings.proxy_socket is None:  # behind a proxy no address is known
        assert line["peer"].startswith("127.0.0.1:")
    assert "neither in the issuance register nor pinned" in line["reason"]


def test_an_unknown_certificate_gets_the_same_answer_whatever_partner_it_names(
    gateway: Deployment, tmp_path: Path
) -> None:
    # Refused before the catalog is consulted: it cannot probe which partners exist.
    answers = set()
    for partner in ("politie", "ghost", "nobody-here"):
        cert, key = sign_with_ca(gateway.paths, partner)
        context = gateway.ssl_context(*write_pair(tmp_path, partner, cert, key))
        with httpx.Client(base_url=gateway.base_url, verify=context, timeout=10.0) as client:
            response = client.get("/.well-known/jwks.json")
        answers.add((response.status_code, response.json()["detail"]))
    assert answers == {(401, "the client certificate is not registered with this gateway")}


# --- revoking a partner revokes the partner ---------------------------------------------


def test_revoking_a_partner_revokes_every_certificate_it_was_issued(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    var = str(settings.var_dir)
    second_key = ec.generate_private_key(ec.SECP256R1())
    with running_gateway(settings) as gw:
        own = own_pair(gw, "politie")
        # A second certificate for politie, another key, issued through the register
        # while the gateway runs: admitted from the next request on.
        second = issue_partner_certificate(settings.pki_dir, "politie", second_key.public_key())
        extra = write_pair(tmp_path, "second", second, second_key)
        assert status(gw, *own) == 200
        assert status(gw, *extra) == 200

    with running_gateway(settings) as gw:  # a restart: both still admitted
        assert status(gw, *own) == 200
        assert status(gw, *extra) == 200

        result = CliRunner().invoke(app, ["pki", "revoke", "politie", "--var-dir", var])
        assert result.exit_code == 0, result.output
        own_serial = x509.load_pem_x509_certificate(own[0].read_bytes()).serial_number
        assert f"{own_serial:x}" in result.output
        assert f"{second.serial_number:x}" in result.output

        # At once, without a restart: neither is admitted; other partners are.
        assert status(gw, *own) == 401
        assert status(gw, *extra) == 401
        assert status(gw, *own_pair(gw, "kmar")) == 200

        again = CliRunner().invoke(app, ["pki", "revoke", "politie", "--var-dir", var])
        assert again.exit_code == 2
        assert "already revoked" in again.output

    with running_gateway(settings) as gw:  # after a restart the handshake refuses both
        for pair in (own, extra):
            with pytest.raises(httpx.TransportError):
                status(gw, *pair)
        assert status(gw, *own_pair(gw, "kmar")) == 200


def test_revoking_one_certificate_leaves_the_partners_others(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    new_key = ec.generate_private_key(ec.SECP256R1())
    with running_gateway(settings) as gw:
        # A key rollover without a gap: the new certificate first, then the old one goes.
        new = issue_partner_certificate(settings.pki_dir, "kmar", new_key.public_key())
        new_pair = write_pair(tmp_path, "new", new, new_key)
        old = x509.load_pem_x509_certificate(gw.paths.partner_cert("kmar").read_bytes())
        args = [
            "pki",
            "revoke",
            "--serial",
            f"{old.serial_number:X}",
            "--var-dir",
            str(gw.settings.var_dir),
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert status(gw, *own_pair(gw, "kmar")) == 401
        assert status(gw, *new_pair) == 200


# --- one leaf check, both modes -------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        pytest.param({"ca": True}, "basicConstraints", id="ca-true"),
        pytest.param({"usages": None}, "no extended key usage", id="no-eku"),
    ],
)
def test_a_leaf_that_is_no_client_certificate_is_refused(
    deployment: Deployment, tmp_path: Path, profile: dict[str, object], reason: str
) -> None:
    # Known to the register, so nothing but the leaf check stands in its way. In TLS
    # mode OpenSSL completes the handshake with either; cryptography's verifier (proxy
    # mode) refuses the CA but takes a leaf without extended key usage.
    cert, key = sign_with_ca(deployment.paths, "politie", **profile)  # type: ignore[arg-type]
    record_in_register(deployment, cert, "politie")
    assert status(deployment, *write_pair(tmp_path, "leaf", cert, key)) == 401
    said = refusals(deployment, cert)
    assert said
    assert reason in said[-1]["reason"]


# --- certificates pinned in the catalog (an external CA) ------------------------------


def test_pinned_certificates_are_admitted_for_their_partner_only(tmp_path: Path) -> None:
    made: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}

    def pin(settings: Settings) -> None:
        # The dev CA plays an external CA here: its certificates below are not in the
        # register; only the catalog vouches for them.
        paths = PkiPaths(settings.pki_dir)
        made["politie"] = sign_with_ca(paths, "politie")
        kmar_key = ec.generate_private_key(ec.SECP256R1())
        made["kmar-1"] = sign_with_ca(paths, "kmar", key=kmar_key)
        made["kmar-2"] = sign_with_ca(paths, "kmar", key=kmar_key)  # the same key again
        made["politie-with-kmar-key"] = sign_with_ca(paths, "politie", key=kmar_key)
        politie_pin = hashlib.sha256(der(made["politie"][0])).hexdigest().upper()
        kmar_spki = hashlib.sha256(
            made["kmar-1"][0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()
        connectors = settings.connectors_dir
        with (connectors / "politie.yaml").open("a") as yaml_file:
            colons = ":".join(politie_pin[i : i + 2] for i in range(0, 64, 2))
            yaml_file.write(f"certificates:\n  - sha256: '{colons}'\n")
        with (connectors / "kmar.yaml").open("a") as yaml_file:
            yaml_file.write(f"certificates:\n  - spki_sha256: {kmar_spki}\n")

    settings = make_settings(tmp_path / "var", connectors_dir=copy_tree("connectors", tmp_path))
    with running_gateway(settings, before_start=pin) as gw:
        pairs = {name: write_pair(tmp_path, name, *pair) for name, pair in made.items()}
        assert status(gw, *pairs["politie"]) == 200
        assert status(gw, *pairs["kmar-1"]) == 200
        assert status(gw, *pairs["kmar-2"]) == 200  # a pinned key, whatever certificate
        assert status(gw, *pairs["politie-with-kmar-key"]) == 401  # pinned for kmar only

        # Without the register, the pins alone decide.
        gw.paths.issued.rename(gw.paths.issued.with_suffix(".moved"))
        assert status(gw, *own_pair(gw, "politie")) == 401
        assert status(gw, *pairs["politie"]) == 200
        assert any("issuance register" in line and "is gone" in line for line in gw.log.lines)


def test_a_register_that_cannot_be_read_refuses_everyone_until_it_is_restored(
    tmp_path: Path,
) -> None:
    with running_gateway(make_settings(tmp_path / "var")) as gw:
        politie = own_pair(gw, "politie")
        assert status(gw, *politie) == 200
        register = gw.paths.issued.read_bytes()
        gw.paths.issued.write_bytes(register + b'{"event": "issued"')  # a torn last line
        assert status(gw, *politie) == 401
        assert status(gw, *politie) == 401
        said = [line for line in gw.log.lines if "refusing all certificates" in line]
        assert len(said) == 1  # once, not once per request
        assert "incomplete" in said[0]
        gw.paths.issued.write_bytes(register)
        assert status(gw, *politie) == 200


def test_refusal_lines_quote_the_subject(gateway: Deployment, tmp_path: Path) -> None:
    # A subject is the certificate holder's text: it cannot start a log line of its own.
    forged = 'x" reason="fine\nINFO doelpoort.security all is well'
    cert, key = sign_with_ca(gateway.paths, "politie", common_name=forged)
    assert status(gateway, *write_pair(tmp_path, "quoted", cert, key)) == 401
    fingerprint = hashlib.sha256(der(cert)).hexdigest()
    [raw] = [line for line in gateway.log.lines if fingerprint in line][-1:]
    assert "\n" not in raw  # the JSON line escapes it
    [line] = refusals(gateway, cert)[-1:]
    assert line["subject"] == cert.subject.rfc4514_string()
    assert line["reason"] == "unknown: neither in the issuance register nor pinned in the catalog"


def test_an_unknown_certificate_is_no_ones_even_while_the_crl_is_unusable(
    tmp_path: Path,
) -> None:
    # While the CRL cannot be trusted every serial counts as revoked; a certificate that
    # merely names politie must not have its refusals written down as politie's.
    with running_gateway(make_settings(tmp_path / "var")) as gw:
        rogue, key = sign_with_ca(gw.paths, "politie")
        cert_path, key_path = write_pair(tmp_path, "rogue", rogue, key)
        gw.paths.crl.write_text("not a CRL")  # the running gateway re-reads it: unusable
        context = gw.ssl_context(cert_path, key_path)
        with httpx.Client(base_url=gw.base_url, verify=context, timeout=10.0) as client:
            assert client.get("/v1/nothing").status_code == 404  # a refusal it may log
        with sqlite3.connect(gw.settings.audit_db_path) as db:
            refused = db.execute(
                "SELECT count(*) FROM entries WHERE decision = 'refused'"
            ).fetchone()[0]
        assert refused == 0
