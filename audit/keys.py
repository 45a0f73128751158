"""The log's Ed25519 signing key on disk.

`audit-log.key` holds the private key (PKCS#8 PEM, mode 0600); `audit-log.pub` holds the
public key (SubjectPublicKeyInfo PEM) that the DPO and anyone verifying the log need.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from gateway.errors import ConfigurationError

PRIVATE_KEY_FILE = "audit-log.key"
PUBLIC_KEY_FILE = "audit-log.pub"


def load_or_create_log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log key in `keys_dir`, created (with its public half) on first use."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = keys_dir / PRIVATE_KEY_FILE
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = _load_private_key(key_path)
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    pub_path = keys_dir / PUBLIC_KEY_FILE
    if not pub_path.exists():
        pub_path.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    return key


def load_log_public_key(keys_dir: Path) -> Ed25519PublicKey:
    """The log's public key from `keys_dir/audit-log.pub`."""
    path = keys_dir / PUBLIC_KEY_FILE
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the audit log public key {path}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{path} is not an Ed25519 public key")
    return key


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the audit log key {path}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    return key
