"""The DPO's copy of the log's public key: PEM or a C2SP verifier key (the key files the
gateway writes: tests/test_keys.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.checkpoint import verifier_key
from audit.errors import ConfigurationError
from audit.keys import read_public_key_file

NAME = "doelpoort.example/audit"


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_the_dpo_copy_may_be_pem_or_a_verifier_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "log.pem"
    pem.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    vkey = tmp_path / "log.vkey"
    vkey.write_text(verifier_key(NAME, key) + "\n")
    assert raw(read_public_key_file(pem, NAME)) == raw(key)
    assert raw(read_public_key_file(vkey, NAME)) == raw(key)


def test_a_verifier_key_of_another_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.vkey"
    path.write_text(verifier_key("someone-else", Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(ConfigurationError, match=r"not of 'doelpoort\.example/audit'"):
        read_public_key_file(path, NAME)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"hello", "neither a PEM public key nor a verifier key"),
        (b"\xff\xfe", "neither a PEM public key nor a verifier key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM"),
        (b"x" * 70_000, "too large"),
    ],
)
def test_unreadable_dpo_copies(tmp_path: Path, content: bytes, complaint: str) -> None:
    path = tmp_path / "log.key"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=complaint):
        read_public_key_file(path, NAME)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_public_key_file(tmp_path / "missing", NAME)
