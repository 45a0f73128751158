"""Verify a stored audit log: the chain, the Merkle tree and every signed checkpoint.

Verification reads one snapshot of the log (its checkpoints and entries as they stood at
one moment, however the gateway goes on appending) and streams the entries once, in seq
order, recomputing each leaf hash from the stored bytes (no JSON is parsed). Three kinds
of evidence are checked:

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

Coverage: entries that no signed checkpoint covers are only chained, and whoever can
write the file can rewrite a chain. The gateway commits every entry together with the
checkpoint that covers it, so a log never holds such entries unless someone else put
them there or removed their checkpoints: the first entry after the latest checkpoint
is the first bad seq (seq 1 when no checkpoint covers any entry).

Stored checkpoints are signed by a key that lives on the gateway host; a **trusted
checkpoint** is one the DPO kept elsewhere. The log must hold at least its size (else the
first missing seq, size + 1, is bad: the tail was truncated) and have its root at that
size. When the root differs, the first bad seq is the first entry after the largest
stored checkpoint below the trusted size that matches the entries (1 if there is none).
When the entries do match, the log must still store a signed checkpoint at least that
large, since the DPO took the trusted one from there; else one was removed, and the first
bad seq is the first entry after the latest stored one.
If a stored checkpoint at or above the trusted size also matches the entries, the log key
signed two different histories (someone else holds it, or the gateway kept writing to a
restored older copy of its log): no stored signature can be relied on, and the first bad
seq is 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import Checkpoint, open_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditVerificationError, CheckpointError
from audit.hasher import EMPTY_ROOT, HASH_SIZE
from audit.reader import AuditReader, StoredCheckpoint
from audit.tree import CompactRange

__all__ = ["AuditVerificationError", "VerifyReport", "verify_log"]


@dataclass(frozen=True)
class VerifyReport:
    """An intact log: how much was checked (every entry under a signed checkpoint)."""

    entries: int
    checkpoints: int
    root: bytes
    elapsed_s: float
    trusted_size: int | None = None
    """Size of the DPO's trusted checkpoint the log was checked against, if one was given."""

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
    trusted: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> VerifyReport:
    """Check the whole stored log; raise `AuditVerificationError` naming the first bad seq.

    `trusted` is a signed checkpoint note the DPO kept from an earlier run (outside the
    gateway host): the log must still hold at least its size, with its root at that size.
    Entries after the latest signed checkpoint fail at the first of them (seq 1 when no
    checkpoint covers any). Raises `CheckpointError` when `trusted` is not a checkpoint of
    this origin signed by `public_key`.
    """
    pinned = _open_trusted(trusted, public_key, origin)
    started = clock()
    # One snapshot: checkpoints and entries as they stood at one moment, so that what a
    # running gateway commits meanwhile (entries with their checkpoint) is in both or
    # in neither.
    with reader.snapshot() as log:
        stored = log.checkpoints()
        signed, checkpoint_problem = _open_checkpoints(stored, public_key, origin)
        walk = _walk(log.entries(1), signed, pinned.size if pinned else 0)
    count = walk.count
    problems = [p for p in (checkpoint_problem, walk.problem) if p is not None]
    if walk.problem is None:
        beyond = [size for size, _ in signed if size > count]
        if beyond:
            problems.append(
                _Problem(
                    count + 1,
                    f"checkpoint at size {beyond[0]} claims more entries than the log "
                    f"holds: got {count}, want {beyond[0]}",
                )
            )
    latest = signed[-1][0] if signed else 0
    if pinned is not None:
        problems.extend(_check_trusted(pinned, walk))
        if not problems and latest < pinned.size:
            # The entries match the trusted checkpoint, which the DPO took from this
            # log's stored ones: one it held is gone.
            problems.append(
                _Problem(
                    latest + 1,
                    f"the log's signed checkpoints end at size {latest}, below the trusted "
                    f"checkpoint at size {pinned.size}: a checkpoint it held was removed",
                )
            )
    if count > latest and checkpoint_problem is None:
        problems.append(_uncovered(latest, count if walk.problem is None else None))
    if problems:
        problems.sort(key=lambda p: p.seq)
        first, others = problems[0], problems[1:]
        reason = first.reason
        if others:
            reason += "; also: " + "; ".join(p.reason for p in others)
        raise AuditVerificationError(first.seq, reason)
    return VerifyReport(
        entries=count,
        checkpoints=len(signed),
        root=walk.tree.root(),
        elapsed_s=clock() - started,
        trusted_size=pinned.size if pinned else None,
    )


def _uncovered(latest: int, count: int | None) -> _Problem:
    """Entries after the latest signed checkpoint (`count` of them all, None when the walk
    stopped early). The gateway never commits one: they were added, or the checkpoints
    that covered them removed, by someone else."""
    why = (
        "the gateway commits every entry with its checkpoint, so entries were added or "
        "checkpoints removed by someone else (or an earlier version of Doelpoort stopped "
        "before it signed them)"
    )
    if latest == 0:
        entries = "any of the entries" if count is None else f"any of the {count} entries"
        return _Problem(1, f"no signed checkpoint covers {entries}: {why}")
    tail = "the entries" if count is None else f"{count - latest} entries"
    return _Problem(
        latest + 1,
        f"{tail} after the latest checkpoint (size {latest}) are not under any signed "
        f"checkpoint: {why}",
    )


def _open_trusted(
    trusted: str | None, public_key: Ed25519PublicKey, origin: str
) -> Checkpoint | None:
    if trusted is None:
        return None
    try:
        return open_checkpoint(trusted, origin, public_key, origin)
    except CheckpointError as exc:
        raise CheckpointError(f"the trusted checkpoint: {exc.detail}") from exc


