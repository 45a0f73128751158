"""The development CA's issuance register: what it records, that it only grows, how
revocation reads it, the backfill of an older PKI, and the gateway's reader."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from gateway.dev import issuance
from gateway.dev.pki import (
    Revocation,
    init_pki,
    issue_partner_certificate,
    reissue,
    revoke,
    revoke_serial,
)
from gateway.errors import ConfigurationError
from gateway.transport.identity import client_leaf_problem, identity_from_der, spki_der
from gateway.transport.issuance import IssuanceRegister, IssuedCertificate, read_register
from gateway.transport.pki_paths import PkiPaths
from tests.pki_support import der, sign_with_ca

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PARTNERS = ["politie", "kmar"]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl_serials(paths: PkiPaths) -> set[int]:
    return {entry.serial_number for entry in x509.load_pem_x509_crl(paths.crl.read_bytes())}


def another_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


@pytest.fixture
def paths(tmp_path: Path) -> PkiPaths:
    init_pki(tmp_path, PARTNERS, now=NOW)
    return PkiPaths(tmp_path)


# --- what is recorded -----------------------------------------------------------------


def test_every_certificate_the_ca_issues_is_recorded(paths: PkiPaths) -> None:
    records: dict[tuple[str, str], IssuedCertificate] = {
        (r.kind, r.id): r for r in issuance.registered(paths)
    }
    files = {
        ("server", "localhost"): paths.server_cert,
        ("partner", "politie"): paths.partner_cert("politie"),
        ("partner", "kmar"): paths.partner_cert("kmar"),
        ("dpo", "dpo"): paths.dpo_cert("dpo"),
    }
    assert set(records) == set(files)
    for name, path in files.items():
        cert, record = load(path), records[name]
        assert record.serial == cert.serial_number
        assert record.sha256 == hashlib.sha256(der(cert)).hexdigest()
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert record.spki_sha256 == hashlib.sha256(spki).hexdigest()
        assert (record.not_before, record.not_after) == (
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
        assert (record.issued_at, record.backfilled, record.revoked_at) == (NOW, False, None)


def test_the_format_is_one_json_object_per_line(paths: PkiPaths) -> None:
    text = paths.issued.read_text("ascii")
    assert text.endswith("\n")
    first = json.loads(text.splitlines()[0])
    assert list(first) == [
        "event",
        "serial",
        "kind",
        "id",
        "sha256",
        "spki_sha256",
        "not_before",
        "not_after",
        "at",
    ]
    assert first["event"] == "issued"
    assert first["at"] == "2026-11-22T10:00:00Z"
    assert first["serial"] == f"{load(paths.server_cert).serial_number:x}"


def test_the_register_only_grows(paths: PkiPaths) -> None:
    steps: list[Callable[[], object]] = [
        lambda: revoke(paths.pki_dir, "politie", now=NOW),
        lambda: reissue(paths.pki_dir, "kmar", now=NOW),
        lambda: issue_partner_certificate(paths.pki_dir, "politie", another_key(), now=NOW),
        lambda: init_pki(paths.pki_dir, [*PARTNERS, "fiod"], now=NOW),
        lambda: revoke(paths.pki_dir, "politie", now=NOW),
    ]
    before = paths.issued.read_bytes()
    for step in steps:
        step()
        after = paths.issued.read_bytes()
        assert after.startswith(before)
        before = after
    assert len(issuance.registered(paths)) == 4 + 3  # kmar's second, politie's, fiod's


# --- revocation reads the register ----------------------------------------------------


def test_revoking_a_partner_revokes_every_certificate_it_was_ever_issued(
    paths: PkiPaths,
) -> None:
    first = load(paths.partner_cert("politie")).serial_number
    extra = issue_partner_certificate(paths.pki_dir, "politie", another_key(), now=NOW)
    third = reissue(paths.pki_dir, "politie", now=NOW + timedelta(hours=1))
    assert crl_serials(paths) == {first, extra.serial_number}

    done = revoke(paths.pki_dir, "politie", now=NOW + timedelta(hours=2))

    assert done == Revocation(revoked=(third,), already=(first, extra.serial_number))
    assert crl_serials(paths) == {first, extra.serial_number, third}
    politie = [r for r in issuance.registered(paths) if r.id == "politie"]
    assert [r.revoked_at for r in politie] == [
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=2),
    ]
    kmar = load(paths.partner_cert("kmar")).serial_number
    assert kmar not in crl_serials(paths)


def test_revoke_serial_revokes_that_certificate_only(paths: PkiPaths) -> None:
    own = load(paths.partner_cert("politie")).serial_number
    extra = issue_partner_certificate(paths.pki_dir, "politie", another_key(), now=NOW)

    assert revoke_serial(paths.pki_dir, extra.serial_number, now=NOW) == Revocation(
        revoked=(extra.serial_number,), already=()
    )
    assert crl_serials(paths) == {extra.serial_number}
    assert revoke_serial(paths.pki_dir, extra.serial_number, now=NOW) == Revocation(
        revoked=(), already=(extra.serial_number,)
    )
    assert revoke(paths.pki_dir, "politie", now=NOW) == Revocation(
        revoked=(own,), already=(extra.serial_number,)
    )


def test_revoking_what_the_register_does_not_hold_is_an_error(paths: PkiPaths) -> None:
    before = paths.crl.read_bytes(), paths.issued.read_bytes()
    # Signed by the CA key, but not issued through the register: not this CA's to revoke
    # (and refused by the gateway anyway).
    rogue, _ = sign_with_ca(paths, "politie")
    with pytest.raises(ConfigurationError, match="no certificate with serial"):
        revoke_serial(paths.pki_dir, rogue.serial_number, now=NOW)
    with pytest.raises(ConfigurationError, match="no certificate for partner 'fiod'"):
        revoke(paths.pki_dir, "fiod", now=NOW)
    assert (paths.crl.read_bytes(), paths.issued.read_bytes()) == before


def test_a_crl_that_lost_a_revocation_gets_it_back(paths: PkiPaths) -> None:
    # A CRL restored from a backup older than a revocation: the register still knows.
    older_crl = paths.crl.read_bytes()
    (serial,) = revoke(paths.pki_dir, "kmar", now=NOW).revoked
    paths.crl.write_bytes(older_crl)
    assert revoke(paths.pki_dir, "kmar", now=NOW) == Revocation(revoked=(serial,), already=())
    assert crl_serials(paths) == {serial}


def test_a_register_out_of_form_is_never_written_to(paths: PkiPaths) -> None:
    damaged = paths.issued.read_bytes()[:-10]
    paths.issued.write_bytes(damaged)
    crl = paths.crl.read_bytes()
    with pytest.raises(ConfigurationError, match="last line is incomplete"):
        revoke(paths.pki_dir, "politie", now=NOW)
    with pytest.raises(ConfigurationError, match="last line is incomplete"):
        init_pki(paths.pki_dir, [*PARTNERS, "fiod"], now=NOW)
    assert paths.issued.read_bytes() == damaged
    assert paths.crl.read_bytes() == crl
    # Recorded first, written after: no certificate the register could not record.
    assert not paths.partner_cert("fiod").exists()
    assert not paths.partner_key("fiod").exists()


# --- a PKI made before the register ---------------------------------------------------


def test_init_records_the_certificates_of_a_pki_made_before_the_register(
    tmp_path: Path,
) -> None:
    init_pki(tmp_path / "pki", PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path / "pki")
    (revoked,) = revoke(paths.pki_dir, "kmar", now=NOW + timedelta(hours=1)).revoked
    paths.issued.unlink()  # as an older version left it
    init_pki(tmp_path / "other", ["politie"], now=NOW)
    foreign = PkiPaths(tmp_path / "other").partner_cert("politie").read_bytes()
    (paths.partners_dir / "stray.pem").write_bytes(foreign)  # not this CA's

    with pytest.raises(ConfigurationError, match=r"run `doelpoort pki init`"):
        revoke(paths.pki_dir, "politie", now=NOW)

    later = NOW + timedelta(days=1)
    report = init_pki(paths.pki_dir, PARTNERS, now=later)

    assert sorted(report.backfilled) == sorted(
        [
            paths.server_cert,
            paths.partner_cert("kmar"),
            paths.partner_cert("politie"),
            paths.dpo_cert("dpo"),
        ]
    )
    assert paths.issued in report.created
    records = {r.serial: r for r in issuance.registered(paths)}
    assert all(r.backfilled and r.issued_at == later for r in records.values())
    assert load(paths.partners_dir / "stray.pem").serial_number not in records
    assert records[revoked].revoked_at == NOW + timedelta(hours=1)  # the CRL's date
    assert [r.id for r in records.values() if r.revoked_at is None] == [
        "localhost",
        "politie",
        "dpo",
    ]
    # From here on as any other register: revocation works, a second init keeps it.
    assert revoke(paths.pki_dir, "politie", now=later).revoked
    register = paths.issued.read_bytes()
    again = init_pki(paths.pki_dir, PARTNERS, now=later)
    assert again.backfilled == []
    assert paths.issued in again.kept
    assert paths.issued.read_bytes() == register


def test_a_new_ca_is_not_made_beside_a_register_of_the_old_one(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    for path in [paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key, paths.crl]:
        path.unlink()
    for path in [*paths.partners_dir.iterdir(), *paths.dpo_dir.iterdir()]:
        path.unlink()
    with pytest.raises(ConfigurationError, match="CA is missing"):
        init_pki(tmp_path, PARTNERS, now=NOW)


# --- the format, strictly --------------------------------------------------------------

ISSUED = (
    '{"event": "issued", "serial": "1f", "kind": "partner", "id": "politie", '
    '"sha256": "' + "a" * 64 + '", "spki_sha256": "' + "b" * 64 + '", '
    '"not_before": "2026-11-22T09:00:00Z", "not_after": "2028-11-21T10:00:00Z", '
    '"at": "2026-11-22T10:00:00Z"}\n'
)
REVOKED = (
    '{"event": "revoked", "serial": "1f", "kind": "partner", "id": "politie", '
    '"at": "2026-11-23T10:00:00Z"}\n'
)


def test_a_well_formed_register_reads_as_one_record_per_certificate() -> None:
    [record] = read_register((ISSUED + REVOKED).encode())
    assert (record.serial, record.kind, record.id) == (0x1F, "partner", "politie")
    assert record.revoked_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert read_register(b"") == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(ISSUED[:-1], "last line is incomplete", id="torn"),
        pytest.param(ISSUED + "\n", "line 2", id="empty-line"),
        pytest.param(ISSUED + ISSUED, "line 2: certificate recorded twice", id="issued-twice"),
        pytest.param(
            REVOKED,
            "line 1: revokes a certificate the register does not hold",
            id="revoked-unknown",
        ),
        pytest.param(
            ISSUED + REVOKED + REVOKED, "line 3: certificate revoked twice", id="revoked-twice"
        ),
        pytest.param(ISSUED.replace('"1f"', '"01f"'), "line 1: issued.serial", id="leading-zero"),
        pytest.param(
            ISSUED.replace('"politie"', '"Politie"'), "not a valid partner id", id="bad-id"
        ),
        pytest.param(
            ISSUED.replace("T10:00:00Z", "T10:00:00"), "line 1: issued.at", id="naive-time"
        ),
        pytest.param(ISSUED.replace('"issued"', '"found"'), "line 1", id="unknown-event"),
        pytest.param(
            ISSUED.replace('"kind"', '"extra": 1, "kind"'),
            "line 1: issued.extra",
            id="unknown-field",
        ),
        pytest.param(ISSUED.replace("a" * 64, "A" * 64), "line 1: issued.sha256", id="upper-hex"),
        pytest.param(
            ISSUED + REVOKED.replace('"politie"', '"kmar"'),
            "line 2: revokes a certificate the register does not hold",
            id="revoked-other-partner",
        ),
    ],
)
def test_a_register_out_of_form_is_refused_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        read_register(text.encode())


# --- the gateway's reader -------------------------------------------------------------


def test_the_reader_sees_every_change_of_the_file(paths: PkiPaths) -> None:
    reader = IssuanceRegister(paths.issued)
    view = reader.current()
    assert view is not None
    assert view.present
    extra = issue_partner_certificate(paths.pki_dir, "politie", another_key(), now=NOW)
    fingerprint = hashlib.sha256(der(extra)).hexdigest()
    view = reader.current()
    assert view is not None
    assert view.by_fingerprint[fingerprint].revoked_at is None
    revoke(paths.pki_dir, "politie", now=NOW)
    view = reader.current()
    assert view is not None
    assert view.by_fingerprint[fingerprint].revoked_at == NOW


def test_the_reader_fails_closed_and_says_so_once(
    paths: PkiPaths, caplog: pytest.LogCaptureFixture
) -> None:
    good = paths.issued.read_bytes()
    reader = IssuanceRegister(paths.issued)
    paths.issued.write_bytes(good + b"not json\n")
    with caplog.at_level(logging.ERROR, logger="gateway.transport.issuance"):
        assert reader.current() is None
        assert reader.current() is None
    said = [r.getMessage() for r in caplog.records if "refusing all certificates" in r.getMessage()]
    assert len(said) == 1
    paths.issued.write_bytes(good)
    assert reader.current() is not None  # recovers once the file is good again
    paths.issued.write_bytes(b"not json\n")
    with pytest.raises(ConfigurationError, match="line 1"):
        IssuanceRegister(paths.issued)  # at start-up: an error, not a refusal per request


def test_no_file_is_an_empty_register(tmp_path: Path) -> None:
    view = IssuanceRegister(tmp_path / "issued.jsonl").current()
    assert view is not None
    assert (view.present, dict(view.by_fingerprint)) == (False, {})


# --- the certificate checks both modes share ------------------------------------------


def _self_signed(key: CertificateIssuerPrivateKeyTypes, public_key: object) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "k")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, algorithm)
    )


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_the_spki_hash_is_of_the_key_as_encoded(kind: str) -> None:
    # What `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum` hashes.
    key: CertificateIssuerPrivateKeyTypes
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    cert = _self_signed(key, key.public_key())
    assert spki_der(cert) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_the_peer_identity_carries_both_fingerprints(paths: PkiPaths) -> None:
    cert = load(paths.partner_cert("politie"))
    identity = identity_from_der(der(cert))
    assert identity is not None
    [record] = [r for r in issuance.registered(paths) if r.id == "politie"]
    assert (identity.fingerprint, identity.spki_sha256) == (record.sha256, record.spki_sha256)


def test_the_leaf_check(paths: PkiPaths) -> None:
    assert client_leaf_problem(der(load(paths.partner_cert("politie")))) is None
    assert client_leaf_problem(der(load(paths.dpo_cert("dpo")))) is None
    assert "does not include clientAuth" in str(client_leaf_problem(der(load(paths.server_cert))))
    assert "CA:TRUE" in str(client_leaf_problem(der(load(paths.ca_cert))))
    no_eku, _ = sign_with_ca(paths, "politie", usages=None)
    assert "no extended key usage" in str(client_leaf_problem(der(no_eku)))
    assert "not a readable" in str(client_leaf_problem(b"not a certificate"))


def test_a_broken_register_is_parsed_once_not_per_request(
    paths: PkiPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Failing closed must not cost a read and a parse per request while the operator
    # mends the file; a new file (another stat) is read again at once.
    good = paths.issued.read_bytes()
    reader = IssuanceRegister(paths.issued)
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    paths.issued.write_bytes(good + b"not json\n")
    assert all(reader.current() is None for _ in range(5))
    assert reads.count(paths.issued) == 1
    paths.issued.write_bytes(good)
    assert reader.current() is not None
    assert reads.count(paths.issued) == 2
