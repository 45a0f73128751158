"""Subject and pseudonym references under the DPO subject key (the key file: here too)."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from gateway.errors import ConfigurationError
from gateway.keys import SUBJECT_REF_KEY_FILE, create_keys, create_subject_ref_key
from gateway.pseudonyms import PseudonymKeys
from gateway.subject_refs import (
    SubjectRefKey,
    identity_keys,
    legacy_key,
    load_subject_ref_key,
)

KEY = bytes(range(32, 64))
MASTER = bytes(range(32))
SAM = {"name": "Sam Fictief-9001", "date_of_birth": "1980-04-01"}  # synthetic


def old_derivation(master: bytes, message: bytes) -> str:
    """The subject reference as the gateway computed it before the DPO subject key,
    written out with the standard library only (HKDF-SHA256 with no salt, one block)."""
    prk = hmac.new(bytes(32), master, hashlib.sha256).digest()
    key = hmac.new(prk, b"doelpoort/dpo-subject-ref/v1" + b"\x01", hashlib.sha256).digest()
    return "psn:" + hmac.new(key, message, hashlib.sha256).digest()[:16].hex()


def test_a_reference_is_keyed_and_normalised() -> None:
    key = SubjectRefKey(KEY)
    ref = key.ref("bsn", "123456782")
    assert ref == key.ref("bsn", " 123456782 ")
    assert ref.startswith("psn:")
    assert "123456782" not in ref
    assert ref != key.ref("v_number", "123456782")
    assert ref != SubjectRefKey(bytes(32)).ref("bsn", "123456782")
    # A passport number as a provider spaces it is the same passport.
    assert key.ref("passport_no", "XR 12 34 56") == key.ref("passport_no", "xr123456")


def test_name_and_date_of_birth_make_one_reference_together() -> None:
    key = SubjectRefKey(KEY)
    one = key.refs(SAM)
    namesake = key.refs({"name": SAM["name"], "date_of_birth": "1975-01-01"})
    same_day = key.refs({"name": "Kim Fictief-9002", "date_of_birth": "1980-04-01"})
    assert len(one) == 1
    # Neither the name nor the date alone links two people in the DPO's look-up.
    assert not set(one) & (set(namesake) | set(same_day))
    with_bsn = key.refs({"bsn": "999900018", **SAM})
    assert set(one) < set(with_bsn)
    assert key.ref("bsn", "999900018") in with_bsn
    assert with_bsn == sorted(with_bsn)
    assert key.refs({"name": SAM["name"]}) == key.refs({"date_of_birth": "1980-04-01"}) == []


def test_an_identity_key_is_one_key_or_name_with_date_of_birth() -> None:
    key = SubjectRefKey(KEY)
    assert identity_keys({"bsn": "999900018", **SAM}) == [
        (("bsn", "999900018"),),
        (("name", SAM["name"]), ("date_of_birth", SAM["date_of_birth"])),
    ]
    assert key.key_ref((("bsn", "999900018"),)) == key.ref("bsn", "999900018")
    with pytest.raises(ValueError, match="name and date_of_birth"):
        key.key_ref((("bsn", "999900018"), ("v_number", "9900000001")))


def test_the_legacy_key_reproduces_the_references_logged_before() -> None:
    legacy = legacy_key(MASTER)
    assert legacy.ref("bsn", "999900018") == old_derivation(MASTER, b"bsn:999900018")
    compound = b"name+date_of_birth:" + b"sam fictief-9001" + b"\x00" + b"1980-04-01"
    assert legacy.refs(SAM) == [old_derivation(MASTER, compound)]
    # No partner's domain can produce it.
    domain = PseudonymKeys(MASTER).domain("politie", "ct-assessment")
    assert legacy.ref("bsn", "999900018") not in {
        domain.pseudonym("999900018"),
        domain.pseudonym("bsn:999900018"),
    }


def test_pseudonym_references_are_not_pseudonyms_or_subject_references() -> None:
    key = SubjectRefKey(KEY)
    psn = "psn:" + "ab" * 16
    ref = key.pseudonym_ref(psn)
    assert ref.startswith("pref:")
    assert psn[4:] not in ref
    assert ref == key.pseudonym_ref(psn)
    assert ref != SubjectRefKey(bytes(32)).pseudonym_ref(psn)
    assert ref[5:] not in key.ref("pseudonym", psn)


def test_the_key_id_names_the_key_and_nothing_secret_shows() -> None:
    key = SubjectRefKey(KEY)
    assert key.kid == SubjectRefKey(KEY).kid != SubjectRefKey(bytes(32)).kid
    assert len(key.kid) == 16
    assert KEY.hex() not in repr(key)
    assert key.kid in repr(key)
    with pytest.raises(ConfigurationError):
        SubjectRefKey(b"short")


def test_the_subject_key_is_made_once_private_and_checked_on_load(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_keys(keys, tmp_path / "audit.sqlite3", echo=lambda _line: None)
    path = keys / SUBJECT_REF_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    made = path.read_bytes()
    assert len(made) == 32
    assert not create_subject_ref_key(keys)
    assert path.read_bytes() == made
    assert load_subject_ref_key(path).kid == SubjectRefKey(made).kid

    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="0600"):
        load_subject_ref_key(path)
    path.chmod(0o600)
    path.write_bytes(os.urandom(31))
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_subject_ref_key(path)
    with pytest.raises(ConfigurationError, match="keys init"):
        load_subject_ref_key(tmp_path / "none.key")


def test_a_deployment_with_a_log_gets_the_subject_key_as_its_upgrade(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_keys(keys, tmp_path / "audit.sqlite3", echo=lambda _line: None)
    (keys / SUBJECT_REF_KEY_FILE).unlink()
    (tmp_path / "audit.sqlite3").write_bytes(b"")  # the deployment has a log now
    lines: list[str] = []
    create_keys(keys, tmp_path / "audit.sqlite3", echo=lines.append)
    assert (keys / SUBJECT_REF_KEY_FILE).exists()
    assert f"  created {keys / SUBJECT_REF_KEY_FILE}" in lines
