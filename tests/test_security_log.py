"""The security log's format: one JSON object per line, the same fields every time.

The lines themselves are tested where they are written: refused handshakes in
tests/test_tls.py (and on `serve`'s stderr in tests/test_serve.py), unknown and revoked
certificates in tests/test_refusals.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.dev.pki import init_pki
from gateway.transport import security_log
from gateway.transport.pki_paths import PkiPaths

FIELDS = ["event", "time", "peer", "subject", "serial", "fingerprint", "reason"]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The security log written to a string, as `serve` writes it to stderr; the
    logger as it was afterwards."""
    logger = logging.getLogger(security_log.LOGGER_NAME)
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    written = io.StringIO()
    security_log.write_lines_to(written)
    try:
        yield written
    finally:
        logger.handlers[:] = handlers
        logger.propagate, logger.level = propagate, level
        security_log._own_handler = None


@pytest.fixture(scope="module")
def partner_der(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    pki = tmp_path_factory.mktemp("pki")
    init_pki(pki, ["politie"])
    return ssl.PEM_cert_to_DER_cert(PkiPaths(pki).partner_cert("politie").read_text())


def test_each_line_is_one_json_object_alone(stream: io.StringIO, partner_der: bytes) -> None:
    security_log.certificate_unknown_peer(("192.0.2.7", 50123), partner_der, "no partner")
    security_log.certificate_revoked(("2001:db8::7", 443, 0, 0), partner_der, "revoked")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first) == FIELDS
    assert first["event"] == "certificate-unknown-peer"
    assert first["peer"] == "192.0.2.7:50123"
    assert first["subject"] == "O=Doelpoort partners,CN=politie"
    assert first["fingerprint"] == hashlib.sha256(partner_der).hexdigest()
    assert int(first["serial"], 16) > 0
    assert first["reason"] == "no partner"
    assert (second["event"], second["peer"]) == ("certificate-revoked", "[2001:db8::7]:443")


def test_written_once_only_when_written_to_a_stream(stream: io.StringIO) -> None:
    # Not a second time, prefixed, through the root logger's handlers.
    assert not logging.getLogger(security_log.LOGGER_NAME).propagate
    security_log.forwarded_certificate_refused(b"not a certificate", "not DER")
    security_log.write_lines_to(stream)  # again: still one handler of its own
    security_log.forwarded_certificate_refused(None, "no header")
    assert len(stream.getvalue().splitlines()) == 2


def test_what_cannot_be_known_is_null(stream: io.StringIO) -> None:
    security_log.forwarded_certificate_refused(b"not a certificate", "not DER")
    security_log.handshake_refused("", ConnectionResetError())  # a unix socket's peer
    garbage, handshake = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (garbage["peer"], garbage["subject"], garbage["serial"]) == (None, None, None)
    assert garbage["fingerprint"] == hashlib.sha256(b"not a certificate").hexdigest()
    assert [handshake[field] for field in FIELDS[2:]] == [
        None,
        None,
        None,
        None,
        "ConnectionResetError",
    ]


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", 8443), "127.0.0.1:8443"),
        (["10.0.0.1", 1], "10.0.0.1:1"),
        (("::1", 8443, 0, 0), "[::1]:8443"),
        ("", None),
        ("/run/doelpoort/gateway.sock", None),
        (None, None),
        (("127.0.0.1",), None),
    ],
)
def test_peer_addresses(address: object, shown: str | None) -> None:
    assert security_log.format_peer(address) == shown


def test_a_long_subject_is_cut_to_a_readable_line() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "u" * 60)] * 9)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0xABC)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    facts = security_log.certificate_facts(cert.public_bytes(serialization.Encoding.DER))
    assert facts.subject is not None
    assert len(facts.subject) == 256
    assert facts.subject.endswith("…")
    assert facts.serial == "abc"


def test_a_long_reason_is_cut_too(stream: io.StringIO) -> None:
    security_log.forwarded_certificate_refused(None, "validation failed: " + "x" * 1000)
    reason = json.loads(stream.getvalue())["reason"]
    assert len(reason) == 256
    assert reason.endswith("…")
