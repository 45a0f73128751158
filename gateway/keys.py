"""The gateway's key material: every key it holds is created, loaded and checked here.

Keys under ``var/keys/``, and who makes them:

* the pseudonymisation master secret, ``master.key`` (32 random bytes): `create_keys`;
* the receipt signing keys, ``receipts/<kid>.key`` and ``receipts/current`` naming the
  one that signs: `create_keys`, then `rotate_receipt_key`;
* the audit log key, ``audit-log.key`` with its public half ``audit-log.pub``:
  `create_keys`;
* the DPO subject key, ``subject-ref.key`` (32 random bytes; `gateway.subject_refs`),
  which keys the audit log's subject and pseudonym references and of which the DPO holds
  a copy: `create_keys`;
* the DPO's escrow public key, ``escrow.pub``: `create_escrow_keys`, run by the DPO
  offline (the private half stays with the DPO; ``doelpoort setup`` keeps it in
  ``var/dpo/`` for development).

Three rules hold for every one of them:

* **Loading never creates.** A lost key stops start-up instead of being silently
  replaced, which would change every pseudonym, fork the log's signatures or orphan
  every receipt. `create_keys` (``doelpoort keys init``, ``setup``) makes a new
  deployment's keys, and refuses once the deployment has an audit log.
* **Creating never overwrites.** A file is written whole beside its place and linked in
  (`gateway.atomic_files`).
* **A private key is read only while no one but its owner may access it** (mode 0600,
  `read_private_file`): the master secret, every receipt key, the log key, the DPO's
  escrow key, the TLS server key and the development CA key alike.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from nacl.encoding import URLSafeBase64Encoder
from nacl.public import PrivateKey, PublicKey

from audit.keys import PRIVATE_KEY_FILE as LOG_KEY_FILE
from audit.keys import PUBLIC_KEY_FILE as LOG_PUBLIC_KEY_FILE
from gateway.atomic_files import PUBLIC, create_file, replace_file
from gateway.errors import ConfigurationError

__all__ = [
    "ESCROW_PRIVATE_KEY_FILE",
    "ESCROW_PUBLIC_KEY_FILE",
    "LOG_KEY_FILE",
    "LOG_PUBLIC_KEY_FILE",
    "MASTER_KEY_BYTES",
    "MASTER_KEY_FILE",
    "SUBJECT_REF_KEY_BYTES",
    "SUBJECT_REF_KEY_FILE",
    "EscrowKeyFiles",
    "ExportedKey",
    "check_private_file",
    "create_escrow_keys",
    "create_keys",
    "create_log_key",
    "create_subject_ref_key",
    "current_receipt_key_file",
    "export_log_public_key",
    "export_subject_ref_key",
    "load_escrow_public_key",
    "load_log_key",
    "load_master_key",
    "load_receipt_keys",
    "read_escrow_private_key",
    "read_private_file",
    "read_subject_ref_key",
    "rotate_receipt_key",
]

MASTER_KEY_FILE = "master.key"
MASTER_KEY_BYTES = 32
SUBJECT_REF_KEY_FILE = "subject-ref.key"
SUBJECT_REF_KEY_BYTES = 32
ESCROW_PUBLIC_KEY_FILE = "escrow.pub"
ESCROW_PRIVATE_KEY_FILE = "escrow.key"
ESCROW_KEY_BYTES = PublicKey.SIZE  # X25519: private and public keys are both 32 bytes
_RECEIPTS_DIR = "receipts"
_CURRENT_RECEIPT_KEY = "current"
_KEYS_DIR_MODE = 0o700

SETUP_HINT = (
    "run `doelpoort setup` (development) or `doelpoort keys init` (production) to create the"
    " keys of a new deployment, or restore the lost key from a backup"
)


# -- the 0600 rule ------------------------------------------------------------------------


def check_private_file(path: Path) -> None:
    """Raise `ConfigurationError` unless ``path`` is a file only its owner may access.

    For private keys read by someone else (OpenSSL reads the TLS server key).
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is accessible to group or others (mode {mode:o}); it must be 0600"
        )


def read_private_file(path: Path) -> bytes:
    """The content of a private key file; `ConfigurationError` if group or others may
    access it, or it cannot be read."""
    check_private_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc


# -- a new deployment ---------------------------------------------------------------------


