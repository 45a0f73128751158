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

A trusted checkpoint is as fresh as the DPO's last copy; the DPO's **witness**
(`audit.witness`) cosigns checkpoints as the log grows, and keeps the latest. With it
(`WitnessCheck`), every stored cosignature of the witness must verify over the tree the
entries give at its size — a log rewritten and re-signed with the log key fails there,
at the first entry after the largest size the witness still vouches for — and there
must be at least one. Its state, when given, counts like a trusted checkpoint: a log
rolled back to a copy made before the witness's latest cosignature (but after the DPO's
trusted checkpoint, which cannot tell) fails at the first missing entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import Checkpoint, open_checkpoint
from audit.cosignature import cosigner_key_id, parse_cosignature, verify_cosignature
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import AuditVerificationError, CheckpointError, ProofError
from audit.hasher import EMPTY_ROOT, HASH_SIZE
from audit.reader import AuditReader, StoredCheckpoint
from audit.tree import CompactRange
from audit.witness import LogKey, open_state

__all__ = ["AuditVerificationError", "VerifyReport", "WitnessCheck", "verify_log"]


@dataclass(frozen=True)
class VerifyReport:
    """An intact log: how much was checked (every entry under a signed checkpoint)."""

    entries: int
    checkpoints: int
    root: bytes
    elapsed_s: float
    trusted_size: int | None = None
    """Size of the DPO's trusted checkpoint the log was checked against, if one was given."""
    witnessed_size: int | None = None
    """With a witness: the largest size whose cosignature by it matched the entries."""

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
    witness: WitnessCheck | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> VerifyReport:
    """Check the whole stored log; raise `AuditVerificationError` naming the first bad seq.

    `trusted` is a signed checkpoint note the DPO kept from an earlier run (outside the
    gateway host): the log must still hold at least its size, with its root at that size.
    Entries after the latest signed checkpoint fail at the first of them (seq 1 when no
    checkpoint covers any). Raises `CheckpointError` when `trusted` is not a checkpoint of
    this origin signed by `public_key`.

    `witness` adds the DPO's witness's evidence (`WitnessCheck`): its stored cosignatures
    must match the entries, and its state, when given, holds like a trusted checkpoint.
    Raises `ProofError` when the state does not open with the log key and witness key.
    """
    pinned = _open_trusted(trusted, public_key, origin)
    witnessed = _open_witness_state(witness, public_key, origin)
    cosigned = _witness_cosignatures(reader, witness)
    started = clock()
    # One snapshot: checkpoints and entries as they stood at one moment, so that what a
    # running gateway commits meanwhile (entries with their checkpoint) is in both or
    # in neither.
    with reader.snapshot() as log:
        stored = log.checkpoints()
        signed, checkpoint_problem = _open_checkpoints(stored, public_key, origin)
        pinned_sizes = [cp.size for cp in (pinned, witnessed) if cp is not None]
        pinned_sizes.extend(size for size, _ in cosigned)
        walk = _walk(log.entries(1), signed, pinned_sizes)
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
    pinned_holds = False  # the trusted checkpoint matches the entries
    for kept, what in ((pinned, TRUSTED), (witnessed, WITNESSED)):
        if kept is None:
            continue
        found = _check_pinned(kept, walk, what)
        if kept is pinned:
            pinned_holds = not found
        problems.extend(found)
        if not found and walk.problem is None and latest < kept.size:
            # The entries match a checkpoint taken from this log's stored ones (by the
            # DPO, or the witness from the gateway): one it held is gone.
            problems.append(
                _Problem(
                    latest + 1,
                    f"the log's signed checkpoints end at size {latest}, below {what} at "
                    f"size {kept.size}: a checkpoint it held was removed",
                )
            )
    witnessed_size = None
    if witness is not None:
        # A trusted checkpoint that holds vouches for the entries below it, too.
        floor = pinned.size if pinned is not None and pinned_holds else 0
        cosigned_problems, witnessed_size = _check_cosignatures(
            witness, cosigned, walk, origin, floor
        )
        problems.extend(cosigned_problems)
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
        witnessed_size=witnessed_size,
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


TRUSTED = "the trusted checkpoint"
WITNESSED = "the witness's latest cosigned checkpoint"


def _check_pinned(pinned: Checkpoint, walk: _Walk, what: str = TRUSTED) -> list[_Problem]:
    """What a checkpoint kept outside the gateway (`what`: the DPO's trusted one, or the
    witness's latest) says about the walked log (see the module docstring)."""
    if pinned.size == 0:
        if pinned.root != EMPTY_ROOT:
            return [_Problem(1, f"{what} at size 0 has root {pinned.root.hex()}")]
        return []
    root = walk.pinned_roots.get(pinned.size)
    if root is None:  # the walk never reached the pinned size
        if walk.problem is not None:
            return []  # it stopped at an earlier problem, which is reported
        return [
            _Problem(
                walk.count + 1,
                f"the log holds {walk.count} entries, fewer than {what} at size "
                f"{pinned.size}: entries {walk.count + 1} to {pinned.size} were removed",
            )
        ]
    if root == pinned.root:
        return []
    forks = [size for size in walk.vouched if size >= pinned.size]
    if forks:
        return [
            _Problem(
                1,
                f"{what} at size {pinned.size} does not match the entries: "
                f"root got {root.hex()}, want {pinned.root.hex()}; and the log "
                f"key also signed the rewritten log (checkpoint at size {forks[0]}), so no "
                "stored checkpoint can be relied on: someone else holds the log key, or the "
                "gateway kept writing to an older copy of its log",
            )
        ]
    agrees = max((size for size in walk.vouched if size < pinned.size), default=0)
    return [
        _Problem(
            agrees + 1,
            f"{what} at size {pinned.size} does not match the entries: "
            f"root got {root.hex()}, want {pinned.root.hex()}",
        )
    ]


