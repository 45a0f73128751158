"""The security log's line for a refused client certificate, written in one place.

SPEC §4: every unknown or revoked certificate (every refused one) is a security log
line. Each refusal of a certificate by the gateway itself — by the app's admission
(`gateway.transport.admission`) or by proxy mode's own verification — is written by
`refused_certificate`, so rerouting them (to a structured security log) is a change
here only. A line names the certificate (serial, SHA-256 fingerprint, subject) and the
reason, never anything of a request's body.
"""

from __future__ import annotations

import hashlib
import json
import logging

from cryptography import x509

log = logging.getLogger("doelpoort.security")


def refused_certificate(der: bytes, reason: str) -> None:
    """Log that the client certificate ``der`` was refused, and why."""
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        serial, subject = f"{cert.serial_number:x}", cert.subject.rfc4514_string()
    except ValueError:
        serial, subject = "-", "-"
    # Quoted as JSON strings: a subject is the certificate holder's text, and must not
    # be able to start a line of its own.
    log.warning(
        "client certificate refused: serial=%s sha256=%s subject=%s reason=%s",
        serial,
        fingerprint,
        json.dumps(subject),
        json.dumps(reason),
    )