def create_keys(keys_dir: Path, audit_db_path: Path, echo: Callable[[str], None] = print) -> None:
    """Create the missing ones of the gateway's own keys: the pseudonymisation master
    secret, the receipt signing key, the audit log key and the DPO subject key
    (production and development).

    Only for a new deployment: once there is an audit log, a missing key is a lost one,
    and a new one would change every pseudonym, fork the log's signatures or orphan every
    receipt. Then nothing is created and the error says to restore it from a backup.
    The subject key is the exception: a deployment from before it gets one here (its
    upgrade step, docs/dpo.md), since a new one hides no entry from the DPO, who searches
    with every key they hold, the old derivation's too.
    """
    echo(f"· keys in {keys_dir}")
    needed = (
        keys_dir / MASTER_KEY_FILE,
        keys_dir / LOG_KEY_FILE,
        current_receipt_key_file(keys_dir),
    )
    lost = [path for path in needed if not path.exists()]
    if lost and audit_db_path.exists():
        raise ConfigurationError(
            f"{', '.join(map(str, lost))} missing, but this deployment already has an audit"
            f" log ({audit_db_path}): restore the key from a backup. A new one would"
            " change every pseudonym, fork the log's signatures or orphan every receipt."
        )
    keys_dir.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    created: list[Path] = []
    if _create_master_key(keys_dir):
        created.append(keys_dir / MASTER_KEY_FILE)
    if not current_receipt_key_file(keys_dir).exists():
        kid = rotate_receipt_key(keys_dir)
        created += [_receipt_key_file(keys_dir, kid), current_receipt_key_file(keys_dir)]
    if create_log_key(keys_dir):
        created += [keys_dir / LOG_KEY_FILE, keys_dir / LOG_PUBLIC_KEY_FILE]
    if create_subject_ref_key(keys_dir):
        created.append(keys_dir / SUBJECT_REF_KEY_FILE)
    for path in sorted(created):
        echo(f"  created {path}")


# -- the pseudonymisation master secret ---------------------------------------------------


def _create_master_key(keys_dir: Path) -> bool:
    """Create ``master.key`` unless it exists; whether it did."""
    try:
        create_file(keys_dir / MASTER_KEY_FILE, os.urandom(MASTER_KEY_BYTES))
    except FileExistsError:
        return False
    return True


def load_master_key(keys_dir: Path) -> bytes:
    """The existing master secret in ``keys_dir/master.key``; never creates one.

    Raises `ConfigurationError` if the file is missing, has the wrong length or is
    readable by anyone but its owner.
    """
    path = keys_dir / MASTER_KEY_FILE
    if not path.exists():
        raise ConfigurationError(
            f"there is no pseudonym master key {path}: {SETUP_HINT} (a new key changes every"
            " pseudonym)"
        )
    key = read_private_file(path)
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigurationError(f"{path} must hold exactly {MASTER_KEY_BYTES} bytes")
    return key


# -- the DPO subject key ------------------------------------------------------------------


def create_subject_ref_key(keys_dir: Path) -> bool:
    """Create ``subject-ref.key`` (32 random bytes, 0600) unless it exists; whether it did."""
    keys_dir.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    try:
        create_file(keys_dir / SUBJECT_REF_KEY_FILE, os.urandom(SUBJECT_REF_KEY_BYTES))
    except FileExistsError:
        return False
    return True


def read_subject_ref_key(path: Path) -> bytes:
    """The 32 bytes of a subject key file (the gateway's or the DPO's copy); never
    creates one. `ConfigurationError` when it is missing, readable by anyone but its
    owner, or of the wrong length."""
    if not path.exists():
        raise ConfigurationError(
            f"there is no DPO subject key {path}: run `doelpoort keys init` (it makes only"
            " the missing keys), then give the DPO a copy with `doelpoort keys subject-ref"
            " --export FILE`"
        )
    key = read_private_file(path)
    if len(key) != SUBJECT_REF_KEY_BYTES:
        raise ConfigurationError(f"{path} must hold exactly {SUBJECT_REF_KEY_BYTES} bytes")
    return key


def export_subject_ref_key(destination: Path, key: bytes) -> None:
    """Write a copy of a subject key for the DPO (0600); never overwrites
    (`ConfigurationError` when ``destination`` exists)."""
    destination.parent.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    try:
        create_file(destination, key)
    except FileExistsError:
        raise ConfigurationError(f"{destination} exists already; nothing was written") from None


# -- receipt signing keys -----------------------------------------------------------------


def current_receipt_key_file(keys_dir: Path) -> Path:
    """The file naming the key that signs receipts (its absence: no receipt key yet)."""
    return keys_dir / _RECEIPTS_DIR / _CURRENT_RECEIPT_KEY


def _receipt_key_file(keys_dir: Path, kid: str) -> Path:
    return keys_dir / _RECEIPTS_DIR / f"{kid}.key"


def rotate_receipt_key(keys_dir: Path) -> str:
    """Create a new Ed25519 receipt key and make it current; the old one stays, retired.
    Returns the new key's ``kid`` (its RFC 7638 thumbprint)."""
    directory = keys_dir / _RECEIPTS_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=_KEYS_DIR_MODE)
    key = OKPKey.generate_key("Ed25519")
    kid = key.thumbprint()
    create_file(_receipt_key_file(keys_dir, kid), key.as_pem(private=True))
    replace_file(current_receipt_key_file(keys_dir), (kid + "\n").encode())
    return kid


