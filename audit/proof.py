"""RFC 9162 Merkle proofs over the audit log: inclusion (§2.1.3) and consistency (§2.1.4).

An **inclusion proof** shows that the leaf at `index` is in the tree of `size` leaves
with a given root: the hashes of the sibling subtrees on the leaf's path to the root,
bottom up. A **consistency proof** shows that the tree of `size1` leaves is a prefix of
the tree of `size2` leaves: the subtree hashes that let a verifier compute both roots.
Building follows the RFC's recursive definitions (PATH, SUBPROOF); verifying follows its
step-by-step algorithms, after checking the proof's length against the one the sizes
dictate, so a proof with a missing or extra node is refused with both numbers. Every
failure is a `ProofError` naming what disagrees ("got X, want Y"; both roots when a
root does not match).

`MerkleLevels` holds the leaf hashes and every complete node above them in memory (64
bytes per leaf: a million entries take 64 MB), so a proof takes O(log n) node lookups
instead of a pass over the log. It grows from the log (`extend`) as the log grows;
the gateway keeps one and serves proofs from it (`gateway/dpo/proofs.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.errors import ProofError
from audit.hasher import EMPTY_ROOT, HASH_SIZE, node_hash
from audit.reader import AuditReader

__all__ = [
    "MerkleLevels",
    "ProofError",
    "consistency_proof",
    "consistency_proof_length",
    "inclusion_proof",
    "inclusion_proof_length",
    "verify_consistency",
    "verify_inclusion",
]


def _split(n: int) -> int:
    """The largest power of two smaller than `n` (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf `index` in a tree of `size` holds."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    length, lo, hi = 0, 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        length += 1
        if index < lo + k:
            hi = lo + k
        else:
            lo += k
    return length


def consistency_proof_length(size1: int, size2: int) -> int:
    """How many hashes the consistency proof from `size1` to `size2` holds."""
    _check_sizes(size1, size2)
    if size1 == size2:
        return 0
    length, m, n, complete = 0, size1, size2, True
    while m != n:
        k = _split(n)
        length += 1
        if m <= k:
            n = k
        else:
            m, n, complete = m - k, n - k, False
    return length if complete else length + 1


def _check_sizes(size1: int, size2: int) -> None:
    if size1 <= 0:
        raise ProofError(
            f"a consistency proof starts from a tree of at least 1 entry: got size {size1}"
        )
    if size2 < size1:
        raise ProofError(
            f"a consistency proof goes from a smaller tree to a larger one: got sizes "
            f"{size1} to {size2}"
        )


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` with `root`
    (RFC 9162 §2.1.3.2); raise `ProofError` naming what disagrees."""
    want = inclusion_proof_length(index, size)
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
    _check_nodes("inclusion", proof, want, f"leaf {index} in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:  # cannot happen after the length check; the RFC's step, kept
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof ends below the root")
    if r != root:
        raise ProofError(
            f"inclusion of leaf {index} in the tree of size {size}: root got {r.hex()}, "
            f"want {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size1` with `root1` is a prefix of the tree of `size2`
    with `root2` (RFC 9162 §2.1.4.2); raise `ProofError` naming what disagrees."""
    want = consistency_proof_length(size1, size2)
    _check_nodes("consistency", proof, want, f"sizes {size1} to {size2}")
    if size1 == size2:
        if root1 != root2:
            raise ProofError(
                f"two roots for the tree of size {size1}: got {root2.hex()}, want {root1.hex()}"
            )
        return
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # cannot happen after the length check; the RFC's step, kept
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof ends below the root")
    if fr != root1:
        raise ProofError(
            f"consistency from size {size1} to {size2}: the proof gives root {fr.hex()} "
            f"for size {size1}, want {root1.hex()}"
        )
    if sr != root2:
        raise ProofError(
            f"consistency from size {size1} to {size2}: the proof gives root {sr.hex()} "
            f"for size {size2}, want {root2.hex()}"
        )


def _check_nodes(kind: str, proof: Sequence[bytes], want: int, of: str) -> None:
    if len(proof) != want:
        raise ProofError(f"{kind} proof of {of}: got {len(proof)} hashes, want {want}")
    for i, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise ProofError(
                f"{kind} proof of {of}: hash {i} is {len(node)} bytes, want {HASH_SIZE}"
            )


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree over the first `size` leaf hashes."""
    return MerkleLevels.of(leaves[:size]).inclusion_proof(index, size)


def consistency_proof(leaves: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """The consistency proof from the tree over the first `size1` leaf hashes to the one
    over the first `size2`."""
    return MerkleLevels.of(leaves[:size2]).consistency_proof(size1, size2)


class MerkleLevels:
    """Leaf hashes and every complete node above them, grown leaf by leaf.

    Level 0 holds the leaf hashes; level h holds the root of each complete subtree of
    2**h leaves, left to right. Each level is one bytearray of 32-byte hashes (a Python
    object per hash would triple the memory). Any tree size up to `size` can be proved
    from them: an incomplete subtree's hash folds O(log n) complete ones.

    Thread-safe: `extend` and every read take one lock, so a proof is always computed
    from levels that are not being extended halfway.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, leaves: Iterable[bytes]) -> MerkleLevels:
        """Levels over these leaf hashes."""
        levels = cls()
        for leaf in leaves:
            levels._append(leaf)
        return levels

    @property
    def size(self) -> int:
        """How many leaves the levels hold."""
        return self._size

    @property
    def memory_bytes(self) -> int:
        """The bytes the hashes take (about 64 per leaf)."""
        with self._lock:
            return sum(len(level) for level in self._levels)

    def extend(self, reader: AuditReader, up_to: int) -> int:
        """Read the log's entries after `size` up to seq `up_to` and add their leaves;
        return the new size. Each entry must follow the one before (its seq, its `prev`),
        else `ProofError`, and nothing after it is added: the log changed under the
        levels (build new ones), or is not intact (`doelpoort audit verify`)."""
        with self._lock:
            if up_to <= self._size:
                return self._size
            last = self._leaf(self._size - 1) if self._size else GENESIS_PREV
            rows = reader.iter_rows(self._size + 1)
            try:
                for seq, prev, body in rows:
                    if seq != self._size + 1:
                        raise ProofError(f"entry seq: got {seq}, want {self._size + 1}")
                    if prev != last:
                        raise ProofError(
                            f"entry {seq} does not follow entry {seq - 1}: prev got "
                            f"{prev.hex()}, want {last.hex()}"
                        )
                    last = entry_leaf_hash(seq, prev, body)
                    self._append(last)
                    if seq == up_to:
                        break
            finally:
                close = getattr(rows, "close", None)  # stop the backend's stream early
                if close is not None:
                    close()
            if self._size < up_to:
                raise ProofError(
                    f"the log holds {self._size} entries, fewer than the {up_to} asked for"
                )
            return self._size

    def root(self, size: int) -> bytes:
        """The root hash of the tree over the first `size` leaves."""
        with self._lock:
            self._check_size(size)
            return self._range_hash(0, size) if size else EMPTY_ROOT

    def leaf(self, index: int) -> bytes:
        """The hash of leaf `index` (entry seq index + 1)."""
        with self._lock:
            if not 0 <= index < self._size:
                raise ProofError(f"leaf index {index} is not in a tree of size {self._size}")
            return self._leaf(index)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size]): the sibling hashes, bottom up."""
        with self._lock:
            self._check_size(size)
            inclusion_proof_length(index, size)  # checks the index
            path: list[bytes] = []
            lo, hi = 0, size
            while hi - lo > 1:  # top down; the proof lists the same hashes bottom up
                k = _split(hi - lo)
                if index < lo + k:
                    path.append(self._range_hash(lo + k, hi))
                    hi = lo + k
                else:
                    path.append(self._range_hash(lo, lo + k))
                    lo += k
            path.reverse()
            return path

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2])."""
        with self._lock:
            _check_sizes(size1, size2)
            self._check_size(size2)
            proof: list[bytes] = []
            m, lo, hi, complete = size1, 0, size2, True
            while m != hi - lo:  # top down, as SUBPROOF recurses; reversed at the end
                k = _split(hi - lo)
                if m <= k:
                    proof.append(self._range_hash(lo + k, hi))
                    hi = lo + k
                else:
                    proof.append(self._range_hash(lo, lo + k))
                    m, lo, complete = m - k, lo + k, False
            if not complete:
                proof.append(self._range_hash(lo, hi))
            proof.reverse()
            return proof

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ProofError(f"tree size {size} is beyond the {self._size} leaves held")

    def _append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        levels = self._levels
        level = 0
        levels[0] += leaf
        count = self._size + 1
        # Each completed pair at a level completes a node one level up.
        while count & 1 == 0:
            row = levels[level]
            parent = node_hash(bytes(row[-2 * HASH_SIZE : -HASH_SIZE]), bytes(row[-HASH_SIZE:]))
            level += 1
            if len(levels) == level:
                levels.append(bytearray())
            levels[level] += parent
            count >>= 1
        self._size += 1

    def _leaf(self, index: int) -> bytes:
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _node(self, level: int, index: int) -> bytes:
        row = self._levels[level]
        return bytes(row[index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a subtree of RFC 9162's recursion (lo a multiple of the
        power of two enclosing hi - lo): the complete subtrees covering it, largest
        first, folded right to left."""
        parts: list[bytes] = []
        while lo < hi:
            height = (hi - lo).bit_length() - 1  # the largest complete subtree that fits
            parts.append(self._node(height, lo >> height))
            lo += 1 << height
        root = parts[-1]
        for left in reversed(parts[:-1]):
            root = node_hash(left, root)
        return root
