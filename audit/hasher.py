"""RFC 9162 §2.1.1 hashing for the audit log's Merkle tree.

A leaf is hashed with a 0x00 prefix and an interior node with 0x01, so a leaf can never be
passed off as a node (second-preimage resistance).
"""

from __future__ import annotations

from hashlib import sha256

HASH_SIZE = 32
"""Length in bytes of every hash in the log (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string."""

LEAF_PREFIX = b"\x00"
"""Prefix of a leaf's hash input."""

NODE_PREFIX = b"\x01"
"""Prefix of an interior node's hash input."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return sha256(NODE_PREFIX + left + right).digest()