def load_receipt_keys(keys_dir: Path) -> tuple[OKPKey, list[OKPKey]]:
    """The current receipt key and the retired ones; never creates one.

    Raises `ConfigurationError` when there is none, the current one is missing, or a key
    file is unreadable or accessible to group or others.
    """
    current_file = current_receipt_key_file(keys_dir)
    if not current_file.exists():
        raise ConfigurationError(f"there is no receipt signing key ({current_file}): {SETUP_HINT}")
    current_kid = current_file.read_text().strip()
    current: OKPKey | None = None
    retired: list[OKPKey] = []
    for path in sorted((keys_dir / _RECEIPTS_DIR).glob("*.key")):
        try:
            key = OKPKey.import_key(read_private_file(path))
        except (JoseError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{path} is not a readable Ed25519 key") from exc
        if path.stem == current_kid:
            current = key
        else:
            retired.append(key)
    if current is None:
        raise ConfigurationError(
            f"the current receipt key {current_kid!r} named in {current_file} is missing"
        )
    return current, retired


# -- the audit log key --------------------------------------------------------------------


def create_log_key(keys_dir: Path) -> bool:
    """Create the log key pair (``audit-log.key`` and ``.pub``) unless the key exists;
    whether it did. The store and `doelpoort audit verify` name it by the log's origin."""
    keys_dir.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        create_file(keys_dir / LOG_KEY_FILE, pem)
    except FileExistsError:  # there already, or another process created it meanwhile
        return False
    replace_file(keys_dir / LOG_PUBLIC_KEY_FILE, _public_key_pem(key.public_key()))
    return True


def load_log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The existing log key in ``keys_dir``; never creates one."""
    path = keys_dir / LOG_KEY_FILE
    if not path.exists():
        raise ConfigurationError(f"there is no audit log key {path}: {SETUP_HINT}")
    try:
        key = load_pem_private_key(read_private_file(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the audit log key {path}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    return key


class ExportedKey(NamedTuple):
    """What `export_log_public_key` did: the file, whether it wrote it, and the key."""

    path: Path
    written: bool
    """False when the file was there already, matching the log key."""
    public_key: Ed25519PublicKey


def export_log_public_key(keys_dir: Path) -> ExportedKey:
    """Write ``keys_dir/audit-log.pub`` from the private key, unless it is there already.

    Raises `ConfigurationError` when there is no private key, or when an ``audit-log.pub``
    exists that does not belong to it (it is never overwritten: find out why first).
    """
    public_key = load_log_key(keys_dir).public_key()
    path = keys_dir / LOG_PUBLIC_KEY_FILE
    pem = _public_key_pem(public_key)
    try:
        create_file(path, pem, PUBLIC)
    except FileExistsError:
        if path.read_bytes() != pem:
            raise ConfigurationError(
                f"{path} exists and does not belong to the log key {keys_dir / LOG_KEY_FILE}; "
                "it was not overwritten. Find out who changed it, then move it away and "
                "export again."
            ) from None
        return ExportedKey(path, False, public_key)
    return ExportedKey(path, True, public_key)


def _public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


# -- the DPO's escrow key pair ------------------------------------------------------------


@dataclass(frozen=True)
class EscrowKeyFiles:
    private: Path
    public: Path


def create_escrow_keys(private_dir: Path, keys_dir: Path) -> EscrowKeyFiles | None:
    """Make the DPO's pair: the private half in ``private_dir`` (0600), the public half
    in ``keys_dir``. Returns None, writing nothing, when either file exists already."""
    files = EscrowKeyFiles(private_dir / ESCROW_PRIVATE_KEY_FILE, keys_dir / ESCROW_PUBLIC_KEY_FILE)
    if files.private.exists() or files.public.exists():
        return None
    private_dir.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    keys_dir.mkdir(mode=_KEYS_DIR_MODE, parents=True, exist_ok=True)
    key = PrivateKey.generate()
    create_file(files.private, key.encode(URLSafeBase64Encoder) + b"\n")
    try:
        create_file(files.public, key.public_key.encode(URLSafeBase64Encoder) + b"\n", PUBLIC)
    except BaseException:
        # No half pair: a lone private key would make every later run say "exists".
        with contextlib.suppress(OSError):
            files.private.unlink()
        raise
    return files


def load_escrow_public_key(keys_dir: Path) -> PublicKey | None:
    """The DPO's public key from ``keys_dir/escrow.pub``; None when there is no such file.

    Raises `ConfigurationError` when the file (or a dangling link in its place) does not
    hold a 32-byte base64url key.
    """
    path = keys_dir / ESCROW_PUBLIC_KEY_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the escrow public key {path}: {exc}") from exc
    return PublicKey(_escrow_key_text(content, path), URLSafeBase64Encoder)


def read_escrow_private_key(path: Path) -> PrivateKey:
    """The DPO's private escrow key from ``path`` (mode 0600); raises ConfigurationError."""
    if not path.is_file():
        raise ConfigurationError(f"there is no escrow private key at {path}")
    return PrivateKey(_escrow_key_text(read_private_file(path), path), URLSafeBase64Encoder)


def _escrow_key_text(content: bytes, path: Path) -> bytes:
    """A key file's base64url text, checked to decode to an X25519 key's 32 bytes."""
    text = content.strip()
    try:
        size = len(URLSafeBase64Encoder.decode(text))
    except ValueError as exc:
        raise ConfigurationError(f"{path} does not hold a base64url escrow key") from exc
    if size != ESCROW_KEY_BYTES:
        raise ConfigurationError(f"{path} must hold a {ESCROW_KEY_BYTES}-byte X25519 key")
    return text
