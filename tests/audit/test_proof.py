"""RFC 9162 inclusion and consistency proofs: published vectors first, then every way a
proof can be wrong, then Hypothesis against the plain reference tree.

Vectors (tests/audit/testdata/, see the README there): transparency-dev/merkle's tree of
RFC 6962's test data with its expected proofs, and its verification probes.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit.entry import entry_leaf_hash
from audit.errors import ProofError
from audit.hasher import EMPTY_ROOT, leaf_hash, node_hash
from audit.proof import (
    MerkleLevels,
    consistency_proof,
    consistency_proof_length,
    inclusion_proof,
    inclusion_proof_length,
    verify_consistency,
    verify_inclusion,
)
from audit.reader import AuditReader
from tests.audit.audit_support import attack, write_log
from tests.audit.reference_tree import reference_root

TESTDATA = Path(__file__).parent / "testdata"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((TESTDATA / name).read_text(encoding="utf-8"))
    return document


TREE = _load("rfc6962-tree.json")
LEAVES = [bytes.fromhex(h) for h in TREE["leaf_hashes"]]
ROOTS = [bytes.fromhex(h) for h in TREE["roots"]]
INCLUSION_PROBES = _load("transparency-dev-inclusion-probes.json")["probes"]
CONSISTENCY_PROBES = _load("transparency-dev-consistency-probes.json")["probes"]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _nodes(proof: list[str] | None) -> list[bytes]:
    return [_b64(node) for node in proof or []]  # Go reads a null proof as an empty one


# -- the published vectors ------------------------------------------------------------


def test_the_vector_tree_is_the_rfc_6962_test_data() -> None:
    assert [leaf_hash(bytes.fromhex(h)) for h in TREE["leaves"]] == LEAVES
    levels = MerkleLevels.of(LEAVES)
    assert [levels.root(size) for size in range(9)] == ROOTS


@pytest.mark.parametrize("vector", TREE["inclusion"], ids=lambda v: f"{v['index']}@{v['size']}")
def test_inclusion_proofs_are_the_published_ones(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    proof = inclusion_proof(LEAVES, index, size)
    assert [node.hex() for node in proof] == vector["proof"]
    verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size])


@pytest.mark.parametrize("vector", TREE["consistency"], ids=lambda v: f"{v['size1']}-{v['size2']}")
def test_consistency_proofs_are_the_published_ones(vector: dict[str, Any]) -> None:
    size1, size2 = vector["size1"], vector["size2"]
    proof = consistency_proof(LEAVES, size1, size2)
    assert [node.hex() for node in proof] == vector["proof"]
    verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


@pytest.mark.parametrize("probe", INCLUSION_PROBES, ids=lambda p: p["file"])
def test_inclusion_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            probe["leafIdx"],
            probe["treeSize"],
            _b64(probe["leafHash"]),
            _nodes(probe["proof"]),
            _b64(probe["root"]),
        )

    if probe["wantErr"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


@pytest.mark.parametrize("probe", CONSISTENCY_PROBES, ids=lambda p: p["file"])
def test_consistency_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            probe["size1"],
            probe["size2"],
            _nodes(probe["proof"]),
            _b64(probe["root1"]),
            _b64(probe["root2"]),
        )

    if probe["wantErr"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


def test_the_probes_hold_both_kinds() -> None:
    for probes in (INCLUSION_PROBES, CONSISTENCY_PROBES):
        assert sum(p["wantErr"] for p in probes) > 50
        assert sum(not p["wantErr"] for p in probes) >= 5


# -- every way a proof can be wrong, with the numbers in the message -----------------

LEVELS = MerkleLevels.of(leaf_hash(bytes([i])) for i in range(13))


def test_a_wrong_index_is_refused_naming_both_roots() -> None:
    proof = LEVELS.inclusion_proof(5, 13)
    root = LEVELS.root(13)
    with pytest.raises(ProofError) as caught:
        verify_inclusion(4, 13, LEVELS.leaf(5), proof, root)
    assert f"want {root.hex()}" in caught.value.detail
    assert "root got " in caught.value.detail


def test_an_index_outside_the_tree_is_refused() -> None:
    with pytest.raises(ProofError, match="leaf index 13 is not in a tree of size 13"):
        verify_inclusion(13, 13, LEVELS.leaf(5), LEVELS.inclusion_proof(5, 13), LEVELS.root(13))
    with pytest.raises(ProofError, match="leaf index -1"):
        verify_inclusion(-1, 13, LEVELS.leaf(5), [], LEVELS.root(13))


def test_a_wrong_size_is_refused() -> None:
    proof = LEVELS.inclusion_proof(5, 13)
    with pytest.raises(ProofError, match="got 4 hashes, want 3"):
        verify_inclusion(5, 8, LEVELS.leaf(5), proof, LEVELS.root(8))
    # The same number of hashes, another tree: the root tells.
    proof12 = LEVELS.inclusion_proof(5, 12)
    with pytest.raises(ProofError, match="root got"):
        verify_inclusion(5, 13, LEVELS.leaf(5), proof12, LEVELS.root(13))


def test_a_tampered_hash_is_refused() -> None:
    proof = LEVELS.inclusion_proof(5, 13)
    for i in range(len(proof)):
        tampered = list(proof)
        tampered[i] = bytes([tampered[i][0] ^ 1]) + tampered[i][1:]
        with pytest.raises(ProofError, match="root got"):
            verify_inclusion(5, 13, LEVELS.leaf(5), tampered, LEVELS.root(13))
    with pytest.raises(ProofError, match="root got"):
        verify_inclusion(5, 13, LEVELS.leaf(6), proof, LEVELS.root(13))


def test_an_extra_or_missing_node_is_refused() -> None:
    proof = LEVELS.inclusion_proof(5, 13)
    with pytest.raises(ProofError, match="got 5 hashes, want 4"):
        verify_inclusion(5, 13, LEVELS.leaf(5), [*proof, EMPTY_ROOT], LEVELS.root(13))
    with pytest.raises(ProofError, match="got 3 hashes, want 4"):
        verify_inclusion(5, 13, LEVELS.leaf(5), proof[:-1], LEVELS.root(13))
    with pytest.raises(ProofError, match="hash 2 is 31 bytes, want 32"):
        verify_inclusion(5, 13, LEVELS.leaf(5), [*proof[:2], b"x" * 31, proof[3]], LEVELS.root(13))
    with pytest.raises(ProofError, match="leaf hash is 3 bytes, want 32"):
        verify_inclusion(5, 13, b"abc", proof, LEVELS.root(13))


def test_a_consistency_proof_with_wrong_sizes_is_refused() -> None:
    proof = LEVELS.consistency_proof(5, 13)
    with pytest.raises(ProofError, match="got sizes 13 to 5"):
        verify_consistency(13, 5, proof, LEVELS.root(13), LEVELS.root(5))
    with pytest.raises(ProofError, match="at least 1 entry: got size 0"):
        verify_consistency(0, 13, proof, EMPTY_ROOT, LEVELS.root(13))
    assert len(proof) == 5
    with pytest.raises(ProofError, match="sizes 6 to 13: got 5 hashes, want 4"):
        verify_consistency(6, 13, proof, LEVELS.root(6), LEVELS.root(13))
    # The same length, another old size: a root tells.
    assert consistency_proof_length(7, 13) == len(proof)
    with pytest.raises(ProofError, match="for size 7"):
        verify_consistency(7, 13, proof, LEVELS.root(7), LEVELS.root(13))


def test_a_consistency_proof_names_the_root_that_disagrees() -> None:
    proof = LEVELS.consistency_proof(5, 13)
    old, new = LEVELS.root(5), LEVELS.root(13)
    other = node_hash(old, new)
    with pytest.raises(ProofError) as caught:
        verify_consistency(5, 13, proof, other, new)
    assert f"for size 5, want {other.hex()}" in caught.value.detail
    with pytest.raises(ProofError) as caught:
        verify_consistency(5, 13, proof, old, other)
    assert f"for size 13, want {other.hex()}" in caught.value.detail
    with pytest.raises(ProofError, match=f"got {other.hex()}, want {new.hex()}"):
        verify_consistency(13, 13, [], new, other)


def test_a_consistency_proof_with_a_node_changed_added_or_missing_is_refused() -> None:
    proof = LEVELS.consistency_proof(5, 13)
    old, new = LEVELS.root(5), LEVELS.root(13)
    for i in range(len(proof)):
        tampered = list(proof)
        tampered[i] = bytes(32)
        with pytest.raises(ProofError, match="the proof gives root"):
            verify_consistency(5, 13, tampered, old, new)
    assert len(proof) == 5
    with pytest.raises(ProofError, match="got 6 hashes, want 5"):
        verify_consistency(5, 13, [*proof, new], old, new)
    with pytest.raises(ProofError, match="got 4 hashes, want 5"):
        verify_consistency(5, 13, proof[1:], old, new)
    with pytest.raises(ProofError, match="got 1 hashes, want 0"):
        verify_consistency(13, 13, [new], new, new)


def test_levels_refuse_sizes_they_do_not_hold() -> None:
    with pytest.raises(ProofError, match="tree size 14 is beyond the 13 leaves held"):
        LEVELS.inclusion_proof(0, 14)
    with pytest.raises(ProofError, match="tree size 14 is beyond"):
        LEVELS.consistency_proof(1, 14)
    with pytest.raises(ProofError, match="leaf index 13"):
        LEVELS.leaf(13)
    assert LEVELS.root(0) == EMPTY_ROOT


# -- against the reference tree -------------------------------------------------------


def reference_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH, recursively, over plain lists."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if index < k:
        return [*reference_path(index, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(index - k, leaves[k:]), reference_root(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF, recursively, over plain lists."""
    n = len(leaves)
    if m == n:
        return [] if complete else [reference_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], complete), reference_root(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_root(leaves[:k])]


