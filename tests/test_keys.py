"""The gateway's key material (gateway/keys.py): created once, never overwritten, loaded
without ever being created, and every private key refused unless it is the owner's alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.keys import load_log_public_key
from gateway.dev.pki import init_pki
from gateway.errors import ConfigurationError
from gateway.keys import (
    MASTER_KEY_FILE,
    create_escrow_keys,
    create_keys,
    create_log_key,
    current_receipt_key_file,
    export_log_public_key,
    load_log_key,
    load_master_key,
    load_receipt_keys,
    read_escrow_private_key,
    rotate_receipt_key,
)
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.tls import server_ssl_context


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def log_key(keys_dir: Path) -> Ed25519PrivateKey:
    create_log_key(keys_dir)
    return load_log_key(keys_dir)


def quiet(_: str) -> None:
    pass


def new_deployment(tmp_path: Path) -> Path:
    keys = tmp_path / "var" / "keys"
    create_keys(keys, tmp_path / "var" / "audit.sqlite3", quiet)
    return keys


# --- a new deployment ------------------------------------------------------------------


def test_create_keys_makes_every_key_once_with_mode_0600(tmp_path: Path) -> None:
    lines: list[str] = []
    keys = tmp_path / "keys"
    create_keys(keys, tmp_path / "audit.sqlite3", lines.append)
    private = [
        keys / MASTER_KEY_FILE,
        keys / "audit-log.key",
        keys / "subject-ref.key",
        *keys.glob("receipts/*.key"),
    ]
    assert len(private) == 4
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in private)
    assert sum(line.startswith("  created") for line in lines) == 6  # and .pub, current
    before = {path: path.read_bytes() for path in keys.rglob("*") if path.is_file()}
    lines.clear()
    create_keys(keys, tmp_path / "audit.sqlite3", lines.append)
    assert not any(line.startswith("  created") for line in lines)
    assert {path: path.read_bytes() for path in keys.rglob("*") if path.is_file()} == before


def test_create_keys_refuses_to_replace_a_lost_key_once_there_is_a_log(tmp_path: Path) -> None:
    keys = new_deployment(tmp_path)
    (tmp_path / "var" / "audit.sqlite3").touch()
    (keys / MASTER_KEY_FILE).unlink()
    with pytest.raises(ConfigurationError, match="restore the key from a backup"):
        create_keys(keys, tmp_path / "var" / "audit.sqlite3", quiet)
    assert not (keys / MASTER_KEY_FILE).exists()


def test_two_deployments_get_different_masters(tmp_path: Path) -> None:
    assert load_master_key(new_deployment(tmp_path / "a")) != load_master_key(
        new_deployment(tmp_path / "b")
    )


# --- loading never creates ---------------------------------------------------------------

LOADERS: list[tuple[str, Callable[[Path], object]]] = [
    ("master key", load_master_key),
    ("receipt key", load_receipt_keys),
    ("log key", load_log_key),
]


@pytest.mark.parametrize(("what", "load"), LOADERS)
def test_loading_never_creates(tmp_path: Path, what: str, load: Callable[[Path], object]) -> None:
    keys = tmp_path / "keys"
    with pytest.raises(ConfigurationError, match=r"doelpoort setup"):
        load(keys)
    assert not keys.exists(), what


# --- 0600 for every private key ----------------------------------------------------------


def private_files(keys: Path) -> list[Path]:
    return [keys / MASTER_KEY_FILE, keys / "audit-log.key", *keys.glob("receipts/*.key")]


@pytest.mark.parametrize(("what", "load"), LOADERS)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_private_key_others_may_read_is_refused(
    tmp_path: Path, what: str, load: Callable[[Path], object], mode: int
) -> None:
    keys = new_deployment(tmp_path)
    load(keys)
    for path in private_files(keys):
        os.chmod(path, mode)
    with pytest.raises(ConfigurationError, match="0600"):
        load(keys)


def test_a_retired_receipt_key_others_may_read_is_refused(tmp_path: Path) -> None:
    keys = new_deployment(tmp_path)
    retired = next(keys.glob("receipts/*.key"))
    rotate_receipt_key(keys)
    os.chmod(retired, 0o644)
    with pytest.raises(ConfigurationError, match="0600"):
        load_receipt_keys(keys)


def test_the_tls_server_key_others_may_read_is_refused(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init_pki(paths.pki_dir, ["politie"])
    server_ssl_context(paths)
    os.chmod(paths.server_key, 0o644)
    with pytest.raises(ConfigurationError, match="0600"):
        server_ssl_context(paths)


def test_the_dpo_escrow_key_others_may_read_is_refused(tmp_path: Path) -> None:
    files = create_escrow_keys(tmp_path / "dpo", tmp_path / "keys")
    assert files is not None
    read_escrow_private_key(files.private)
    os.chmod(files.private, 0o644)
    with pytest.raises(ConfigurationError, match="0600"):
        read_escrow_private_key(files.private)


# --- the master secret -------------------------------------------------------------------


def test_a_master_key_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MASTER_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"too short")
    os.close(fd)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_master_key(tmp_path)
    assert path.read_bytes() == b"too short"


# --- receipt keys ------------------------------------------------------------------------


def test_rotation_keeps_the_old_key_as_retired(tmp_path: Path) -> None:
    keys = new_deployment(tmp_path)
    old, retired = load_receipt_keys(keys)
    assert retired == []
    kid = rotate_receipt_key(keys)
    current, retired = load_receipt_keys(keys)
    assert current.thumbprint() == kid == current_receipt_key_file(keys).read_text().strip()
    assert [key.thumbprint() for key in retired] == [old.thumbprint()]


# --- the audit log key -------------------------------------------------------------------


def test_creating_the_key_pair_writes_both_halves(tmp_path: Path) -> None:
    key = log_key(tmp_path / "keys")
    assert raw(load_log_public_key(tmp_path / "keys")) == raw(key.public_key())


def test_a_missing_public_key_is_not_recreated(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = log_key(keys)
    (keys / "audit-log.pub").unlink()
    assert raw(log_key(keys).public_key()) == raw(key.public_key())
    assert not (keys / "audit-log.pub").exists()
    with pytest.raises(ConfigurationError) as failed:
        load_log_public_key(keys)
    message = str(failed.value)
    assert "audit-log.pub is missing" in message
    assert "doelpoort audit export-key" in message


def test_export_writes_the_public_key_from_the_private_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key = log_key(keys)
    (keys / "audit-log.pub").unlink()
    exported = export_log_public_key(keys)
    assert exported[:2] == (keys / "audit-log.pub", True)
    assert raw(exported.public_key) == raw(key.public_key())
    assert raw(load_log_public_key(keys)) == raw(key.public_key())
    assert export_log_public_key(keys)[:2] == (keys / "audit-log.pub", False)  # idempotent


def test_export_never_overwrites_a_public_key_of_another_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    log_key(keys)
    planted = pem(Ed25519PrivateKey.generate().public_key())
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
