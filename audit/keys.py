"""The log's Ed25519 signing key on disk, and the copies of its public half.

`audit-log.key` holds the private key (PKCS#8 PEM, mode 0600); `audit-log.pub` holds the
public key (SubjectPublicKeyInfo PEM). Both are written together, once, when the key pair
is created. A missing `audit-log.pub` is never recreated silently: whoever can write
`var/keys` could otherwise swap in a key of their own. Re-exporting it from the private key
is an explicit operator action (`export_log_public_key`, `doelpoort audit export-key`).

The copy that counts is the DPO's own, kept off the gateway host: `read_public_key_file`
reads it as PEM or as a C2SP verifier key (``<name>+<hex key ID>+<base64>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from audit.checkpoint import parse_verifier_key
from gateway.atomic_files import PUBLIC, create_file, replace_file
from gateway.errors import ConfigurationError

PRIVATE_KEY_FILE = "audit-log.key"
PUBLIC_KEY_FILE = "audit-log.pub"
EXPORT_COMMAND = "doelpoort audit export-key"
MAX_KEY_FILE_BYTES = 64 * 1024


def load_or_create_log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log key in `keys_dir`; on first use, creates the key pair (both files)."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = keys_dir / PRIVATE_KEY_FILE
    if key_path.exists():
        return _load_private_key(key_path)
    key = Ed25519PrivateKey.generate()
    try:
        create_file(key_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    except FileExistsError:  # another process created it meanwhile: theirs stands
        return _load_private_key(key_path)
    replace_file(keys_dir / PUBLIC_KEY_FILE, public_key_pem(key.public_key()))
    return key


def load_log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The existing log key in `keys_dir`; never creates one."""
    path = keys_dir / PRIVATE_KEY_FILE
    if not path.exists():
        raise ConfigurationError(f"there is no audit log key {path}")
    return _load_private_key(path)


def load_log_public_key(keys_dir: Path) -> Ed25519PublicKey:
    """The log's public key from `keys_dir/audit-log.pub`.

    Raises `ConfigurationError` when it cannot be read; when only the public file is
    missing, the message says how to export it again from the private key.
    """
    path = keys_dir / PUBLIC_KEY_FILE
    if not path.exists() and (keys_dir / PRIVATE_KEY_FILE).exists():
        raise ConfigurationError(
            f"the audit log public key {path} is missing, though the log key "
            f"{keys_dir / PRIVATE_KEY_FILE} exists. It is not recreated automatically: "
            f"check why it went missing, then run `{EXPORT_COMMAND}` to write it from the "
            "private key (and compare it with the DPO's own copy)."
        )
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the audit log public key {path}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{path} is not an Ed25519 public key")
    return key


class ExportedKey(NamedTuple):
    """What `export_log_public_key` did: the file, whether it wrote it, and the key."""

    path: Path
    written: bool
    """False when the file was there already, matching the log key."""
    public_key: Ed25519PublicKey


def export_log_public_key(keys_dir: Path) -> ExportedKey:
    """Write `keys_dir/audit-log.pub` from the private key, unless it is there already.

    Raises `ConfigurationError` when there is no private key, or when an `audit-log.pub`
    exists that does not belong to it (it is never overwritten: find out why first).
    """
    public_key = load_log_key(keys_dir).public_key()
    path = keys_dir / PUBLIC_KEY_FILE
    pem = public_key_pem(public_key)
    try:
        create_file(path, pem, PUBLIC)
    except FileExistsError:
        if path.read_bytes() != pem:
            raise ConfigurationError(
                f"{path} exists and does not belong to the log key {keys_dir / PRIVATE_KEY_FILE}; "
                "it was not overwritten. Find out who changed it, then move it away and "
                "export again."
            ) from None
        return ExportedKey(path, False, public_key)
    return ExportedKey(path, True, public_key)


def read_public_key_file(path: Path, key_name: str) -> Ed25519PublicKey:
    """The log's public key from a file the DPO keeps: PEM, or a C2SP verifier key.

    A verifier key (``<name>+<hex key ID>+<base64>``) must name `key_name`. Raises
    `ConfigurationError` when the file cannot be read or holds neither form.
    """
    try:
        with path.open("rb") as src:
            data = src.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the log public key {path}: {exc}") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationError(f"{path} is too large to be a public key")
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not a readable PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError(f"{path} is not an Ed25519 public key")
        return key
    try:
        name, key = parse_verifier_key(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(
            f"{path} is neither a PEM public key nor a verifier key "
            f"(<name>+<hex key ID>+<base64>): {exc}"
        ) from exc
    if name != key_name:
        raise ConfigurationError(f"{path} is the verifier key of {name!r}, not of {key_name!r}")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """The key as SubjectPublicKeyInfo PEM, the form of `audit-log.pub`."""
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the audit log key {path}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    return key
