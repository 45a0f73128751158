"""The security log: one JSON object per line for each refused handshake and each refused
certificate (SPEC §4), for the operator's monitoring — not for the DPO, whose evidence
is the audit log.

Every line has the same fields, in this order, each present (null when unknown):

``event``
    ``handshake-refused`` (the TLS handshake failed: no certificate, a certificate of
    another CA, one revoked before start-up or expired, one not for client
    authentication, no common protocol version, bytes that are not TLS);
    ``certificate-revoked`` (a certificate revoked while the gateway runs: 401);
    ``certificate-unknown-peer`` (a valid certificate that names no configured partner
    or DPO, or a DPO's on the partner API: 403);
    ``certificate-refused`` (a certificate the partner CA signed that the gateway does
    not admit: not in the issuance register nor pinned, a CA or one without clientAuth,
    or any while the issuance register cannot be read: 401);
    ``forwarded-certificate-refused`` (behind a proxy: the ``Client-Cert`` it forwarded
    does not verify against the partner CA).
``time``
    RFC 3339 UTC with microseconds.
``peer``
    the client's ``address:port`` (``[address]:port`` for IPv6); null behind a proxy,
    whose unix socket has no client address (the gateway trusts no forwarded address).
``subject``, ``serial``, ``fingerprint``
    the certificate's subject (RFC 4514), serial number (lowercase hex) and SHA-256
    fingerprint of its DER (lowercase hex). Null on ``handshake-refused``: Python's
    ``ssl`` module gives a peer certificate only after a successful handshake
    (``getpeercert`` raises "handshake not done yet"; ``get_unverified_chain`` comes in
    Python 3.13), and OpenSSL's verify callback is not exposed to Python.
``reason``
    why, in a few words: for a refused handshake OpenSSL's reason code, and for a
    failed certificate verification its verify message too
    (``CERTIFICATE_VERIFY_FAILED: certificate revoked``).

The lines go to the logger ``doelpoort.security`` at WARNING; `serve` writes them to
stderr alone on their line (`write_lines_to`), so a collector can take every line that
parses as JSON with an ``event``. A line names certificates and addresses, never a
request's content. One function per event, so every part of the gateway that refuses a
peer writes the same line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TextIO

from cryptography import x509

from audit.clock import rfc3339_micro, utc_now

LOGGER_NAME = "doelpoort.security"
log = logging.getLogger(LOGGER_NAME)

Event = Literal[
    "handshake-refused",
    "certificate-revoked",
    "certificate-unknown-peer",
    "certificate-refused",
    "forwarded-certificate-refused",
]

# A subject is the CA's to choose, but a line should stay a line a person can read.
_SUBJECT_MAX_CHARS = 256
_REASON_MAX_CHARS = 256  # a verifier's message may quote the certificate again

_own_handler: logging.Handler | None = None  # the one `write_lines_to` installed


@dataclass(frozen=True)
class CertificateFacts:
    """What a line says of a certificate."""

    subject: str | None
    serial: str | None
    fingerprint: str


def handshake_refused(peer: object, error: BaseException) -> None:
    """A TLS handshake the server refused (`gateway.transport.handshake`)."""
    _write("handshake-refused", peer, None, handshake_reason(error))


def certificate_revoked(peer: object, der: bytes, reason: str) -> None:
    """A verified certificate that has been revoked since (401)."""
    _write("certificate-revoked", peer, der, reason)


def certificate_unknown_peer(peer: object, der: bytes, reason: str) -> None:
    """A verified certificate of no configured partner or DPO, or of the wrong one (403)."""
    _write("certificate-unknown-peer", peer, der, reason)


def certificate_refused(peer: object, der: bytes, reason: str) -> None:
    """A verified certificate the gateway does not admit (`gateway.transport.admission`):
    unknown to it, no client certificate, or an unreadable issuance register (401)."""
    _write("certificate-refused", peer, der, reason)


def forwarded_certificate_refused(der: bytes | None, reason: str) -> None:
    """Behind a proxy: a forwarded certificate that does not verify, or is no certificate."""
    _write("forwarded-certificate-refused", None, der, reason)


def write_lines_to(stream: TextIO) -> None:
    """Write the security log to ``stream``, each line the JSON object alone (for
    `serve`; without it the lines go wherever the root logger sends its records)."""
    global _own_handler
    if _own_handler is not None:
        log.removeHandler(_own_handler)
    _own_handler = logging.StreamHandler(stream)
    _own_handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(_own_handler)
    log.setLevel(logging.WARNING)
    log.propagate = False  # not a second time, prefixed, through the root logger


def handshake_reason(error: BaseException) -> str:
    """OpenSSL's reason code (and verify message) for a refused handshake; never the
    exception's text, which quotes a source file and line of the ssl module."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"{error.reason or 'CERTIFICATE_VERIFY_FAILED'}: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return type(error).__name__


def format_peer(address: object) -> str | None:
    """``host:port`` of a socket address, ``[host]:port`` for IPv6; None for anything else
    (a unix socket's empty name, no address at all)."""
    if isinstance(address, tuple | list) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and isinstance(port, int):
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return None


@lru_cache(maxsize=1024)
def certificate_facts(der: bytes) -> CertificateFacts:
    """Subject, serial and fingerprint of a DER certificate (the first two None if it does
    not parse). Cached: a refused peer tends to come back with the same certificate."""
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
    except ValueError:
        return CertificateFacts(None, None, fingerprint)
    return CertificateFacts(
        _cut(subject, _SUBJECT_MAX_CHARS), format(cert.serial_number, "x"), fingerprint
    )


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _write(event: Event, peer: object, der: bytes | None, reason: str) -> None:
    facts = certificate_facts(der) if der else None
    line: dict[str, Any] = {
        "event": event,
        "time": rfc3339_micro(utc_now()),
        "peer": format_peer(peer),
        "subject": facts.subject if facts else None,
        "serial": facts.serial if facts else None,
        "fingerprint": facts.fingerprint if facts else None,
        "reason": _cut(reason, _REASON_MAX_CHARS),
    }
    # ASCII-only: whatever a subject holds, the line stays one line of plain text.
    log.warning("%s", json.dumps(line, ensure_ascii=True, separators=(",", ":")))
