"""The log's public key: the copies a verifier reads.

`audit-log.key` holds the private key (PKCS#8 PEM, mode 0600); `audit-log.pub` holds the
public key (SubjectPublicKeyInfo PEM). The gateway writes both together, once, when it
creates the key pair (`gateway.keys`); this module only reads. A missing `audit-log.pub`
is never recreated silently: whoever can write `var/keys` could otherwise swap in a key
of their own. Re-exporting it from the private key is an explicit operator action
(`doelpoort audit export-key`).

The copy that counts is the DPO's own, kept off the gateway host: `read_public_key_file`
reads it as PEM or as a C2SP verifier key (``<name>+<hex key ID>+<base64>``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_public_key,
)

from audit.checkpoint import parse_verifier_key
from audit.errors import ConfigurationError

PRIVATE_KEY_FILE = "audit-log.key"
PUBLIC_KEY_FILE = "audit-log.pub"
EXPORT_COMMAND = "doelpoort audit export-key"
MAX_KEY_FILE_BYTES = 64 * 1024


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
