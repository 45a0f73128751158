"""The DPO's independent witness: what it remembers, and when it cosigns.

The gateway signs its own checkpoints, so whoever holds its log key (or restores an older
copy of its log) can show a history the gateway never had, and every stored signature
would agree. A witness run by the DPO, with its own key and its own memory outside the
gateway, closes that gap: it cosigns (c2sp.org/tlog-cosignature) a checkpoint only after
checking that it extends the last one it cosigned (an RFC 9162 consistency proof), and it
remembers that checkpoint. A log that was rolled back to a smaller size, or forked (a
different history at a size already seen), is refused: the witness never cosigns it,
and `doelpoort audit verify --witness` fails on it.

The witness's **state** is one signed note: the latest checkpoint it cosigned, with the
log's signature and its own cosignature. It is read back only if both verify, so the
state cannot be swapped for another log's or edited by hand. Where it is kept (a
directory of the DPO's, never the gateway's database) is the command's business
(`gateway/_cli_witness.py`); this module decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoint import Checkpoint, open_checkpoint, parse_signature_line, split_note
from audit.cosignature import (
    Cosignature,
    add_cosignature,
    cosign,
    cosignatures_of,
    cosigner_verifier_key,
)
from audit.errors import CheckpointError, ProofError
from audit.proof import verify_consistency

__all__ = ["Cosigned", "LogKey", "WitnessKey", "check_advance", "open_state"]


@dataclass(frozen=True)
class LogKey:
    """The log the witness watches: its origin (also its key's name) and public key."""

    origin: str
    public_key: Ed25519PublicKey

    def open(self, note: str) -> Checkpoint:
        """The checkpoint of a note signed by this log (`CheckpointError` otherwise)."""
        return open_checkpoint(note, self.origin, self.public_key, self.origin)


@dataclass(frozen=True)
class WitnessKey:
    """The witness's name (its cosignature key's name) and private key."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def verifier_key(self) -> str:
        """``<name>+<hex key ID>+<base64(0x04 || key)>``: what the gateway and
        `audit verify --witness` are given."""
        return cosigner_verifier_key(self.name, self.public_key)


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint the witness cosigned: the state it keeps."""

    checkpoint: Checkpoint
    cosignature: Cosignature
    note: str
    """The checkpoint note with the log's signature and this cosignature."""

    @classmethod
    def sign(cls, note: str, log: LogKey, witness: WitnessKey, now: int) -> Cosigned:
        """Cosign the log's checkpoint `note` at `now` (Unix seconds). The note kept has
        the log's signature lines and this cosignature; other witnesses' lines and this
        witness's earlier ones are left out."""
        checkpoint = log.open(note)
        text, lines = split_note(note)
        own = [line for line in lines if parse_signature_line(line)[0] == log.origin]
        cosignature = cosign(text, witness.name, witness.private_key, now)
        kept = add_cosignature(text + "\n" + "".join(f"{line}\n" for line in own), cosignature)
        return cls(checkpoint, cosignature, kept)


def open_state(note: str, log: LogKey, name: str, public_key: Ed25519PublicKey) -> Cosigned:
    """The witness's state read back: `ProofError` unless the note is a checkpoint of
    this log, signed by it, and cosigned by the witness `name` with `public_key` (the
    witness itself, or `audit verify --witness-state` with the witness's verifier key)."""
    try:
        checkpoint = log.open(note)
    except CheckpointError as exc:
        raise ProofError(f"the witness's state is no checkpoint of {log.origin}: {exc}") from exc
    cosignatures = cosignatures_of(note, name, public_key)
    if not cosignatures:
        raise ProofError(f"the witness's state carries no cosignature of {name}")
    latest = max(cosignatures, key=lambda c: c.timestamp)
    return Cosigned(checkpoint, latest, note)


def check_advance(
    previous: Checkpoint | None, latest: Checkpoint, proof: Sequence[bytes] | None
) -> None:
    """Whether the witness may cosign `latest` after `previous`, the last checkpoint it
    cosigned (None: it has cosigned none, and trusts the first it sees). `proof` is the
    consistency proof from `previous`'s size to `latest`'s (None when the sizes are
    equal). Raises `ProofError` on a rollback (a smaller size) or a fork (a different
    root at a size it saw, or a tree that does not extend it)."""
    if previous is None:
        return
    if latest.size < previous.size:
        raise ProofError(
            f"rollback: the log's latest checkpoint has size {latest.size}, smaller than "
            f"size {previous.size}, which this witness cosigned: entries "
            f"{latest.size + 1} to {previous.size} are gone (an older copy of the log?)"
        )
    if latest.size == previous.size:
        if latest.root != previous.root:
            raise ProofError(
                f"fork: the log's checkpoint at size {latest.size} has root "
                f"{latest.root.hex()}, but this witness cosigned root "
                f"{previous.root.hex()} at that size"
            )
        return
    try:
        verify_consistency(previous.size, latest.size, proof or [], previous.root, latest.root)
    except ProofError as exc:
        raise ProofError(
            f"fork: the log at size {latest.size} does not extend the checkpoint at size "
            f"{previous.size} this witness cosigned: {exc.detail}"
        ) from exc
