"""The development CA's side of its issuance register: recording what it issues and
revokes, and recording the certificates of a PKI made before the register existed.

The format, and the reader the gateway uses, are `gateway.transport.issuance`. Every
write keeps the file as it was, byte for byte, and adds lines: the register is the CA's
history. It is read and checked before each write, and one that is out of form is never
written to — restore it from a backup; what it held cannot be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from audit.clock import rfc3339
from gateway.atomic_files import PUBLIC, create_file, replace_file
from gateway.errors import ConfigurationError
from gateway.transport.identity import identity_from_der, spki_der
from gateway.transport.issuance import CertificateKind, IssuedCertificate, read_register
from gateway.transport.pki_paths import PkiPaths


def create_register(paths: PkiPaths, lines: Sequence[bytes] = ()) -> None:
    """Create the register with ``lines``; never over an existing one."""
    data = b"".join(lines)
    read_register(data, str(paths.issued))  # never write one out of form
    try:
        create_file(paths.issued, data, PUBLIC)
    except FileExistsError as exc:
        raise ConfigurationError(f"{paths.issued} appeared while the PKI was being set up") from exc


def registered(paths: PkiPaths) -> list[IssuedCertificate]:
    """Every certificate the register holds, in the order recorded."""
    return read_register(_read(paths), str(paths.issued))


def append(paths: PkiPaths, lines: Sequence[bytes]) -> None:
    """Add ``lines`` to the register, keeping everything before them."""
    if not lines:
        return
    before = _read(paths)
    read_register(before, str(paths.issued))  # out of form: restore it, never add to it
    after = before + b"".join(lines)
    read_register(after, str(paths.issued))
    replace_file(paths.issued, after, PUBLIC)


def issued_line(
    cert: x509.Certificate,
    kind: CertificateKind,
    peer_id: str,
    now: datetime,
    *,
    event: Literal["issued", "backfilled"] = "issued",
) -> bytes:
    """The register's line for a certificate the CA issued (or, backfilled, had issued)."""
    spki = spki_der(cert)
    if spki is None:
        raise ConfigurationError(f"certificate {cert.serial_number:x} has no readable public key")
    return _line(
        {
            "event": event,
            "serial": f"{cert.serial_number:x}",
            "kind": kind,
            "id": peer_id,
            "sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
            "spki_sha256": hashlib.sha256(spki).hexdigest(),
            "not_before": rfc3339(cert.not_valid_before_utc),
            "not_after": rfc3339(cert.not_valid_after_utc),
            "at": rfc3339(now),
        }
    )


def revoked_line(serial: int, kind: CertificateKind, peer_id: str, at: datetime) -> bytes:
    """The register's line saying the certificate ``serial`` is revoked from ``at`` on."""
    return _line(
        {
            "event": "revoked",
            "serial": f"{serial:x}",
            "kind": kind,
            "id": peer_id,
            "at": rfc3339(at),
        }
    )


def backfill(
    paths: PkiPaths, ca: x509.Certificate, revoked: Mapping[int, datetime], now: datetime
) -> list[Path]:
    """Create the register of a PKI made before it existed, from the certificates on
    disk that ``ca`` signed (``revoked``: the CRL's serials and dates). Returns their
    paths. A certificate the CA issued that is no longer on disk cannot be recorded:
    the gateway refuses it from now on.
    """
    lines: list[bytes] = []
    found: list[Path] = []
    seen: set[int] = set()
    peers = [*sorted(paths.partners_dir.glob("*.pem")), *sorted(paths.dpo_dir.glob("*.pem"))]
    for path in [paths.server_cert, *peers]:
        cert = _issued_by(path, ca)
        named = _named(cert, server=path == paths.server_cert) if cert is not None else None
        if cert is None or named is None or cert.serial_number in seen:
            continue  # not this CA's, names no one, or a copy: nothing to record
        seen.add(cert.serial_number)
        lines.append(issued_line(cert, *named, now, event="backfilled"))
        if cert.serial_number in revoked:
            lines.append(revoked_line(cert.serial_number, *named, revoked[cert.serial_number]))
        found.append(path)
    create_register(paths, lines)
    return found


def _read(paths: PkiPaths) -> bytes:
    try:
        return paths.issued.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{paths.issued} is missing: this PKI was made before the issuance register; "
            "run `doelpoort pki init`, which records the certificates it finds"
        ) from None


def _line(fields: dict[str, str]) -> bytes:
    return json.dumps(fields, ensure_ascii=True).encode("ascii") + b"\n"


def _issued_by(path: Path, ca: x509.Certificate) -> x509.Certificate | None:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    return cert


def _named(cert: x509.Certificate, *, server: bool) -> tuple[CertificateKind, str] | None:
    """Kind and id of a certificate found on disk: the server's by its common name, a
    peer's by its SAN URI (what the gateway compares the register with)."""
    if server:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return ("server", str(names[0].value)) if names else None
    identity = identity_from_der(cert.public_bytes(serialization.Encoding.DER))
    return (identity.kind, identity.id) if identity is not None else None
