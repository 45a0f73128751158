"""Signed checkpoints in the C2SP formats (c2sp.org/tlog-checkpoint, c2sp.org/signed-note).

A checkpoint commits the log to a tree size and root hash. Its note text is

    <origin>\\n<size>\\n<base64 root>\\n

followed by a blank line and one signature line per key,
``— <key name> <base64(key ID[4] || Ed25519 signature[64])>``, where the key ID is
SHA-256(key name || 0x0A || 0x01 || public key)[:4]. `open_checkpoint` follows the
signed-note rules: signatures from unknown keys are ignored, a known key's signature
must verify, and at least one must be present.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import CheckpointError
from audit.hasher import HASH_SIZE

__all__ = [
    "ED25519_TYPE",
    "Checkpoint",
    "CheckpointError",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_signature_line",
    "parse_text",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "split_note",
    "verifier_key",
]

ED25519_TYPE = b"\x01"
KEY_ID_SIZE = 4
SIGNATURE_SIZE = 64
MAX_NOTE_CHARS = 64 * 1024
SIGNATURE_PREFIX = "\u2014 "  # em dash, space

_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")
_BAD_KEY_NAME_RE = re.compile(r"[\s+]")


@dataclass(frozen=True)
class Checkpoint:
    """The log `origin` at tree `size` has root hash `root`."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL_RE.search(self.origin):
            raise ValueError("origin must be one non-empty line")
        if self.size < 0:
            raise ValueError("size must not be negative")
        if len(self.root) != HASH_SIZE:
            raise ValueError(f"root must be {HASH_SIZE} bytes, got {len(self.root)}")

    def text(self) -> str:
        """The note text that gets signed."""
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"


def key_id(
    key_name: str, public_key: Ed25519PublicKey, signature_type: bytes = ED25519_TYPE
) -> bytes:
    """The 4-byte signed-note key ID of an Ed25519 key under `key_name`, for signatures of
    `signature_type` (0x01, a note signature; 0x04, a cosignature: `audit.cosignature`)."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sha256(key_name.encode() + b"\n" + signature_type + raw).digest()[:KEY_ID_SIZE]


def verifier_key(
    key_name: str, public_key: Ed25519PublicKey, signature_type: bytes = ED25519_TYPE
) -> str:
    """The key in the `<name>+<hex key ID>+<base64(type || key)>` form Go's note tools
    read (type 0x01 unless `signature_type` says otherwise)."""
    _check_key_name(key_name)
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = key_id(key_name, public_key, signature_type)
    return f"{key_name}+{kid.hex()}+{_b64(signature_type + raw)}"


def parse_verifier_key(
    text: str, signature_type: bytes = ED25519_TYPE
) -> tuple[str, Ed25519PublicKey]:
    """The key name and Ed25519 key of a `<name>+<hex key ID>+<base64>` verifier key.

    The inverse of `verifier_key`. Raises `ValueError` when the string is malformed, is
    not an Ed25519 key of `signature_type`, or its key ID does not match its name and key.
    """
    parts = text.strip().split("+", 2)  # the base64 key may itself hold "+"
    if len(parts) != 3:
        raise ValueError("a verifier key is <name>+<hex key ID>+<base64 key>")
    name, hex_id, encoded = parts
    _check_key_name(name)
    try:
        want_id = bytes.fromhex(hex_id)
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the verifier key's key ID or key is not hex and base64") from None
    if len(want_id) != KEY_ID_SIZE or len(blob) != 33:
        raise ValueError("the verifier key is not a 4-byte key ID and an Ed25519 key")
    if blob[:1] != signature_type:
        raise ValueError(
            "the verifier key is not an Ed25519 key of signature type "
            f"0x{signature_type[0]:02x}: got type 0x{blob[0]:02x}"
        )
    public_key = Ed25519PublicKey.from_public_bytes(blob[1:])
    if key_id(name, public_key, signature_type) != want_id:
        raise ValueError(f"the verifier key's key ID {hex_id} does not match its name and key")
    return name, public_key


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """`text` (ending in a newline) as a signed note with one Ed25519 signature line."""
    _check_key_name(key_name)
    if not text.endswith("\n") or _CONTROL_RE.search(text):
        raise ValueError("note text ends in a newline and holds no other control characters")
    signature = private_key.sign(text.encode())
    kid = key_id(key_name, private_key.public_key())
    return f"{text}\n{SIGNATURE_PREFIX}{key_name} {_b64(kid + signature)}\n"


def open_note(note: str, key_name: str, public_key: Ed25519PublicKey) -> str:
    """The text of a signed note that carries a valid signature of this key.

    Raises `CheckpointError` when the note is malformed, carries no signature of this key,
    or carries a signature of this key that does not verify.
    """
    text, signature_lines = split_note(note)
    _verify_signatures(text, signature_lines, key_name, public_key)
    return text


def sign_checkpoint(cp: Checkpoint, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note with one Ed25519 signature line."""
    return sign_note(cp.text(), key_name, private_key)


