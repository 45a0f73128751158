"""Development PKI: one CA, the gateway's server certificate, partner and DPO certificates.

Layout under ``pki_dir`` (`PkiPaths`)::

    ca.pem  ca.key  server.pem  server.key  crl.pem  issued.jsonl
    partners/<id>.pem  partners/<id>.key
    dpo/<name>.pem     dpo/<name>.key

Keys are ECDSA P-256 (every TLS stack speaks it), PEM PKCS#8 without a passphrase, mode
0600, in directories of mode 0700. `init_pki` never overwrites: it creates what is
missing and keeps what exists, so adding a partner to the configuration and running it
again issues only that partner's certificate.

Every certificate the CA issues is recorded in its issuance register, ``issued.jsonl``
(`gateway.transport.issuance`; written by `gateway.dev.issuance`), before it is written
anywhere: the gateway admits only certificates the register (or the catalog) knows. A
PKI made before the register gets one from `init_pki`, from the certificates it finds.
`revoke` puts every certificate the register lists for a partner on the CRL, and
`revoke_serial` one certificate; the CRL is what `gateway/transport/tls.py` loads at
start-up and `gateway.transport.identity.RevocationList` re-reads while the gateway
runs, and the register records each revocation too.

This is a development PKI: a production deployment brings its own CA and CRL and points
the gateway at them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from audit.clock import utc_now
from gateway.atomic_files import PRIVATE, PUBLIC, create_file, replace_file
from gateway.dev import issuance
from gateway.errors import ConfigurationError
from gateway.ids import validate_id
from gateway.keys import read_private_file
from gateway.transport.identity import PeerKind, peer_uri
from gateway.transport.issuance import CertificateKind, IssuedCertificate
from gateway.transport.pki_paths import PkiPaths

CA_VALIDITY = timedelta(days=10 * 365)
LEAF_VALIDITY = timedelta(days=2 * 365)
CRL_VALIDITY = timedelta(days=90)
# `init_pki` re-signs a CRL this close to its next update. OpenSSL refuses every
# handshake once the CRL has expired, so a development CRL must not quietly lapse.
CRL_REFRESH_MARGIN = timedelta(days=30)
# Certificates start slightly in the past so that a peer whose clock lags a little
# does not reject a certificate issued a moment ago.
BACKDATE = timedelta(hours=1)

_DIR_MODE = 0o700


@dataclass
class PkiReport:
    """What `init_pki` did, path by path."""

    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    # Files rewritten without losing anything: only a CRL re-signed near its expiry.
    refreshed: list[Path] = field(default_factory=list)
    # Certificates of a PKI made before the issuance register, recorded in a new one.
    backfilled: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Revocation:
    """What a revocation did: the serials it put on the CRL, and those already there."""

    revoked: tuple[int, ...]
    already: tuple[int, ...]


def init_pki(
    pki_dir: Path,
    partner_ids: Iterable[str],
    *,
    dpo_names: Sequence[str] = ("dpo",),
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    now: datetime | None = None,
) -> PkiReport:
    """Create whatever part of the development PKI is missing; keep the rest."""
    now = _aware(now)
    # Validate everything before touching the disk: a typo must not leave half a PKI.
    partners = list(dict.fromkeys(validate_id(p) for p in partner_ids))
    dpos = list(dict.fromkeys(validate_id(d, "DPO name") for d in dpo_names))
    if not hosts:
        raise ConfigurationError("the server certificate needs at least one host name")
    paths = PkiPaths(Path(pki_dir))
    for directory in (paths.pki_dir, paths.partners_dir, paths.dpo_dir):
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)

    report = PkiReport()
    ca_cert, ca_key = _ensure_ca(paths, now, report)
    issuer = _Issuer(ca_cert, ca_key)
    if paths.ca_cert not in report.created:
        if not paths.crl.exists():
            raise _missing_crl(paths)  # a new one would drop every revocation
        if paths.issued.exists():
            report.kept.append(paths.issued)
        else:
            # Made by a version without the register: record what the CA issued that is
            # still on disk, revoked or not, before issuing anything new.
            revoked = {
                e.serial_number: e.revocation_date_utc for e in _read_crl(paths, issuer).entries
            }
            report.backfilled = issuance.backfill(paths, ca_cert, revoked, now)
            report.created.append(paths.issued)

    if _ensure_pair(paths.server_cert, paths.server_key, "the server certificate", report):
        _issue(issuer, paths, paths.server_cert, paths.server_key, _server_profile(hosts), now)
    for partner in partners:
        cert, key = paths.partner_cert(partner), paths.partner_key(partner)
        if _ensure_pair(cert, key, f"partner {partner!r}", report):
            _issue(issuer, paths, cert, key, _peer_profile("partner", partner), now)
    for dpo in dpos:
        cert, key = paths.dpo_cert(dpo), paths.dpo_key(dpo)
        if _ensure_pair(cert, key, f"DPO {dpo!r}", report):
            _issue(issuer, paths, cert, key, _peer_profile("dpo", dpo), now)

    _ensure_crl(paths, issuer, now, report)
    return report


def revoke(pki_dir: Path, partner_id: str, *, now: datetime | None = None) -> Revocation:
    """Put every certificate the issuance register lists for a partner on the CRL.

    Every one it was ever issued: the file in ``partners/``, those it had before a
    reissue, and any further one (`issue_partner_certificate`). Those on the CRL already
    stay as they are, with their first revocation date; when all were, the CRL is not
    rewritten. It is replaced atomically, so a running gateway never reads half a file.
    """
    paths = PkiPaths(Path(pki_dir))
    validate_id(partner_id)
    records = [r for r in issuance.registered(paths) if r.kind == "partner" and r.id == partner_id]
    if not records:
        raise ConfigurationError(
            f"no certificate for partner {partner_id!r} in this PKI's issuance register; "
            "nothing was revoked"
        )
    return _revoke(paths, records, _aware(now))


def revoke_serial(pki_dir: Path, serial: int, *, now: datetime | None = None) -> Revocation:
    """Put one certificate the issuance register lists on the CRL, by its serial number."""
    paths = PkiPaths(Path(pki_dir))
    records = [r for r in issuance.registered(paths) if r.serial == serial]
    if not records:
        raise ConfigurationError(
            f"the issuance register holds no certificate with serial {serial:x}; "
            "nothing was revoked"
        )
    return _revoke(paths, records, _aware(now))


def reissue(pki_dir: Path, partner_id: str, *, now: datetime | None = None) -> int:
    """Revoke every certificate of a partner and issue a new key and certificate in the
    place of ``partners/<id>.pem``.

    For a lost or compromised key, or a partner whose access ends and later resumes.
    Returns the new certificate's serial number. The old ones stay on the CRL.
    """
    now = _aware(now)
    paths = PkiPaths(Path(pki_dir))
    cert, key = paths.partner_cert(partner_id), paths.partner_key(partner_id)
    if not cert.exists():
        raise ConfigurationError(
            f"no certificate for partner {partner_id!r} in this PKI; nothing was reissued"
        )
    revoke(pki_dir, partner_id, now=now)
    # The old pair is revoked already; a crash after this unlink leaves no pair, which
    # `pki init` recreates, never a usable old one.
    cert.unlink()
    key.unlink(missing_ok=True)
    profile = _peer_profile("partner", partner_id)
    _issue(_Issuer(*_load_ca(paths)), paths, cert, key, profile, now)
    return _load_cert(cert).serial_number


def issue_partner_certificate(
    pki_dir: Path,
    partner_id: str,
    public_key: CertificatePublicKeyTypes,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """Issue a further certificate to a partner, for a key the partner made and keeps.

    For a second site, or a new key that takes over before the old certificate is
    revoked (`revoke_serial`). Recorded in the issuance register like every other; not
    written under ``partners/``, whose pair stays the partner's own.
    """
    now = _aware(now)
    paths = PkiPaths(Path(pki_dir))
    issuer = _Issuer(*_load_ca(paths))
    profile = _peer_profile("partner", validate_id(partner_id))
    cert = _sign(issuer, public_key, profile, now)
    issuance.append(paths, [issuance.issued_line(cert, profile.kind, profile.id, now)])
    return cert


# --- internals ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _Profile:
    kind: CertificateKind  # and id: what the issuance register records
    id: str
    subject: x509.Name
    sans: list[x509.GeneralName]
    usage: x509.ObjectIdentifier


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    # A naive datetime is taken as UTC, the only zone a certificate knows.
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _server_profile(hosts: Sequence[str]) -> _Profile:
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Doelpoort gateway"),
        ]
    )
    return _Profile("server", hosts[0], subject, sans, ExtendedKeyUsageOID.SERVER_AUTH)


def _peer_profile(kind: PeerKind, peer_id: str) -> _Profile:
    organisation = "Doelpoort partners" if kind == "partner" else "Doelpoort DPO"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, peer_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    uri = x509.UniformResourceIdentifier(peer_uri(kind, peer_id))
    return _Profile(kind, peer_id, subject, [uri], ExtendedKeyUsageOID.CLIENT_AUTH)


def _ensure_ca(
    paths: PkiPaths, now: datetime, report: PkiReport
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    have_cert, have_key = paths.ca_cert.exists(), paths.ca_key.exists()
    if have_cert and have_key:
        report.kept += [paths.ca_cert, paths.ca_key]
        return _load_ca(paths)
    if have_cert or have_key:
        raise ConfigurationError("the CA certificate and key must both exist or both be absent")
    # A new CA beside certificates of an old one would leave them silently unverifiable.
    leftovers = [paths.server_cert, paths.server_key, paths.crl, paths.issued]
    leftovers += list(paths.partners_dir.glob("*")) + list(paths.dpo_dir.glob("*"))
    if any(p.exists() for p in leftovers):
        raise ConfigurationError(
            "the CA is missing but certificates issued by it remain; "
            "restore the CA or remove the PKI directory"
        )

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Doelpoort development CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Doelpoort (development only)"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _create(paths.ca_key, _key_pem(key), PRIVATE)
    _create(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC)
    issuance.create_register(paths)  # empty: the CA has issued nothing yet
    report.created += [paths.ca_cert, paths.ca_key, paths.issued]
    return cert, key


def _ensure_pair(cert: Path, key: Path, what: str, report: PkiReport) -> bool:
    """True if the pair must be issued; False (and reported kept) if it exists."""
    have_cert, have_key = cert.exists(), key.exists()
    if have_cert and have_key:
        report.kept += [cert, key]
        return False
    if have_cert or have_key:
        raise ConfigurationError(
            f"only half of the key pair of {what} exists; remove it to have it re-issued"
        )
    report.created += [cert, key]
    return True


def _issue(
    issuer: _Issuer,
    paths: PkiPaths,
    cert_path: Path,
    key_path: Path,
    profile: _Profile,
    now: datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(issuer, key.public_key(), profile, now)
    # The register first: a crash after it leaves a record of a certificate no one
    # holds, never a certificate the gateway does not know. Then the key: a crash before
    # the certificate leaves a key without one, which the next run reports, never a
    # certificate whose key is lost.
    issuance.append(paths, [issuance.issued_line(cert, profile.kind, profile.id, now)])
    _create(key_path, _key_pem(key), PRIVATE)
    _create(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC)


def _sign(
    issuer: _Issuer, public_key: CertificatePublicKeyTypes, profile: _Profile, now: datetime
) -> x509.Certificate:
    issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateBuilder()
        .subject_name(profile.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + LEAF_VALIDITY, issuer.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([profile.usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(profile.sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )


def _revoke(paths: PkiPaths, records: list[IssuedCertificate], now: datetime) -> Revocation:
    """Put ``records`` on the CRL (those not on it yet), then mark them in the register.

    The CRL first: it is what the handshake and every request check. Should the second
    write fail, the certificates are refused all the same, and the next revocation adds
    what the register lacks. A serial the register marks revoked but the CRL lacks (a
    CRL restored from an older backup) is put back on the CRL.
    """
    issuer = _Issuer(*_load_ca(paths))
    entries, number, _ = _read_crl(paths, issuer)
    on_crl = {entry.serial_number for entry in entries}
    new = [r.serial for r in records if r.serial not in on_crl]
    if new:
        entries += [
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            for serial in new
        ]
        _write_crl(paths, issuer, entries, number + 1, now)
    unmarked = [r for r in records if r.revoked_at is None]
    issuance.append(paths, [issuance.revoked_line(r.serial, r.kind, r.id, now) for r in unmarked])
    already = tuple(r.serial for r in records if r.serial in on_crl)
    return Revocation(revoked=tuple(new), already=already)


def _ensure_crl(paths: PkiPaths, issuer: _Issuer, now: datetime, report: PkiReport) -> None:
    if not paths.crl.exists():
        _write_crl(paths, issuer, [], 1, now)
        report.created.append(paths.crl)
        return
    entries, number, next_update = _read_crl(paths, issuer)
    if next_update is None or next_update - now < CRL_REFRESH_MARGIN:
        _write_crl(paths, issuer, entries, number + 1, now)
        report.refreshed.append(paths.crl)
    else:
        report.kept.append(paths.crl)


class _Crl(NamedTuple):
    entries: list[x509.RevokedCertificate]
    number: int
    next_update: datetime | None


def _missing_crl(paths: PkiPaths) -> ConfigurationError:
    return ConfigurationError(
        f"the CRL {paths.crl} is missing, but its CA exists: the revocations it held"
        " cannot be rebuilt. Restore it from a backup."
    )


def _read_crl(paths: PkiPaths, issuer: _Issuer) -> _Crl:
    """The CRL's entries, number and next update.

    An absent CRL is an error, not an empty one: it is made with the CA, and the
    revocations it held cannot be rebuilt from anything else.
    """
    if not paths.crl.exists():
        raise _missing_crl(paths)
    try:
        crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
    except ValueError as exc:
        raise ConfigurationError("the CRL cannot be read") from exc
    if crl.issuer != issuer.cert.subject or not crl.is_signature_valid(issuer.key.public_key()):
        raise ConfigurationError("the CRL is not signed by this CA")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    return _Crl(list(crl), number, crl.next_update_utc)


def _write_crl(
    paths: PkiPaths,
    issuer: _Issuer,
    entries: list[x509.RevokedCertificate],
    number: int,
    now: datetime,
) -> None:
    issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now)
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(issuer.key, hashes.SHA256())
    replace_file(paths.crl, crl.public_bytes(serialization.Encoding.PEM), PUBLIC)


def _load_ca(paths: PkiPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        raise ConfigurationError("the CA certificate or key is missing; run `doelpoort pki init`")
    cert = _load_cert(paths.ca_cert)
    try:
        key = serialization.load_pem_private_key(read_private_file(paths.ca_key), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("the CA key cannot be read") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigurationError("the CA key does not match the CA certificate")
    return cert, key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        raise ConfigurationError(f"{path.name} is not a PEM certificate") from exc


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create *path* atomically; refuse if it exists (never overwrite)."""
    try:
        create_file(path, data, mode)
    except FileExistsError as exc:
        raise ConfigurationError(f"{path.name} appeared while the PKI was being created") from exc