def _check_trusted(pinned: Checkpoint, walk: _Walk) -> list[_Problem]:
    """What the trusted checkpoint says about the walked log (see the module docstring)."""
    if pinned.size == 0:
        if pinned.root != EMPTY_ROOT:
            return [_Problem(1, f"trusted checkpoint at size 0 has root {pinned.root.hex()}")]
        return []
    if walk.trusted_root is None:  # the walk never reached the trusted size
        if walk.problem is not None:
            return []  # it stopped at an earlier problem, which is reported
        return [
            _Problem(
                walk.count + 1,
                f"the log holds {walk.count} entries, fewer than the trusted checkpoint at "
                f"size {pinned.size}: entries {walk.count + 1} to {pinned.size} were removed",
            )
        ]
    if walk.trusted_root == pinned.root:
        return []
    forks = [size for size in walk.vouched if size >= pinned.size]
    if forks:
        return [
            _Problem(
                1,
                f"the trusted checkpoint at size {pinned.size} does not match the entries: "
                f"root got {walk.trusted_root.hex()}, want {pinned.root.hex()}; and the log "
                f"key also signed the rewritten log (checkpoint at size {forks[0]}), so no "
                "stored checkpoint can be relied on: someone else holds the log key, or the "
                "gateway kept writing to an older copy of its log",
            )
        ]
    agrees = max((size for size in walk.vouched if size < pinned.size), default=0)
    return [
        _Problem(
            agrees + 1,
            f"the trusted checkpoint at size {pinned.size} does not match the entries: "
            f"root got {walk.trusted_root.hex()}, want {pinned.root.hex()}",
        )
    ]


def _open_checkpoints(
    stored: list[StoredCheckpoint],
    public_key: Ed25519PublicKey,
    origin: str,
) -> tuple[list[tuple[int, bytes]], _Problem | None]:
    """The checkpoints that verify, smallest first, up to the first one that does not."""
    signed: list[tuple[int, bytes]] = []
    for row in stored:
        good = signed[-1][0] if signed else 0
        try:
            cp = open_checkpoint(row.note, origin, public_key, origin)
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
        if signed and cp.size == good:
            # The table's key forbids this; a rebuilt table need not. Two signed roots
            # for one size cannot both describe these entries: the key signed two logs.
            if cp.root != signed[-1][1]:
                return signed, _Problem(
                    1,
                    f"two signed checkpoints at size {cp.size} disagree: root "
                    f"{signed[-1][1].hex()} and root {cp.root.hex()}",
                )
            continue
        signed.append((cp.size, cp.root))
    return signed, None


@dataclass
class _Walk:
    count: int
    """Entries walked: all of them, or up to the first problem."""
    tree: CompactRange
    problem: _Problem | None
    vouched: list[int]
    """Sizes of the stored checkpoints whose root was recomputed and matched."""
    trusted_root: bytes | None
    """The root recomputed at the trusted checkpoint's size, if the walk got that far."""


def _walk(
    entries: Iterable[tuple[int, bytes, bytes]],
    signed: list[tuple[int, bytes]],
    trusted_size: int = 0,
) -> _Walk:
    """Stream the entries once: sequence, chain, and roots at the signed sizes.

    Also records the root at `trusted_size` (when positive) for the caller to compare.
    """
    tree = CompactRange()
    append = tree.append
    stored_roots = dict(signed)
    sizes = {size for size, _ in signed if size > 0}
    if trusted_size > 0:
        sizes.add(trusted_size)
    targets = iter(sorted(sizes))
    target_size = next(targets, 0)
    vouched_sizes: list[int] = []
    trusted_root: bytes | None = None
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

    def done(problem: _Problem | None) -> _Walk:
        return _Walk(tree.size, tree, problem, vouched_sizes, trusted_root)

    hash_entry = entry_leaf_hash  # a local: this loop runs once per entry
    for seq, prev, body in entries:
        leaf = hash_entry(seq, prev, body)
        if seq != expected:
            if broken is not None:
                return done(settle(broken.blame(linked=False, vouched=vouched)))
            if seq > expected:
                found = _Problem(expected, f"entry {expected} is missing: got seq {seq}")
            else:
                found = _Problem(seq, f"unexpected entry seq {seq}: want {expected}")
            return done(settle(found))
        if broken is not None:
            return done(settle(broken.blame(linked=prev == broken.leaf, vouched=vouched)))
        if prev != last_leaf:
            if len(prev) != HASH_SIZE:
                found = _Problem(seq, f"entry {seq} has a {len(prev)}-byte prev, want 32")
                return done(settle(found))
            if seq > 1 and prev == last_prev:
                found = _Problem(
                    seq - 1,
                    f"entry {seq - 1} was inserted: entries {seq - 1} and {seq} both "
                    f"record prev {prev.hex()}",
                )
                return done(settle(found))
            broken = _Break(seq, leaf, prev, last_leaf)
        elif mismatch is not None:
            return done(mismatch)  # links hold: the chain was rewritten to match
        append(leaf)
        if seq == target_size:
            root = tree.root()
            if seq == trusted_size:
                trusted_root = root
            target_root = stored_roots.get(seq)
            if target_root is None:
                pass  # only the trusted checkpoint is at this size
            elif root == target_root:
                vouched = seq
                vouched_sizes.append(seq)
            else:
                mismatch_size = seq
                mismatch = _Problem(
                    vouched + 1,
                    f"checkpoint at size {seq} does not match the entries: "
                    f"root got {root.hex()}, want {target_root.hex()}",
                )
            target_size = next(targets, 0)
        last_prev, last_leaf = prev, leaf
        expected += 1
    if broken is not None:
        return done(settle(broken.blame(linked=True, vouched=vouched)))
    return done(mismatch)
