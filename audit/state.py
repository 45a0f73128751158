"""What the store knows of the committed log, and how it learns that from its storage.

The store keeps the last leaf hash and the compact range in memory: `load_state` rebuilds
them from the whole table at open, checking the chain and the latest checkpoint as it
goes (O(n)). A failed write may still have landed (the COMMIT reached the disk, then the
error came), so afterwards the table holds either the state from before it or the one it
prepared; `match_state` tells which from the last entry and the latest checkpoint, in
O(1). Only when it is neither does the store need `load_state` again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import open_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditError, CheckpointError
from audit.storage.interface import LogStorage
from audit.tree import CompactRange


@dataclass
class LogState:
    """The committed log as the store knows it: chain head, tree, last checkpoint."""

    last_leaf: bytes
    tree: CompactRange
    checkpoint_size: int

    @property
    def size(self) -> int:
        return self.tree.size


def load_state(storage: LogStorage) -> LogState:
    """Rebuild the chain head and compact range from the table, checking as it goes."""
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
    return LogState(last_leaf, tree, checkpoint_size)


def match_state(storage: LogStorage, possible: Sequence[LogState]) -> LogState | None:
    """The one of `possible` that the table holds, by its last entry and latest checkpoint.

    The last entry's leaf hash chains back through every entry before it, so the seq and
    leaf of the last row tell the candidates apart in O(1).
    """
    row = storage.last_entry()
    latest = storage.latest_checkpoint()
    found = (
        row[0] if row else 0,
        entry_leaf_hash(*row) if row else GENESIS_PREV,
        latest.size if latest else 0,
    )
    for state in possible:
        if (state.size, state.last_leaf, state.checkpoint_size) == found:
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
        f"the audit log is not intact near seq {seq}; refusing to append. "
        "Run `doelpoort audit verify` for the first bad entry."
    )
