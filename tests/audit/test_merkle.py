"""RFC 9162 hashing and the compact range, against published vectors and a reference tree.

Vectors: transparency-dev/merkle testonly/constants.go (the RFC 6962 test data).
"""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.hasher import EMPTY_ROOT, leaf_hash, node_hash
from audit.tree import CompactRange
from tests.audit.reference_tree import reference_root

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# Root hash of the tree over the first n leaf inputs, n = 0..8.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# Leaf hashes of the leaf inputs (level 0 of the test tree).
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == ROOTS[0] == sha256(b"").digest()


def test_leaf_hash_of_empty_string() -> None:
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_leaf_hashes_match_vectors() -> None:
    assert [leaf_hash(data) for data in LEAF_INPUTS] == LEAF_HASHES


def test_node_hash_prefixes_one() -> None:
    left, right = LEAF_HASHES[0], LEAF_HASHES[1]
    assert node_hash(left, right) == sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) == ROOTS[2]
    assert node_hash(left, right) != node_hash(right, left)


def test_leaf_and_node_domains_differ() -> None:
    left, right = LEAF_HASHES[0], LEAF_HASHES[1]
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_reference_root_matches_vectors(size: int) -> None:
    assert reference_root(LEAF_HASHES[:size]) == ROOTS[size]


def test_compact_range_matches_vectors_at_every_size() -> None:
    tree = CompactRange()
    assert (tree.size, tree.root()) == (0, ROOTS[0])
    for size, leaf in enumerate(LEAF_HASHES, start=1):
        tree.append(leaf)
        assert (tree.size, tree.root()) == (size, ROOTS[size])


def test_compact_range_matches_reference_for_every_prefix() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    tree = CompactRange()
    for size, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert tree.root() == reference_root(leaves[:size]), f"size {size}"


def test_copy_is_independent() -> None:
    tree = CompactRange()
    for leaf in LEAF_HASHES[:5]:
        tree.append(leaf)
    clone = tree.copy()
    clone.append(LEAF_HASHES[5])
    assert (tree.size, tree.root()) == (5, ROOTS[5])
    assert (clone.size, clone.root()) == (6, ROOTS[6])


@given(st.lists(st.binary(max_size=64), max_size=200))
def test_compact_range_equals_reference_root(data: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in data]
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    assert tree.size == len(leaves)
    assert tree.root() == reference_root(leaves)
