"""The witness's own directory: its key and its memory, outside the gateway.

``doelpoort witness init --state DIR`` makes ``DIR/witness.key`` (the Ed25519 private
key, PKCS#8 PEM, mode 0600, never overwritten) and ``DIR/witness.vkey`` (its verifier key,
``<name>+<hex key ID>+<base64(0x04 || key)>``, which also names the witness). After each
cosignature ``DIR/cosigned-checkpoint`` holds the latest checkpoint it cosigned (the
note, with the log's signature and the witness's cosignature), replaced atomically: a
crash leaves the old state or the new one. None of it is ever in the gateway's database
or state directory (`refuse_gateway_dir`); what the state means is `audit.witness`'s.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from audit.cosignature import parse_cosigner_key
from audit.witness import WitnessKey
from gateway.atomic_files import PRIVATE, PUBLIC, create_file, replace_file
from gateway.errors import ConfigurationError
from gateway.keys import read_private_file
from gateway.settings import Settings

__all__ = [
    "KEY_FILE",
    "STATE_FILE",
    "VERIFIER_KEY_FILE",
    "create_witness",
    "load_witness",
    "read_state",
    "read_verifier_key",
    "refuse_gateway_dir",
    "write_state",
]

KEY_FILE = "witness.key"
VERIFIER_KEY_FILE = "witness.vkey"
STATE_FILE = "cosigned-checkpoint"
MAX_STATE_BYTES = 64 * 1024


def refuse_gateway_dir(state_dir: Path, settings: Settings) -> None:
    """`ConfigurationError` when `state_dir` is inside the gateway's state directory: the
    witness vouches for the gateway, so whoever can change the gateway's files must not
    be able to change its memory or use its key."""
    if state_dir.resolve().is_relative_to(settings.var_dir.resolve()):
        raise ConfigurationError(
            f"{state_dir} is inside the gateway's state directory {settings.var_dir}: the "
            "witness's key and memory must live apart from the gateway it watches"
        )


def create_witness(state_dir: Path, name: str) -> WitnessKey | None:
    """A new witness key named `name` in `state_dir`; None when one exists already
    (nothing is written then)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    witness = WitnessKey(name, key)  # checks nothing yet: the verifier key checks the name
    try:
        vkey = witness.verifier_key
    except ValueError as exc:
        raise ConfigurationError(f"witness name {name!r}: {exc}") from exc
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        create_file(state_dir / KEY_FILE, pem, PRIVATE)
    except FileExistsError:
        return None
    replace_file(state_dir / VERIFIER_KEY_FILE, f"{vkey}\n".encode(), PUBLIC)
    return witness


def read_verifier_key(path: Path) -> tuple[str, str]:
    """The text and name of a witness verifier key file (`ConfigurationError` if none)."""
    try:
        text = path.read_text(encoding="ascii").strip()
        name, _ = parse_cosigner_key(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"{path} is no witness verifier key: {exc}") from exc
    return text, name


def load_witness(state_dir: Path) -> WitnessKey:
    """The witness of `state_dir`: its key (0600) and the name its verifier key gives."""
    vkey, name = read_verifier_key(state_dir / VERIFIER_KEY_FILE)
    path = state_dir / KEY_FILE
    try:
        key = load_pem_private_key(read_private_file(path), password=None)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a readable private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    witness = WitnessKey(name, key)
    if witness.verifier_key != vkey:
        raise ConfigurationError(
            f"{state_dir / VERIFIER_KEY_FILE} is not the verifier key of {path}"
        )
    return witness


def read_state(state_dir: Path) -> str | None:
    """The note of the latest checkpoint the witness cosigned; None before its first."""
    path = state_dir / STATE_FILE
    try:
        with path.open("rb") as src:
            data = src.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the witness's state {path}: {exc}") from exc
    if len(data) > MAX_STATE_BYTES:
        raise ConfigurationError(f"{path} is too large to be a checkpoint note")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path} is not UTF-8 text") from exc


def write_state(state_dir: Path, note: str) -> None:
    """Replace the state with `note`, atomically (a crash keeps one state or the other)."""
    replace_file(state_dir / STATE_FILE, note.encode(), PUBLIC)
