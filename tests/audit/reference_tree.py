"""The Merkle tree hash straight from RFC 9162 §2.1.1: deliberately simple, so the
compact range (audit/tree.py) can be compared against it."""

from __future__ import annotations

from collections.abc import Sequence

from audit.hasher import EMPTY_ROOT, node_hash


def reference_root(leaves: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of the given leaf hashes, straight from RFC 9162 §2.1.1.

    Takes leaf *hashes* (not leaf data), splits at the largest power of two smaller than
    n, and recurses.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))
