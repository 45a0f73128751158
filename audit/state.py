"""What the store knows of the committed log, and how it learns that from its storage.

The store keeps the last leaf hash and the compact range in memory: `load_state` rebuilds
them from the whole table at open, checking the chain and the latest checkpoint as it
goes (O(n)). Every group the store commits carries the checkpoint over the tree that
includes it, so the latest checkpoint of a log this store wrote is always at its last
entry: entries after it were not appended by this gateway, and `load_state` refuses
them rather than have the store sign them.

A failed write may still have landed (the COMMIT reached the disk, then the error came),
so afterwards the table holds either the state from before it or the one it prepared;
`match_state` tells which from the table's head (the last entry and the latest
checkpoint), in O(1). When it is neither, someone else wrote to the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import open_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditError, CheckpointError
from audit.storage.interface import LogStorage
from audit.tree import CompactRange

INVESTIGATE = (
    "Investigate with `doelpoort audit verify --log-key YOUR-COPY --trusted-checkpoint "
    "YOUR-LAST-SAVED` (it names the first bad entry)"
)
"""How to look into a log the store refuses, for its messages."""


@dataclass
class LogState:
    """The committed log as the store knows it: chain head and tree. The latest
    checkpoint is at `size`: every commit carries one."""

    last_leaf: bytes
    tree: CompactRange

    @property
    def size(self) -> int:
        return self.tree.size


class Head(NamedTuple):
    """The end of the stored log: its last entry and its latest checkpoint."""

    size: int
    """The last entry's seq (0 when there is none)."""
    last_leaf: bytes
    """The last entry's leaf hash (`GENESIS_PREV` when there is none)."""
    checkpoint_size: int
    """The latest checkpoint's size (0 when there is none)."""


def load_state(storage: LogStorage) -> LogState:
    """Rebuild the chain head and compact range from the table, checking as it goes.

    Raises `AuditError` when the chain or the latest checkpoint does not hold, and when
    entries follow the latest checkpoint: those were not appended by this gateway, which
    never signs over entries it did not itself append.
    """
    latest = storage.latest_checkpoint()
    checkpoint_size, checkpoint_root = (latest.size, latest.root) if latest else (0, None)
    tree = CompactRange()
    size, last_leaf = 0, GENESIS_PREV
    rows = storage.entries(1)
    try:
        for seq, prev, body in rows:
            size += 1
            if seq != size or prev != last_leaf:
                raise inconsistent(size)
            last_leaf = entry_leaf_hash(seq, prev, body)
            tree.append(last_leaf)
            if size == checkpoint_size and tree.root() != checkpoint_root:
                raise inconsistent(size)
    finally:
        rows.close()  # a bad entry stops the scan: let the backend free its cursor now
    if checkpoint_size > size:
        raise inconsistent(size + 1)
    if checkpoint_size < size:
        raise uncovered(storage.location, checkpoint_size, size)
    return LogState(last_leaf, tree)


def read_head(storage: LogStorage) -> Head:
    """The table's head, in O(1): the last entry's leaf hash chains back through every
    entry before it, so it tells the store's candidate states apart."""
    row = storage.last_entry()
    latest = storage.latest_checkpoint()
    return Head(
        row[0] if row else 0,
        entry_leaf_hash(*row) if row else GENESIS_PREV,
        latest.size if latest else 0,
    )


def match_state(head: Head, possible: Sequence[LogState]) -> LogState | None:
    """The one of `possible` that a table with this head holds; None when it is neither."""
    for state in possible:
        if head == (state.size, state.last_leaf, state.size):
            return state
    return None


def check_signer(storage: LogStorage, log_key: Ed25519PrivateKey, origin: str) -> None:
    """Refuse a log whose latest checkpoint this deployment did not sign: appending to
    another deployment's log (or one signed by a replaced key) would fork it."""
    latest = storage.latest_checkpoint()
    if latest is None:
        return
    try:
        open_checkpoint(latest.note, origin, log_key.public_key(), origin)
    except CheckpointError as exc:
        raise AuditError(
            f"the audit log {storage.location} is not this deployment's: its latest checkpoint"
            f" is not signed by this deployment's log key for {origin} ({exc}). Appending"
            " would fork it: restore the right log key, or move the log away to start a new"
            " one."
        ) from exc


def inconsistent(seq: int) -> AuditError:
    return AuditError(
        f"the audit log is not intact near seq {seq}; refusing to append. {INVESTIGATE}."
    )


def uncovered(location: str, checkpoint_size: int, size: int) -> AuditError:
    """The log ends in entries that no checkpoint covers (see `load_state`)."""
    count = size - checkpoint_size
    entries = "1 entry" if count == 1 else f"{count} entries"
    return AuditError(
        f"the audit log {location} ends in {entries} (seq {checkpoint_size + 1} to {size}) "
        f"that no signed checkpoint covers (its latest checkpoint is at size "
        f"{checkpoint_size}). The gateway commits every entry together with its checkpoint, "
        "so it did not append them (an earlier version of Doelpoort could leave such entries "
        "when it stopped abruptly); it will not sign them, and refuses to append. "
        f"{INVESTIGATE}; then move the log aside, for the DPO, to start a new one."
    )


def changed_behind(location: str, head: Head, possible: Sequence[LogState]) -> AuditError:
    """After a failed write, the table holds none of the states the store could have left
    it in: someone else wrote to the log (see `match_state`)."""
    wrote = " or ".join(f"seq {state.size} (leaf {state.last_leaf.hex()})" for state in possible)
    return AuditError(
        f"the audit log {location} changed behind the gateway: after a failed write it ends "
        f"at seq {head.size} (leaf {head.last_leaf.hex()}) with its latest checkpoint at "
        f"size {head.checkpoint_size}, where the gateway had written up to {wrote}. It will "
        "not sign over entries it did not append, so it appends nothing more; stop it. "
        f"{INVESTIGATE}."
    )
