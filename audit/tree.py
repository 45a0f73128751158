"""The Merkle tree over the audit entries, as a compact range.

`CompactRange` holds, for a tree of size n, the roots of the perfect subtrees that make
up the range [0, n) — one per set bit of n, largest first — so appending a leaf merges at
most log2(n) of them (amortised one) and the root folds them right to left. It is what
the store keeps in memory and what verify recomputes; the tests hold it to a plain
reference tree (tests/audit/reference_tree.py).
"""

from __future__ import annotations

from hashlib import sha256

from audit.hasher import EMPTY_ROOT, NODE_PREFIX, node_hash


class CompactRange:
    """The perfect-subtree roots covering leaves [0, size) of a Merkle tree."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash; merges equal-sized subtrees (amortised O(1))."""
        hashes = self._hashes
        hashes.append(leaf)
        n = self._size
        # Each trailing 1 bit of the old size is a subtree as large as the one just
        # completed: merge them pairwise. (node_hash inlined: this is verify's hot loop.)
        while n & 1:
            right = hashes.pop()
            hashes[-1] = sha256(NODE_PREFIX + hashes[-1] + right).digest()
            n >>= 1
        self._size += 1

    def root(self) -> bytes:
        """The tree's root hash at the current size, in O(log n)."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        root = hashes[-1]
        for left in reversed(hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> CompactRange:
        """An independent copy (O(log n)), so a failed write can be rolled back."""
        clone = CompactRange()
        clone._hashes = list(self._hashes)
        clone._size = self._size
        return clone
