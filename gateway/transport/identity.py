"""Who is calling: the peer named by a verified client certificate, and revocation.

The TLS handshake (`gateway/transport/tls.py`), or behind a proxy the gateway's own check of the
forwarded certificate (`gateway/transport/proxied.py`), has already established that the
certificate chains to the partner CA; this module only *names* the peer. The name comes
from exactly one SAN URI, ``urn:doelpoort:partner:<id>`` or ``urn:doelpoort:dpo:<name>``,
never from the request. A certificate without such a URI, or with several, names nobody.

A chain to the partner CA does not make a certificate a client certificate:
`client_leaf_problem` is the one check, in both modes, that the leaf is no CA and names
clientAuth in its extended key usage.

The handshake checks the CRL as it was when the gateway started (behind a proxy, the
gateway does not). `RevocationList` re-reads the CRL file whenever it changes, so a
certificate revoked while the gateway runs is refused from its next request on (401),
keep-alive connections included.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, PublicKeyAlgorithmOID

from audit.clock import utc_now
from gateway.errors import ConfigurationError
from gateway.ids import is_valid_id, validate_id
from gateway.transport.watched_file import WatchedFile

logger = logging.getLogger(__name__)

PeerKind: TypeAlias = Literal["partner", "dpo"]

URN_PREFIX = "urn:doelpoort:"
_URI_PREFIXES: dict[str, PeerKind] = {
    URN_PREFIX + "partner:": "partner",
    URN_PREFIX + "dpo:": "dpo",
}


def peer_uri(kind: PeerKind, peer_id: str) -> str:
    """The SAN URI that names a peer, e.g. ``urn:doelpoort:partner:politie``."""
    return f"{URN_PREFIX}{kind}:{validate_id(peer_id, f'{kind} id')}"


@dataclass(frozen=True)
class PeerIdentity:
    """The peer a verified client certificate names."""

    kind: PeerKind
    id: str
    serial: int
    fingerprint: str  # SHA-256 of the certificate's DER, lowercase hex
    spki_sha256: str | None  # SHA-256 of its SubjectPublicKeyInfo, as encoded; lowercase hex


@lru_cache(maxsize=4096)
def identity_from_der(der: bytes) -> PeerIdentity | None:
    """Name the peer of a DER certificate, or None if it names nobody.

    Cached on the DER bytes: a partner presents the same certificate on every
    connection, so parsing is paid once per certificate, not per request.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (
        ValueError,
        x509.ExtensionNotFound,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ):
        return None
    uris = [
        uri
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.lower().startswith(URN_PREFIX)
    ]
    # More than one Doelpoort URI is ambiguous: refuse rather than pick one.
    if len(uris) != 1:
        return None
    for prefix, kind in _URI_PREFIXES.items():
        if uris[0].startswith(prefix):
            peer_id = uris[0].removeprefix(prefix)
            if not is_valid_id(peer_id):
                return None
            spki = spki_der(cert)
            return PeerIdentity(
                kind=kind,
                id=peer_id,
                serial=cert.serial_number,
                fingerprint=hashlib.sha256(der).hexdigest(),
                spki_sha256=hashlib.sha256(spki).hexdigest() if spki is not None else None,
            )
    return None


@lru_cache(maxsize=4096)
def client_leaf_problem(der: bytes) -> str | None:
    """Why a certificate that chains to the partner CA still may not authenticate a
    client; None when it may.

    OpenSSL's handshake takes a leaf that says it is a CA, or one without an extended
    key usage, as a client certificate; cryptography's client verifier (proxy mode)
    refuses the first but not the second. Both modes ask here, so the rule is one: the
    leaf is no CA, and its extended key usage names clientAuth. Cached on the DER, as
    `identity_from_der` is.
    """
    try:
        extensions = x509.load_der_x509_certificate(der).extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        return "it is not a readable X.509 certificate"
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "it is a CA certificate (basicConstraints CA:TRUE)"
    except x509.ExtensionNotFound:
        pass  # no basic constraints: not a CA (RFC 5280 §4.2.1.9)
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "it has no extended key usage; clientAuth is required"
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return "its extended key usage does not include clientAuth"
    return None


def spki_der(cert: x509.Certificate) -> bytes | None:
    """The certificate's SubjectPublicKeyInfo exactly as it is encoded in it.

    Read from the DER rather than re-encoded from the key: a pin is a hash of these very
    bytes, whatever the key type (cryptography would warn on a DSA key, or not load an
    unknown one). None if the structure is not as RFC 5280 §4.1 has it.
    """
    tbs = cert.tbs_certificate_bytes
    try:
        position, _ = _der_content(tbs, 0)  # into the TBSCertificate SEQUENCE
        if tbs[position] == 0xA0:  # [0] EXPLICIT version
            position = _der_content(tbs, position)[1]
        # serialNumber, signature, issuer, validity, subject: then the key.
        for _ in range(5):
            position = _der_content(tbs, position)[1]
        end = _der_content(tbs, position)[1]
    except IndexError:
        return None
    return tbs[position:end] if end <= len(tbs) else None


def _der_content(data: bytes, position: int) -> tuple[int, int]:
    """Where the content of the DER element at ``position`` starts, and where it ends.

    Single-byte tags only, which is all a TBSCertificate's first fields use.
    """
    length = data[position + 1]
    position += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    return position, position + length


# Key types a partner CA may sign its CRL with. Not DSA: no current TLS stack issues it,
# cryptography deprecates it, and a CA with such a key is refused at start-up.
_ISSUER_KEY_TYPES = (
    ec.EllipticCurvePublicKey,
    rsa.RSAPublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


@dataclass(frozen=True)
class _LoadedCrl:
    revoked: frozenset[int]
    next_update: datetime | None


class RevocationList:
    """The partner CA's CRL, re-read whenever the file changes (`WatchedFile`).

    Fails closed: a CRL that cannot be read, is not signed by the CA or has passed its
    next update makes `is_revoked` answer True for every serial. The constructor
    raises `ConfigurationError` instead, so a broken CRL stops start-up.
    """

    def __init__(self, crl_path: Path, ca_cert_path: Path) -> None:
        try:
            self._ca = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigurationError("the partner CA certificate cannot be read") from exc
        if self._ca.public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA:
            # Checked before the key is touched: cryptography deprecates DSA keys.
            raise ConfigurationError("the partner CA has a DSA key; use an EC (or RSA) CA")
        self._path = Path(crl_path)
        self._file = WatchedFile(self._path, self._parse, log=logger)

    def is_revoked(self, serial: int, *, now: datetime | None = None) -> bool:
        """Whether *serial* is revoked; True as well when the CRL cannot be trusted."""
        loaded = self._file.current()
        if loaded is None:
            return True
        if loaded.next_update is not None and (now or utc_now()) > loaded.next_update:
            self._file.report_failure("the revocation list has expired; refusing all certificates")
            return True
        return serial in loaded.revoked

    def _parse(self, data: bytes | None) -> _LoadedCrl:
        try:
            if data is None:
                raise ValueError("no file")
            crl = x509.load_pem_x509_crl(data)
        except ValueError as exc:
            raise ConfigurationError(f"the revocation list {self._path} cannot be read") from exc
        ca_key = self._ca.public_key()
        if (
            not isinstance(ca_key, _ISSUER_KEY_TYPES)
            or crl.issuer != self._ca.subject
            or not crl.is_signature_valid(ca_key)
        ):
            raise ConfigurationError("the revocation list is not signed by the partner CA")
        return _LoadedCrl(
            revoked=frozenset(entry.serial_number for entry in crl),
            next_update=crl.next_update_utc,
        )
