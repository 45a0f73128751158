"""Verify a stored audit log: the chain, the Merkle tree and every signed checkpoint.

Verification streams the entries once, in seq order, recomputing each leaf hash from
the stored bytes (no JSON is parsed). Three kinds of evidence are checked:

* **sequence** — seqs run 1, 2, 3, … without gaps;
* **chain** — each entry's `prev` is the leaf hash of the entry before it, so a changed,
  inserted, removed or moved entry breaks a link next to itself;
* **checkpoints** — every checkpoint is signed by the log key for this origin, and the
  root recomputed at its size equals the root it signs. As sizes grow and each root is
  recomputed from the same entries, each checkpoint is a prefix of the next.

When a link between entries j-1 and j is broken, the next link decides which of the two
is to blame: if entry j links to its successor, entry j-1 no longer hashes to what j
recorded (j-1 was changed); otherwise entry j itself is out of place. Two entries that
record the same `prev` mean the first of them was inserted. A root mismatch that no
broken link explains (the chain was rewritten to match) is blamed on the first entry
after the last checkpoint that still holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import open_checkpoint
from audit.entry import GENESIS_PREV, SEQ_SIZE
from audit.errors import AuditVerificationError, CheckpointError
from audit.hasher import EMPTY_ROOT, HASH_SIZE
from audit.reader import AuditReader, StoredCheckpoint
from audit.tree import CompactRange

__all__ = ["AuditVerificationError", "VerifyReport", "verify_log"]

_LEAF_PREFIX = b"\x00"


@dataclass(frozen=True)
class VerifyReport:
    """An intact log: how much was checked, and how much no checkpoint covers yet."""

    entries: int
    checkpoints: int
    uncovered_tail: int
    """Entries after the latest checkpoint: chained, but not yet signed for."""
    root: bytes
    elapsed_s: float

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.elapsed_s if self.elapsed_s > 0 else float("inf")


@dataclass(frozen=True)
class _Problem:
    seq: int
    reason: str


@dataclass(frozen=True)
class _Break:
    """Entry `seq` does not link to its predecessor; who is to blame waits on the next row."""

    seq: int
    leaf: bytes  # entry seq's own leaf hash, to test its link to the next entry
    recorded: bytes  # the prev entry seq records
    computed: bytes  # the leaf hash of entry seq-1 as recomputed

    def blame(self, *, linked: bool, vouched: int) -> _Problem:
        # Entry seq-1 is to blame only if entry seq is otherwise in place (it links to its
        # successor, or has none) and no checkpoint vouches for seq-1.
        if linked and self.seq - 1 > vouched:
            return _Problem(
                self.seq - 1,
                f"entry {self.seq - 1} does not hash to the prev recorded by entry "
                f"{self.seq}: got {self.computed.hex()}, want {self.recorded.hex()}",
            )
        return _Problem(
            self.seq,
            f"entry {self.seq} does not follow entry {self.seq - 1}: "
            f"prev got {self.recorded.hex()}, want {self.computed.hex()}",
        )


def verify_log(
    reader: AuditReader,
    public_key: Ed25519PublicKey,
    *,
    origin: str,
    key_name: str,
    clock: Callable[[], float] = time.perf_counter,
) -> VerifyReport:
    """Check the whole stored log; raise `AuditVerificationError` naming the first bad seq."""
    started = clock()
    # Checkpoints first: entries read afterwards can only be more, never fewer.
    stored = reader.checkpoints()
    signed, checkpoint_problem = _open_checkpoints(stored, public_key, origin, key_name)
    count, tree, walk_problem = _walk(reader.iter_rows(), signed)
    problems = [p for p in (checkpoint_problem, walk_problem) if p is not None]
    if walk_problem is None:
        beyond = [size for size, _ in signed if size > count]
        if beyond:
            problems.append(
                _Problem(
                    count + 1,
                    f"checkpoint at size {beyond[0]} claims more entries than the log "
                    f"holds: got {count}, want {beyond[0]}",
                )
            )
    if problems:
        first = min(problems, key=lambda p: p.seq)
        raise AuditVerificationError(first.seq, first.reason)
    latest = signed[-1][0] if signed else 0
    return VerifyReport(
        entries=count,
        checkpoints=len(signed),
        uncovered_tail=count - latest,
        root=tree.root(),
        elapsed_s=clock() - started,
    )


def _open_checkpoints(
    stored: list[StoredCheckpoint],
    public_key: Ed25519PublicKey,
    origin: str,
    key_name: str,
) -> tuple[list[tuple[int, bytes]], _Problem | None]:
    """The checkpoints that verify, smallest first, up to the first one that does not."""
    signed: list[tuple[int, bytes]] = []
    for row in stored:
        good = signed[-1][0] if signed else 0
        try:
            cp = open_checkpoint(row.note, key_name, public_key, origin)
        except CheckpointError as exc:
            return signed, _Problem(good + 1, f"checkpoint at size {row.size}: {exc.detail}")
        if cp.size != row.size or cp.root != row.root:
            return signed, _Problem(
                good + 1,
                f"checkpoint row at size {row.size} disagrees with its signed note: "
                f"got size {row.size} root {row.root.hex()}, "
                f"want size {cp.size} root {cp.root.hex()}",
            )
        if cp.size == 0 and cp.root != EMPTY_ROOT:
            return signed, _Problem(1, f"checkpoint at size 0 has root {cp.root.hex()}")
        signed.append((cp.size, cp.root))
    return signed, None


def _walk(
    entries: Iterable[tuple[int, bytes, bytes]], signed: list[tuple[int, bytes]]
) -> tuple[int, CompactRange, _Problem | None]:
    """Stream the entries once: sequence, chain, and roots at the signed sizes.

    Returns the number of entries walked, the tree, and the first problem (if any).
    """
    tree = CompactRange()
    append = tree.append
    targets = iter([(size, root) for size, root in signed if size > 0])
    target_size, target_root = next(targets, (0, b""))
    vouched = 0  # size of the last checkpoint whose root was recomputed and matched
    expected, last_leaf, last_prev = 1, GENESIS_PREV, b""
    broken: _Break | None = None  # a broken link, waiting for the next row to assign blame
    mismatch: _Problem | None = None  # a root mismatch, waiting to see if a link explains it
    mismatch_size = 0

    def settle(found: _Problem) -> _Problem:
        # A broken link at or before the mismatched checkpoint explains the mismatch.
        if mismatch is not None and found.seq > mismatch_size:
            return mismatch
        return found

    sha, leaf_prefix = sha256, _LEAF_PREFIX  # locals: this loop runs once per entry
    for seq, prev, body in entries:
        leaf = sha(leaf_prefix + seq.to_bytes(SEQ_SIZE, "big") + prev + body).digest()
        if seq != expected:
            if broken is not None:
                return tree.size, tree, settle(broken.blame(linked=False, vouched=vouched))
            if seq > expected:
                found = _Problem(expected, f"entry {expected} is missing: got seq {seq}")
            else:
                found = _Problem(seq, f"unexpected entry seq {seq}: want {expected}")
            return tree.size, tree, settle(found)
        if broken is not None:
            blamed = broken.blame(linked=prev == broken.leaf, vouched=vouched)
            return tree.size, tree, settle(blamed)
        if prev != last_leaf:
            if len(prev) != HASH_SIZE:
                found = _Problem(seq, f"entry {seq} has a {len(prev)}-byte prev, want 32")
                return tree.size, tree, settle(found)
            if seq > 1 and prev == last_prev:
                found = _Problem(
                    seq - 1,
                    f"entry {seq - 1} was inserted: entries {seq - 1} and {seq} both "
                    f"record prev {prev.hex()}",
                )
                return tree.size, tree, settle(found)
            broken = _Break(seq, leaf, prev, last_leaf)
        elif mismatch is not None:
            return tree.size, tree, mismatch  # links hold: the chain was rewritten to match
        append(leaf)
        if seq == target_size:
            root = tree.root()
            if root == target_root:
                vouched = seq
            else:
                mismatch_size = seq
                mismatch = _Problem(
                    vouched + 1,
                    f"checkpoint at size {seq} does not match the entries: "
                    f"root got {root.hex()}, want {target_root.hex()}",
                )
            target_size, target_root = next(targets, (0, b""))
        last_prev, last_leaf = prev, leaf
        expected += 1
    if broken is not None:
        return tree.size, tree, settle(broken.blame(linked=True, vouched=vouched))
    return tree.size, tree, mismatch