def open_checkpoint(
    note: str, key_name: str, public_key: Ed25519PublicKey, origin: str
) -> Checkpoint:
    """Verify a signed checkpoint note and return what it commits to.

    Raises `CheckpointError` when the note is malformed, carries no signature of this
    key, carries a signature of this key that does not verify, or names another origin.
    """
    return parse_text(open_note(note, key_name, public_key), origin)


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's text (ending in a newline) and its signature lines; raises
    `CheckpointError` when it is no signed note."""
    if len(note) > MAX_NOTE_CHARS:
        raise CheckpointError(f"note is {len(note)} characters, limit {MAX_NOTE_CHARS}")
    if _CONTROL_RE.search(note):
        raise CheckpointError("note contains control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CheckpointError("note has no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block[:-1].split("\n") if block else []
    if not lines:
        raise CheckpointError("note has no signature lines")
    return text, lines


def _verify_signatures(
    text: str, lines: list[str], key_name: str, public_key: Ed25519PublicKey
) -> None:
    want_id = key_id(key_name, public_key)
    verified = False
    for line in lines:
        name, signature = parse_signature_line(line)
        if name != key_name or signature[:KEY_ID_SIZE] != want_id:
            continue  # another key's signature (a witness, a rotated key): ignore
        raw = signature[KEY_ID_SIZE:]
        if len(raw) != SIGNATURE_SIZE:
            raise CheckpointError(f"signature is {len(raw)} bytes, want {SIGNATURE_SIZE}")
        try:
            public_key.verify(raw, text.encode())
        except InvalidSignature:
            raise CheckpointError(f"signature of key {key_name} does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError(f"no signature of key {key_name} ({want_id.hex()})")


def parse_signature_line(line: str) -> tuple[str, bytes]:
    """The key name and the decoded signature (key ID first) of one signature line."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError("malformed signature line")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or not parts[0] or _BAD_KEY_NAME_RE.search(parts[0]):
        raise CheckpointError("malformed signature line")
    signature = _b64decode(parts[1], "signature")
    if len(signature) <= KEY_ID_SIZE:
        raise CheckpointError("signature too short")
    return parts[0], signature


def parse_text(text: str, origin: str) -> Checkpoint:
    """The checkpoint a note's text states (no signature is checked here)."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointError("checkpoint needs origin, size and root on non-empty lines")
    if lines[0] != origin:
        raise CheckpointError(f"origin: got {lines[0]!r}, want {origin!r}")
    if not _SIZE_RE.fullmatch(lines[1]):
        raise CheckpointError("size is not a decimal number without leading zeros")
    root = _b64decode(lines[2], "root hash")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash is {len(root)} bytes, want {HASH_SIZE}")
    return Checkpoint(origin=origin, size=int(lines[1]), root=root)


def _check_key_name(key_name: str) -> None:
    if not key_name or _BAD_KEY_NAME_RE.search(key_name) or _CONTROL_RE.search(key_name):
        raise ValueError("key names are non-empty, without spaces or '+'")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{what} is not valid base64") from None