@st.composite
def trees(draw: st.DrawFn) -> list[bytes]:
    size = draw(st.integers(min_value=1, max_value=140))
    salt = draw(st.binary(max_size=4))
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


@given(trees(), st.data())
def test_inclusion_proofs_match_the_reference_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    levels = MerkleLevels.of(leaves)
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = levels.inclusion_proof(index, size)
    assert proof == reference_path(index, leaves[:size])
    assert len(proof) == inclusion_proof_length(index, size)
    root = reference_root(leaves[:size])
    assert levels.root(size) == root
    verify_inclusion(index, size, leaves[index], proof, root)
    if size > 1:  # any other index fails
        other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
        with pytest.raises(ProofError):
            verify_inclusion(other, size, leaves[index], proof, root)


@given(trees(), st.data())
def test_consistency_proofs_match_the_reference_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    levels = MerkleLevels.of(leaves)
    size2 = data.draw(st.integers(min_value=1, max_value=len(leaves)))
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    proof = levels.consistency_proof(size1, size2)
    want = [] if size1 == size2 else reference_subproof(size1, leaves[:size2], True)
    assert proof == want
    assert len(proof) == consistency_proof_length(size1, size2)
    root1, root2 = reference_root(leaves[:size1]), reference_root(leaves[:size2])
    verify_consistency(size1, size2, proof, root1, root2)
    if size1 < size2:  # a forked tree: the same sizes, one leaf changed, fails
        forked = list(leaves[:size2])
        changed = data.draw(st.integers(min_value=0, max_value=size1 - 1))
        forked[changed] = node_hash(forked[changed], forked[changed])
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, reference_root(forked[:size1]), root2)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, reference_root(forked))


