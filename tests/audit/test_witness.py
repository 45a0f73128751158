"""The witness's decision to cosign, and its state, on trees built here."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint, split_note
from audit.cosignature import cosignatures_of
from audit.errors import ProofError
from audit.hasher import leaf_hash
from audit.proof import MerkleLevels
from audit.witness import Cosigned, LogKey, WitnessKey, check_advance, open_state

ORIGIN = "test.doelpoort.local/audit"
LOG_PRIVATE = Ed25519PrivateKey.generate()
LOG = LogKey(ORIGIN, LOG_PRIVATE.public_key())
WITNESS = WitnessKey("dpo.test.doelpoort.local/witness", Ed25519PrivateKey.generate())
HONEST = MerkleLevels.of(leaf_hash(b"entry %d" % i) for i in range(30))
# The same log with entry 7 rewritten: a fork from size 7 on.
FORKED = MerkleLevels.of(leaf_hash(b"entry %d" % i if i != 6 else b"forged") for i in range(30))


def checkpoint(levels: MerkleLevels, size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, levels.root(size))


def note(levels: MerkleLevels, size: int) -> str:
    return sign_checkpoint(checkpoint(levels, size), ORIGIN, LOG_PRIVATE)


def test_the_first_checkpoint_is_trusted_and_growth_is_checked() -> None:
    check_advance(None, checkpoint(HONEST, 5), None)
    check_advance(checkpoint(HONEST, 5), checkpoint(HONEST, 5), None)
    check_advance(checkpoint(HONEST, 5), checkpoint(HONEST, 21), HONEST.consistency_proof(5, 21))


def test_a_rollback_is_refused_with_both_sizes() -> None:
    with pytest.raises(ProofError, match=r"rollback: .* size 12, smaller than size 21"):
        check_advance(checkpoint(HONEST, 21), checkpoint(HONEST, 12), None)


def test_a_fork_at_the_same_size_is_refused_with_both_roots() -> None:
    with pytest.raises(ProofError) as caught:
        check_advance(checkpoint(HONEST, 21), checkpoint(FORKED, 21), None)
    assert caught.value.detail.startswith("fork: ")
    assert HONEST.root(21).hex() in caught.value.detail
    assert FORKED.root(21).hex() in caught.value.detail


def test_a_fork_below_the_cosigned_size_is_refused() -> None:
    # The forked log's own proof is consistent with the forked tree, not the witnessed one.
    proof = FORKED.consistency_proof(21, 30)
    with pytest.raises(ProofError, match="fork: the log at size 30 does not extend"):
        check_advance(checkpoint(HONEST, 21), checkpoint(FORKED, 30), proof)
    # A fork after the witnessed size is an honest extension as far as it can know.
    check_advance(checkpoint(HONEST, 5), checkpoint(FORKED, 30), FORKED.consistency_proof(5, 30))


def test_a_missing_or_wrong_proof_is_refused() -> None:
    with pytest.raises(ProofError, match="got 0 hashes"):
        check_advance(checkpoint(HONEST, 5), checkpoint(HONEST, 21), None)
    with pytest.raises(ProofError, match="fork"):
        check_advance(
            checkpoint(HONEST, 5), checkpoint(HONEST, 21), HONEST.consistency_proof(6, 21)
        )


def test_the_state_keeps_the_log_signature_and_one_cosignature() -> None:
    fetched = note(HONEST, 21)
    other = Ed25519PrivateKey.generate()
    # What the gateway serves: the log's line and other cosignatures (an older one of ours).
    earlier = Cosigned.sign(fetched, LOG, WITNESS, 1_765_000_000)
    served = earlier.note + "— someone.else/w " + split_note(fetched)[1][0].split(" ")[2] + "\n"
    state = Cosigned.sign(served, LOG, WITNESS, 1_765_000_100)
    _text, lines = split_note(state.note)
    assert lines[0] == split_note(fetched)[1][0]
    assert len(lines) == 2
    assert [c.timestamp for c in cosignatures_of(state.note, WITNESS.name, WITNESS.public_key)] == [
        1_765_000_100
    ]
    opened = open_state(state.note, LOG, WITNESS.name, WITNESS.public_key)
    assert opened.checkpoint == checkpoint(HONEST, 21)
    assert opened.cosignature.timestamp == 1_765_000_100
    # Another witness's key does not open it; nor does another log's.
    with pytest.raises(ProofError, match="carries no cosignature"):
        open_state(state.note, LOG, WITNESS.name, other.public_key())
    with pytest.raises(ProofError, match="no checkpoint of"):
        open_state(state.note, LogKey(ORIGIN, other.public_key()), WITNESS.name, WITNESS.public_key)
    with pytest.raises(ProofError, match="carries no cosignature"):
        open_state(fetched, LOG, WITNESS.name, WITNESS.public_key)


def test_an_edited_state_is_refused() -> None:
    state = Cosigned.sign(note(HONEST, 21), LOG, WITNESS, 1_765_000_000)
    edited = state.note.replace("\n21\n", "\n22\n", 1)
    with pytest.raises(ProofError):
        open_state(edited, LOG, WITNESS.name, WITNESS.public_key)


def test_the_verifier_key_names_the_witness() -> None:
    assert WITNESS.verifier_key.startswith(WITNESS.name + "+")