@dataclass(frozen=True)
class WitnessCheck:
    """The DPO's witness, as `audit verify --witness` checks the log against it."""

    name: str
    public_key: Ed25519PublicKey
    state: str | None = None
    """The witness's state: the note of the latest checkpoint it cosigned, if given."""


def _open_witness_state(
    witness: WitnessCheck | None, public_key: Ed25519PublicKey, origin: str
) -> Checkpoint | None:
    if witness is None or witness.state is None:
        return None
    log = LogKey(origin, public_key)
    return open_state(witness.state, log, witness.name, witness.public_key).checkpoint


def _witness_cosignatures(
    reader: AuditReader, witness: WitnessCheck | None
) -> list[tuple[int, str]]:
    """(size, line) of the witness's stored cosignatures (its name and key ID; others
    are ignored, as signed-note asks). Read before the snapshot: every size cosigned
    then has its checkpoint and entries in it."""
    if witness is None:
        return []
    want_id = cosigner_key_id(witness.name, witness.public_key)
    return sorted(
        (row.size, row.line)
        for row in reader.cosignatures()
        if row.key_name == witness.name and row.key_id == want_id
    )


def _check_cosignatures(
    witness: WitnessCheck,
    cosigned: list[tuple[int, str]],
    walk: _Walk,
    origin: str,
    floor: int = 0,
) -> tuple[list[_Problem], int | None]:
    """Every stored cosignature of the witness must verify over the log's own tree at
    its size (the witness saw these entries); and there must be one. A mismatch is
    blamed on the first entry after the largest size below it that the witness (or a
    trusted checkpoint: `floor`) still vouches for."""
    if not cosigned:
        if walk.count == 0:
            return [], None  # an empty log: nothing to vouch for
        return [
            _Problem(
                1,
                f"the log stores no cosignature of witness {witness.name}: it vouches for "
                "none of the entries (has it run against this gateway, and does the "
                "gateway accept its key? or were its cosignatures removed?)",
            )
        ], None
    verified: list[int] = []
    failed: list[tuple[int, str]] = []  # (size, reason): the entries differ at that size
    missing: list[_Problem] = []  # sizes beyond the log's end
    for size, line in cosigned:
        root = walk.pinned_roots.get(size)
        if root is None:
            if walk.problem is None:  # else the walk stopped early, at a reported problem
                missing.append(
                    _Problem(
                        walk.count + 1,
                        f"witness {witness.name} cosigned the checkpoint at size {size}, "
                        f"but the log holds only {walk.count} entries: entries "
                        f"{walk.count + 1} to {size} were removed (an older copy of the log?)",
                    )
                )
            continue
        text = Checkpoint(origin, size, root).text()
        try:
            verify_cosignature(text, parse_cosignature(line), witness.name, witness.public_key)
        except ProofError as exc:
            failed.append(
                (
                    size,
                    f"witness {witness.name}'s cosignature at size {size} does not match the "
                    f"entries (root {root.hex()}): the witness saw another log at that size "
                    f"({exc.detail})",
                )
            )
            continue
        verified.append(size)
    problems = missing[:1]
    for size, reason in failed:
        # The first entry after the largest size the witness still vouches for below it.
        below = max((v for v in [*verified, floor] if v < size), default=0)
        problems.append(_Problem(below + 1, reason))
    return problems, (max(verified) if verified else None)


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
    pinned_roots: dict[int, bytes]
    """The roots recomputed at the pinned sizes (a trusted checkpoint's, the witness's)
    the walk got to."""


def _walk(
    entries: Iterable[tuple[int, bytes, bytes]],
    signed: list[tuple[int, bytes]],
    pinned: Collection[int] = (),
) -> _Walk:
    """Stream the entries once: sequence, chain, and roots at the signed sizes.

    Also records the roots at the `pinned` sizes for the caller to compare.
    """
    tree = CompactRange()
    append = tree.append
    stored_roots = dict(signed)
    sizes = {size for size, _ in signed if size > 0}
    pinned_sizes = {size for size in pinned if size > 0}
    sizes |= pinned_sizes
    targets = iter(sorted(sizes))
    target_size = next(targets, 0)
    vouched_sizes: list[int] = []
    pinned_roots: dict[int, bytes] = {}
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
        return _Walk(tree.size, tree, problem, vouched_sizes, pinned_roots)

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
            if seq in pinned_sizes:
                pinned_roots[seq] = root
            target_root = stored_roots.get(seq)
            if target_root is None:
                pass  # only a pinned size
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
