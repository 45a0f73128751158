"""Witness cosignatures of checkpoints: C2SP tlog-cosignature, `cosignature/v1` (Ed25519).

A cosignature is one more signature line on a checkpoint note, by a witness rather than
the log: "as of time T, the largest consistent tree this witness has seen for this log
has this root". The witness signs

    cosignature/v1\\n
    time <T>\\n
    <the checkpoint's note text: origin, size, root (and any extension lines)>

with its Ed25519 key, and the line is ``— <witness name> base64(key ID[4] ||
T as 8 bytes big-endian || signature[64])``, where the key ID is SHA-256(name || 0x0A ||
0x04 || public key)[:4]: signature type 0x04, so the witness's key can never pass for a
log key (0x01) and a cosignature never for a checkpoint signature. The witness's verifier
key is ``<name>+<hex key ID>+<base64(0x04 || public key)>``.

The log's own signature line is never touched: `add_cosignature` appends a line to the
note's signature block. Every failure is a `ProofError` saying what does not hold.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoint import (
    SIGNATURE_PREFIX,
    key_id,
    parse_signature_line,
    parse_verifier_key,
    split_note,
    verifier_key,
)
from audit.errors import CheckpointError, ProofError

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "add_cosignature",
    "cosign",
    "cosignatures_of",
    "cosigned_message",
    "cosigner_key_id",
    "cosigner_verifier_key",
    "parse_cosignature",
    "parse_cosigner_key",
    "verify_cosignature",
]

COSIGNATURE_TYPE = b"\x04"
"""The signed-note signature type of an Ed25519 cosignature/v1."""

HEADER = "cosignature/v1\n"
KEY_ID_SIZE = 4
TIMESTAMP_SIZE = 8
SIGNATURE_SIZE = 64
MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True)
class Cosignature:
    """One witness's cosignature line, decoded."""

    name: str
    key_id: bytes
    timestamp: int
    """When the witness signed: Unix seconds."""
    signature: bytes

    def line(self) -> str:
        """The signature line, without its newline."""
        blob = self.key_id + self.timestamp.to_bytes(TIMESTAMP_SIZE, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}"


def cosigner_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID of a witness key under `name` (signature type 0x04)."""
    return key_id(name, public_key, COSIGNATURE_TYPE)


def cosigner_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The witness's verifier key, ``<name>+<hex key ID>+<base64(0x04 || key)>``."""
    return verifier_key(name, public_key, COSIGNATURE_TYPE)


def parse_cosigner_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """The name and key of a witness's verifier key; `ValueError` when it is none (a
    log's key, type 0x01, is refused too)."""
    return parse_verifier_key(text, COSIGNATURE_TYPE)


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a witness signs over a checkpoint's note `text` at `timestamp`."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ProofError(f"cosignature time {timestamp} is outside 0 to 2^63 - 1")
    if not text.endswith("\n"):
        raise ProofError("a checkpoint's note text ends in a newline")
    return f"{HEADER}time {timestamp}\n{text}".encode()


def cosign(text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> Cosignature:
    """The witness's cosignature of the checkpoint note `text` at `timestamp`."""
    signature = private_key.sign(cosigned_message(text, timestamp))
    kid = cosigner_key_id(name, private_key.public_key())
    return Cosignature(name=name, key_id=kid, timestamp=timestamp, signature=signature)


def parse_cosignature(line: str) -> Cosignature:
    """A cosignature line decoded (not verified): `ProofError` when it is malformed."""
    try:
        name, blob = parse_signature_line(line.rstrip("\n"))
    except CheckpointError as exc:
        raise ProofError(f"cosignature line: {exc.detail}") from exc
    want = KEY_ID_SIZE + TIMESTAMP_SIZE + SIGNATURE_SIZE
    if len(blob) != want:
        raise ProofError(f"cosignature of {name} is {len(blob)} bytes, want {want}")
    timestamp = int.from_bytes(blob[KEY_ID_SIZE : KEY_ID_SIZE + TIMESTAMP_SIZE], "big")
    if timestamp > MAX_TIMESTAMP:
        raise ProofError(f"cosignature of {name}: time {timestamp} is beyond 2^63 - 1")
    return Cosignature(
        name=name,
        key_id=blob[:KEY_ID_SIZE],
        timestamp=timestamp,
        signature=blob[KEY_ID_SIZE + TIMESTAMP_SIZE :],
    )


def verify_cosignature(
    text: str, cosignature: Cosignature, name: str, public_key: Ed25519PublicKey
) -> None:
    """Check that `cosignature` is by this witness (name and key ID) and signs the
    checkpoint note `text`; `ProofError` naming what does not hold."""
    want_id = cosigner_key_id(name, public_key)
    if cosignature.name != name or cosignature.key_id != want_id:
        raise ProofError(
            f"cosignature key: got {cosignature.name} {cosignature.key_id.hex()}, "
            f"want {name} {want_id.hex()}"
        )
    try:
        public_key.verify(cosignature.signature, cosigned_message(text, cosignature.timestamp))
    except InvalidSignature:
        raise ProofError(
            f"the cosignature of {name} (time {cosignature.timestamp}) does not verify "
            "over this checkpoint"
        ) from None


def cosignatures_of(note: str, name: str, public_key: Ed25519PublicKey) -> list[Cosignature]:
    """This witness's cosignatures on a signed note, each verified over its text.

    Other keys' lines (the log's, other witnesses') are skipped, as signed-note asks; a
    line of this witness that does not verify is a `ProofError`. An empty list: the
    witness never cosigned this note.
    """
    try:
        text, lines = split_note(note)
    except CheckpointError as exc:
        raise ProofError(exc.detail) from exc
    want_id = cosigner_key_id(name, public_key)
    found = []
    for line in lines:
        try:
            line_name, blob = parse_signature_line(line)
        except CheckpointError as exc:
            raise ProofError(exc.detail) from exc
        if line_name != name or blob[:KEY_ID_SIZE] != want_id:
            continue
        cosignature = parse_cosignature(line)
        verify_cosignature(text, cosignature, name, public_key)
        found.append(cosignature)
    return found


def add_cosignature(note: str, cosignature: Cosignature) -> str:
    """`note` with `cosignature`'s line appended to its signature block; the lines
    already there (the log's signature first) stay as they are."""
    try:
        split_note(note)
    except CheckpointError as exc:
        raise ProofError(exc.detail) from exc
    return f"{note}{cosignature.line()}\n"
