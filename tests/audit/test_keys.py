"""The log key on disk: the public half is written once, never silently recreated."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.checkpoint import verifier_key
from audit.keys import (
    export_log_public_key,
    load_log_key,
    load_log_public_key,
    load_or_create_log_key,
    public_key_pem,
    read_public_key_file,
)
from gateway.errors import ConfigurationError

NAME = "doelpoort-audit"


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_creating_the_key_pair_writes_both_halves(tmp_path: Path) -> None:
    key = load_or_create_log_key(tmp_path / "keys")
    assert raw(load_log_public_key(tmp_path / "keys")) == raw(key.public_key())


def test_a_missing_public_key_is_not_recreated(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = load_or_create_log_key(keys)
    (keys / "audit-log.pub").unlink()
    assert raw(load_or_create_log_key(keys).public_key()) == raw(key.public_key())
    assert not (keys / "audit-log.pub").exists()
    with pytest.raises(ConfigurationError) as failed:
        load_log_public_key(keys)
    message = str(failed.value)
    assert "audit-log.pub is missing" in message
    assert "doelpoort audit export-key" in message


def test_export_writes_the_public_key_from_the_private_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = load_or_create_log_key(keys)
    (keys / "audit-log.pub").unlink()
    exported = export_log_public_key(keys)
    assert exported[:2] == (keys / "audit-log.pub", True)
    assert raw(exported.public_key) == raw(key.public_key())
    assert raw(load_log_public_key(keys)) == raw(key.public_key())
    assert export_log_public_key(keys)[:2] == (keys / "audit-log.pub", False)  # idempotent


def test_export_never_overwrites_a_public_key_of_another_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    load_or_create_log_key(keys)
    planted = public_key_pem(Ed25519PrivateKey.generate().public_key())
    (keys / "audit-log.pub").write_bytes(planted)
    with pytest.raises(ConfigurationError, match="does not belong to the log key"):
        export_log_public_key(keys)
    assert (keys / "audit-log.pub").read_bytes() == planted


def test_export_without_a_private_key_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no audit log key"):
        export_log_public_key(tmp_path)
    with pytest.raises(ConfigurationError, match="no audit log key"):
        load_log_key(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_dpo_copy_may_be_pem_or_a_verifier_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "log.pem"
    pem.write_bytes(public_key_pem(key))
    vkey = tmp_path / "log.vkey"
    vkey.write_text(verifier_key(NAME, key) + "\n")
    assert raw(read_public_key_file(pem, NAME)) == raw(key)
    assert raw(read_public_key_file(vkey, NAME)) == raw(key)


def test_a_verifier_key_of_another_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.vkey"
    path.write_text(verifier_key("someone-else", Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(ConfigurationError, match="not of 'doelpoort-audit'"):
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
