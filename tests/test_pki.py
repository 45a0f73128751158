"""The development PKI: what `init_pki` creates, what it keeps, and `revoke`."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.dev.pki import CRL_VALIDITY, Revocation, init_pki, reissue, revoke
from gateway.errors import ConfigurationError
from gateway.transport.pki_paths import PkiPaths

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PARTNERS = ["politie", "kmar"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    pki_dir = tmp_path_factory.mktemp("pki")
    init_pki(pki_dir, PARTNERS, now=NOW)
    return PkiPaths(pki_dir)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(paths: PkiPaths) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(paths.crl.read_bytes())


def ca_public_key(paths: PkiPaths) -> ec.EllipticCurvePublicKey:
    key = load(paths.ca_cert).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def all_files(pki_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(pki_dir.rglob("*")) if p.is_file()}


def test_layout_and_key_modes(paths: PkiPaths) -> None:
    keys = [paths.ca_key, paths.server_key, paths.dpo_key("dpo")]
    keys += [paths.partner_key(p) for p in PARTNERS]
    certs = [paths.ca_cert, paths.server_cert, paths.crl, paths.dpo_cert("dpo")]
    certs += [paths.partner_cert(p) for p in PARTNERS]
    assert set(all_files(paths.pki_dir)) == set([*keys, *certs, paths.issued])
    assert stat.S_IMODE(paths.issued.stat().st_mode) == 0o644
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.pki_dir.stat().st_mode) == 0o700


def test_ca_is_an_ecdsa_p256_ca(paths: PkiPaths) -> None:
    ca = load(paths.ca_cert)
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.crl_sign


def test_server_certificate_names_localhost(paths: PkiPaths) -> None:
    cert = load(paths.server_cert)
    cert.verify_directly_issued_by(load(paths.ca_cert))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


@pytest.mark.parametrize(("kind", "name"), [("partner", "politie"), ("dpo", "dpo")])
def test_client_certificates_carry_their_uri(paths: PkiPaths, kind: str, name: str) -> None:
    path = paths.partner_cert(name) if kind == "partner" else paths.dpo_cert(name)
    cert = load(path)
    cert.verify_directly_issued_by(load(paths.ca_cert))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:doelpoort:{kind}:{name}"
    ]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc


def test_initial_crl_is_empty_and_signed_by_the_ca(paths: PkiPaths) -> None:
    crl = load_crl(paths)
    assert len(crl) == 0
    assert crl.issuer == load(paths.ca_cert).subject
    assert crl.is_signature_valid(ca_public_key(paths))
    assert crl.next_update_utc == NOW + CRL_VALIDITY


def test_second_run_keeps_everything_and_adds_only_the_new_partner(tmp_path: Path) -> None:
    first = init_pki(tmp_path, PARTNERS, now=NOW)
    before = all_files(tmp_path)
    assert sorted(first.created) == sorted(before)

    again = init_pki(tmp_path, PARTNERS, now=NOW + timedelta(days=1))
    assert again.created == []
    assert again.refreshed == []
    assert sorted(again.kept) == sorted(before)
    assert all_files(tmp_path) == before

    paths = PkiPaths(tmp_path)
    grown = init_pki(tmp_path, [*PARTNERS, "fiod"], now=NOW + timedelta(days=2))
    assert sorted(grown.created) == sorted([paths.partner_cert("fiod"), paths.partner_key("fiod")])
    after = all_files(tmp_path)
    # Everything kept; the issuance register only grew, by the new certificate's line.
    assert {p: after[p] for p in before if p != paths.issued} == {
        p: data for p, data in before.items() if p != paths.issued
    }
    assert after[paths.issued].startswith(before[paths.issued])
    assert after[paths.issued].count(b"\n") == before[paths.issued].count(b"\n") + 1
    load(paths.partner_cert("fiod")).verify_directly_issued_by(load(paths.ca_cert))


@pytest.mark.parametrize("bad", ["Politie", "a/b", "../ca", "", "x" * 64, "-x", "a b", "é"])
def test_bad_ids_are_refused_before_anything_is_written(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid partner id"):
        init_pki(tmp_path / "pki", ["politie", bad], now=NOW)
    assert not (tmp_path / "pki").exists()
    with pytest.raises(ConfigurationError, match="invalid DPO name"):
        init_pki(tmp_path / "pki", ["politie"], dpo_names=[bad], now=NOW)
    with pytest.raises(ConfigurationError):
        PkiPaths(tmp_path).partner_cert(bad)


def test_longest_id_is_accepted(tmp_path: Path) -> None:
    longest = "a" + "-" * 61 + "z"
    report = init_pki(tmp_path, [longest], now=NOW)
    assert PkiPaths(tmp_path).partner_cert(longest) in report.created


def test_revoke_adds_to_the_crl_and_keeps_earlier_revocations(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    later = NOW + timedelta(hours=1)

    (first,) = revoke(tmp_path, "politie", now=later).revoked
    assert first == load(paths.partner_cert("politie")).serial_number
    (second,) = revoke(tmp_path, "kmar", now=later + timedelta(hours=1)).revoked
    crl_before = paths.crl.read_bytes()
    again = revoke(tmp_path, "politie", now=later + timedelta(hours=2))

    # Revoking twice says so, and changes nothing.
    assert again == Revocation(revoked=(), already=(first,))
    assert paths.crl.read_bytes() == crl_before
    crl = load_crl(paths)
    assert sorted(entry.serial_number for entry in crl) == sorted([first, second])
    entry = crl.get_revoked_certificate_by_serial_number(first)
    assert entry is not None
    assert entry.revocation_date_utc == later  # the first revocation's date stays
    assert crl.last_update_utc == later + timedelta(hours=1)
    assert crl.next_update_utc == later + timedelta(hours=1) + CRL_VALIDITY
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    assert crl.is_signature_valid(ca_public_key(paths))
    assert stat.S_IMODE(paths.crl.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_revoke_of_an_unknown_partner_raises(paths: PkiPaths) -> None:
    before = paths.crl.read_bytes()
    with pytest.raises(ConfigurationError, match="no certificate for partner 'fiod'"):
        revoke(paths.pki_dir, "fiod", now=NOW)
    with pytest.raises(ConfigurationError, match="invalid partner id"):
        revoke(paths.pki_dir, "../ca", now=NOW)
    assert paths.crl.read_bytes() == before


def test_reissue_revokes_the_old_certificate_and_issues_a_new_pair(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    old_serial = load(paths.partner_cert("kmar")).serial_number
    old_key = paths.partner_key("kmar").read_bytes()

    new_serial = reissue(tmp_path, "kmar", now=NOW + timedelta(hours=1))

    new = load(paths.partner_cert("kmar"))
    assert new.serial_number == new_serial != old_serial
    assert paths.partner_key("kmar").read_bytes() != old_key
    assert stat.S_IMODE(paths.partner_key("kmar").stat().st_mode) == 0o600
    san = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:doelpoort:partner:kmar"]
    crl = load_crl(paths)
    assert crl.get_revoked_certificate_by_serial_number(old_serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(new_serial) is None
    with pytest.raises(ConfigurationError, match="no certificate for partner 'fiod'"):
        reissue(tmp_path, "fiod", now=NOW)


def test_init_refreshes_a_crl_near_expiry_and_keeps_its_revocations(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    (serial,) = revoke(tmp_path, "kmar", now=NOW).revoked
    paths = PkiPaths(tmp_path)
    late = NOW + CRL_VALIDITY - timedelta(days=1)

    report = init_pki(tmp_path, PARTNERS, now=late)

    assert report.refreshed == [paths.crl]
    assert paths.crl not in report.kept
    crl = load_crl(paths)
    assert [entry.serial_number for entry in crl] == [serial]
    assert crl.next_update_utc == late + CRL_VALIDITY


def test_a_lost_crl_is_not_replaced_by_an_empty_one(tmp_path: Path) -> None:
    # Its revocations cannot be rebuilt: a new CRL would let revoked partners back in.
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    revoke(tmp_path, "politie", now=NOW)
    paths.crl.unlink()
    with pytest.raises(ConfigurationError, match=r"CRL .* is missing.*backup"):
        init_pki(tmp_path, PARTNERS, now=NOW)
    with pytest.raises(ConfigurationError, match=r"CRL .* is missing.*backup"):
        revoke(tmp_path, "kmar", now=NOW)
    assert not paths.crl.exists()


def test_missing_ca_with_leftover_certificates_is_an_error(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    paths.ca_cert.unlink()
    with pytest.raises(ConfigurationError, match="both exist"):
        init_pki(tmp_path, PARTNERS, now=NOW)
    paths.ca_key.unlink()
    with pytest.raises(ConfigurationError, match="CA is missing"):
        init_pki(tmp_path, PARTNERS, now=NOW)


def test_half_a_key_pair_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    init_pki(tmp_path, PARTNERS, now=NOW)
    paths = PkiPaths(tmp_path)
    paths.partner_key("kmar").unlink()
    cert_before = paths.partner_cert("kmar").read_bytes()
    with pytest.raises(ConfigurationError, match="half of the key pair"):
        init_pki(tmp_path, PARTNERS, now=NOW)
    assert paths.partner_cert("kmar").read_bytes() == cert_before


def test_revoke_takes_its_serials_from_the_register_not_from_files(tmp_path: Path) -> None:
    # A certificate of another CA put in partners/ is not what the CA issued: its serial
    # never reaches the CRL; the certificate the register lists does.
    init_pki(tmp_path / "a", PARTNERS, now=NOW)
    init_pki(tmp_path / "b", PARTNERS, now=NOW)
    a, b = PkiPaths(tmp_path / "a"), PkiPaths(tmp_path / "b")
    issued = load(a.partner_cert("kmar")).serial_number
    a.partner_cert("kmar").write_bytes(b.partner_cert("kmar").read_bytes())
    assert revoke(a.pki_dir, "kmar", now=NOW).revoked == (issued,)
    assert [entry.serial_number for entry in load_crl(a)] == [issued]
