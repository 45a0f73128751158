"""`verify_log(..., witness=…)` on real SQLite logs: the witness's stored cosignatures must
match the entries, there must be one, and its state counts like a trusted checkpoint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.errors import AuditVerificationError, ProofError
from audit.reader import AuditReader
from audit.store import AuditStore
from audit.verify import VerifyReport, WitnessCheck, verify_log
from audit.witness import Cosigned, LogKey, WitnessKey
from tests.audit.audit_support import ORIGIN, append_records, attack, open_store

LOG_KEY = Ed25519PrivateKey.generate()
LOG = LogKey(ORIGIN, LOG_KEY.public_key())
WITNESS = WitnessKey("dpo.test/witness", Ed25519PrivateKey.generate())


def cosign(store: AuditStore, path: Path, size: int, witness: WitnessKey = WITNESS) -> Cosigned:
    """What `doelpoort witness run` does, without HTTP: cosign the stored checkpoint."""
    with AuditReader(path) as reader:
        stored = reader.checkpoint(size)
    assert stored is not None
    cosigned = Cosigned.sign(stored.note, LOG, witness, int(time.time()))
    line = cosigned.cosignature
    assert asyncio.run(store.add_cosignature(size, line.name, line.key_id, line.line(), "now"))
    return cosigned


def check(path: Path, state: str | None = None, witness: WitnessKey = WITNESS) -> VerifyReport:
    with AuditReader(path) as reader:
        return verify_log(
            reader,
            LOG_KEY.public_key(),
            origin=ORIGIN,
            witness=WitnessCheck(witness.name, witness.public_key, state),
        )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite3"


def test_a_log_the_witness_cosigned_verifies_up_to_its_latest_size(path: Path) -> None:
    with open_store(path, LOG_KEY) as store:
        append_records(store, 6, group=2)
        cosign(store, path, 4)
        append_records(store, 4, group=2)
        state = cosign(store, path, 10).note
    report = check(path, state)
    assert (report.entries, report.witnessed_size) == (10, 10)


def test_no_cosignature_of_the_witness_fails(path: Path) -> None:
    other = WitnessKey("dpo.test/other", Ed25519PrivateKey.generate())
    with open_store(path, LOG_KEY) as store:
        append_records(store, 4, group=2)
        cosign(store, path, 4, other)  # another witness's: ignored for this one
    with pytest.raises(AuditVerificationError, match=r"stores no cosignature of witness dpo\.test"):
        check(path)
    assert check(path, witness=other).witnessed_size == 4


def test_a_cosignature_beyond_the_log_names_the_first_missing_entry(path: Path) -> None:
    with open_store(path, LOG_KEY) as store:
        append_records(store, 8, group=2)
        cosign(store, path, 8)
    attack(path, "DELETE FROM entries WHERE seq > 6")
    attack(path, "DELETE FROM checkpoints WHERE size > 6")
    with pytest.raises(AuditVerificationError) as caught:
        check(path)
    assert caught.value.first_bad_seq == 7
    assert "cosigned the checkpoint at size 8, but the log holds only 6 entries" in str(
        caught.value
    )


def test_a_forged_cosignature_line_fails_at_the_entries_it_claims(path: Path) -> None:
    with open_store(path, LOG_KEY) as store:
        append_records(store, 8, group=2)
        cosign(store, path, 4)
        forged = Cosigned.sign(
            # A cosignature of another tree at size 8 (the witness never saw this log's).
            _note(Checkpoint(ORIGIN, 8, bytes(32))),
            LOG,
            WITNESS,
            int(time.time()),
        ).cosignature
        asyncio.run(store.add_cosignature(8, WITNESS.name, forged.key_id, forged.line(), "now"))
    with pytest.raises(AuditVerificationError) as caught:
        check(path)
    assert caught.value.first_bad_seq == 5  # after size 4, which the witness vouches for
    assert "cosignature at size 8 does not match the entries" in str(caught.value)


def _note(checkpoint: Checkpoint) -> str:
    return sign_checkpoint(checkpoint, ORIGIN, LOG_KEY)


def test_a_state_of_another_witness_or_log_does_not_open(path: Path) -> None:
    with open_store(path, LOG_KEY) as store:
        append_records(store, 2)
        state = cosign(store, path, 2).note
    other = WitnessKey(WITNESS.name, Ed25519PrivateKey.generate())
    with pytest.raises(ProofError, match="carries no cosignature"):
        check(path, state, other)
