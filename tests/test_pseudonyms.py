"""Keyed pseudonyms: derivation, stability and unlinkability (the master key file:
tests/test_keys.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigurationError
from gateway.pseudonyms import (
    INFO_PREFIX,
    PseudonymKeys,
    hkdf_sha256,
    normalise,
)

MASTER = bytes(range(32))


def test_hkdf_rfc5869_test_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, info, length=42, salt=salt)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_the_construction_is_the_documented_one() -> None:
    info = INFO_PREFIX + b"politie\x00ct-assessment"
    assert info == b"doelpoort/pseudonym/v1\x00politie\x00ct-assessment"
    key = hkdf_sha256(MASTER, info)
    mac = hmac.new(key, b"jan fictief-0001", hashlib.sha256).digest()[:16]
    expected = "psn:" + mac.hex()
    got = (
        PseudonymKeys(MASTER).domain("politie", "ct-assessment").pseudonym("  Jan\t FICTIEF-0001 ")
    )
    assert got == expected
    assert len(got) == 4 + 32  # 128 bits as hex
    assert got == got.lower()


def test_stable_within_a_domain_and_across_instances() -> None:
    a = PseudonymKeys(MASTER).domain("politie", "ct-assessment")
    b = PseudonymKeys(MASTER).domain("politie", "ct-assessment")
    assert a.pseudonym("123456782") == b.pseudonym("123456782")


def test_domain_keys_are_cached() -> None:
    keys = PseudonymKeys(MASTER)
    assert keys.domain("politie", "ct-assessment") is keys.domain("politie", "ct-assessment")


@pytest.mark.parametrize(
    ("requester", "purpose"),
    [
        ("nctv", "ct-assessment"),  # other requester
        ("politie", "pnr-request"),  # other purpose
        ("ct-assessment", "politie"),  # swapped
    ],
)
def test_unlinkable_across_domains(requester: str, purpose: str) -> None:
    keys = PseudonymKeys(MASTER)
    home = keys.domain("politie", "ct-assessment")
    other = keys.domain(requester, purpose)
    values = [f"{n:09d}" for n in range(200)]
    assert not {home.pseudonym(v) for v in values} & {other.pseudonym(v) for v in values}


def test_another_master_gives_other_pseudonyms() -> None:
    a = PseudonymKeys(MASTER).domain("politie", "ct-assessment")
    b = PseudonymKeys(bytes(32)).domain("politie", "ct-assessment")
    assert a.pseudonym("123456782") != b.pseudonym("123456782")


@pytest.mark.parametrize(("requester", "purpose"), [("", "x"), ("x", ""), ("a\x00b", "c")])
def test_ambiguous_domains_are_refused(requester: str, purpose: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        PseudonymKeys(MASTER).domain(requester, purpose)


def test_the_master_must_be_32_bytes() -> None:
    with pytest.raises(ConfigurationError):
        PseudonymKeys(b"short")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Jan Fictief", "  jan   FICTIEF\n"),
        ("Straße", "STRASSE"),  # casefold
        ("e\u0301", "\u00e9"),  # NFC
        (123456782, "123456782"),
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
    ],
)
def test_normalisation_makes_spellings_agree(a: object, b: object) -> None:
    assert normalise(a) == normalise(b)


def test_normalisation_keeps_different_values_apart() -> None:
    assert normalise("123456782") != normalise("123456783")
    assert normalise(True) == b"true"
    assert normalise(None) == b"null"
    assert normalise("a b") != normalise("ab")


def test_nothing_secret_in_repr() -> None:
    keys = PseudonymKeys(MASTER)
    assert MASTER.hex() not in repr(keys)
    assert "hidden" in repr(keys.domain("politie", "ct-assessment"))


@given(st.text(min_size=1, max_size=30))
def test_pseudonyms_of_distinct_normalised_values_differ(value: str) -> None:
    domain = PseudonymKeys(MASTER).domain("politie", "ct-assessment")
    other = value + "x"
    assert domain.pseudonym(value) != domain.pseudonym(other)