# -- grown from a real log ------------------------------------------------------------


def test_levels_grow_from_the_log_and_prove_its_checkpoints(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.sqlite3"
    write_log(path, key, 10, group=3)
    levels = MerkleLevels()
    with AuditReader(path) as reader:
        assert levels.extend(reader, 4) == 4
        assert levels.extend(reader, 10) == 10
        assert levels.extend(reader, 7) == 10  # never shrinks
        leaves = [entry_leaf_hash(*row) for row in reader.iter_rows()]
        checkpoints = reader.checkpoints()
        with pytest.raises(ProofError, match="the log holds 10 entries, fewer than the 11"):
            levels.extend(reader, 11)
    assert [cp.size for cp in checkpoints] == [3, 6, 9, 10]
    for cp in checkpoints:
        assert levels.root(cp.size) == cp.root
    proof = levels.inclusion_proof(4, 9)
    verify_inclusion(4, 9, leaves[4], proof, checkpoints[2].root)
    verify_consistency(
        3, 10, levels.consistency_proof(3, 10), checkpoints[0].root, checkpoints[3].root
    )


def test_levels_refuse_a_log_that_changed_under_them(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.sqlite3"
    write_log(path, key, 6)
    levels = MerkleLevels()
    with AuditReader(path) as reader:
        levels.extend(reader, 3)
    # Entry 4 replaced by one that does not chain from entry 3.
    attack(path, "DELETE FROM entries WHERE seq >= 4")
    attack(path, "INSERT INTO entries (seq, prev, body) VALUES (4, zeroblob(32), '{}')")
    with AuditReader(path) as reader, pytest.raises(ProofError, match="entry 4 does not follow"):
        levels.extend(reader, 4)
    assert levels.size == 3


def test_levels_extend_safely_from_many_threads(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.sqlite3"
    write_log(path, key, 40, group=8)
    levels = MerkleLevels()
    errors: list[BaseException] = []

    def work(up_to: int) -> None:
        try:
            with AuditReader(path) as reader:
                levels.extend(reader, up_to)
                levels.inclusion_proof(0, levels.size)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(5 + i % 36,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with AuditReader(path) as reader:
        checkpoints = reader.checkpoints()
        levels.extend(reader, 40)
    assert [levels.root(cp.size) for cp in checkpoints] == [cp.root for cp in checkpoints]
