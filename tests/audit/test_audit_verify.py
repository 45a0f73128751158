"""verify_log: an intact log passes; each kind of tampering names the first bad seq.

Every test starts from the same log: 20 entries with signed checkpoints at sizes
5, 10, 15 and 20. Tampering is done as an attacker with write access to the file would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_support import KEY_NAME, ORIGIN, attack, make_record, verify, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import leaf_bytes
from audit.errors import AuditVerificationError
from audit.hasher import leaf_hash
from audit.reader import AuditReader
from audit.tree import reference_root
from audit.verify import verify_log

SIZE = 20


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def db(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "audit.sqlite3"
    write_log(path, key, SIZE, every=5)
    return path


def first_bad(db: Path, key: Ed25519PrivateKey) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as failed:
        verify(db, key)
    assert str(failed.value.first_bad_seq) in str(failed.value)
    return failed.value


def leaves(db: Path) -> list[bytes]:
    with AuditReader(db) as reader:
        return [leaf_hash(leaf_bytes(*entry)) for entry in reader.iter_entries()]


def forged_body(i: int) -> str:
    return make_record(1000 + i, decision="deny").body().decode()


def shift_up(db: Path, from_seq: int) -> None:
    """Make room at `from_seq` (two steps, so the primary key never collides)."""
    attack(db, "UPDATE entries SET seq = seq + 1000000 WHERE seq >= ?", from_seq)
    attack(db, "UPDATE entries SET seq = seq - 999999 WHERE seq >= 1000000")


def test_intact_log_passes(db: Path, key: Ed25519PrivateKey) -> None:
    report = verify(db, key)
    assert (report.entries, report.checkpoints, report.uncovered_tail) == (SIZE, 4, 0)
    assert report.root == reference_root(leaves(db))
    assert report.elapsed_s >= 0
    assert report.entries_per_s > 0


def test_empty_log_passes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "empty.sqlite3"
    write_log(path, key, 0)
    report = verify(path, key)
    assert (report.entries, report.checkpoints, report.uncovered_tail) == (0, 0, 0)


def test_uncovered_tail_is_reported(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "DELETE FROM checkpoints WHERE size = 20")  # as if the writer crashed
    assert verify(db, key).uncovered_tail == 5


@pytest.mark.parametrize("seq", [1, 7, 10, 19])
def test_changed_entry(db: Path, key: Ed25519PrivateKey, seq: int) -> None:
    attack(db, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = ?", seq)
    failed = first_bad(db, key)
    assert failed.first_bad_seq == seq
    assert "got" in failed.reason
    assert "want" in failed.reason


def test_changed_last_entry_is_caught_by_its_checkpoint(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = 20")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 16  # first entry after the last checkpoint that holds
    assert "checkpoint at size 20" in failed.reason


def test_changed_prev(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "UPDATE entries SET prev = zeroblob(32) WHERE seq = 7")
    assert first_bad(db, key).first_bad_seq == 7


@pytest.mark.parametrize("seq", [1, 7, 11])
def test_deleted_entry(db: Path, key: Ed25519PrivateKey, seq: int) -> None:
    attack(db, "DELETE FROM entries WHERE seq = ?", seq)
    failed = first_bad(db, key)
    assert failed.first_bad_seq == seq
    assert f"got seq {seq + 1}" in failed.reason


def test_deleted_entry_with_seqs_closed_up(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "DELETE FROM entries WHERE seq = 7")
    attack(db, "UPDATE entries SET seq = seq - 1 WHERE seq > 7")
    assert first_bad(db, key).first_bad_seq == 7


def test_deleted_tail_under_a_checkpoint(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "DELETE FROM entries WHERE seq >= 19")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 19
    assert "got 18, want 20" in failed.reason


def test_inserted_entry_with_a_well_formed_prev(db: Path, key: Ed25519PrivateKey) -> None:
    prev = leaves(db)[6 - 1]  # the leaf of entry 6: what a real entry 7 would record
    shift_up(db, 7)
    attack(db, "INSERT INTO entries (seq, prev, body) VALUES (7, ?, ?)", prev, forged_body(7))
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 7
    assert "inserted" in failed.reason


def test_inserted_entry_with_a_forged_prev(db: Path, key: Ed25519PrivateKey) -> None:
    shift_up(db, 7)
    attack(db, "INSERT INTO entries VALUES (7, zeroblob(32), ?)", forged_body(7))
    assert first_bad(db, key).first_bad_seq == 7


def test_inserted_first_entry(db: Path, key: Ed25519PrivateKey) -> None:
    shift_up(db, 1)
    attack(db, "INSERT INTO entries VALUES (1, zeroblob(32), ?)", forged_body(1))
    assert first_bad(db, key).first_bad_seq == 1


def test_entry_appended_past_a_gap(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "INSERT INTO entries VALUES (22, zeroblob(32), ?)", forged_body(22))
    assert first_bad(db, key).first_bad_seq == 21


def test_reordered_rows(db: Path, key: Ed25519PrivateKey) -> None:
    """Entries 8 and 12 trade places: each keeps its own prev and body."""
    swap_rows(db, 8, 12)
    assert first_bad(db, key).first_bad_seq == 8


def test_reordered_adjacent_rows(db: Path, key: Ed25519PrivateKey) -> None:
    swap_rows(db, 8, 9)
    assert first_bad(db, key).first_bad_seq == 8


def test_reordered_bodies(db: Path, key: Ed25519PrivateKey) -> None:
    """Only the bodies of entries 8 and 12 trade places."""
    (body_8,), (body_12,) = (
        attack(db, "SELECT body FROM entries WHERE seq = ?", seq)[0] for seq in (8, 12)
    )
    attack(db, "UPDATE entries SET body = ? WHERE seq = 8", body_12)
    attack(db, "UPDATE entries SET body = ? WHERE seq = 12", body_8)
    assert first_bad(db, key).first_bad_seq == 8


def swap_rows(db: Path, a: int, b: int) -> None:
    attack(db, "UPDATE entries SET seq = -1 WHERE seq = ?", a)
    attack(db, "UPDATE entries SET seq = ? WHERE seq = ?", a, b)
    attack(db, "UPDATE entries SET seq = ? WHERE seq = -1", b)


def test_tampered_checkpoint_note(db: Path, key: Ed25519PrivateKey) -> None:
    (note,) = attack(db, "SELECT note FROM checkpoints WHERE size = 15")[0]
    attack(db, "UPDATE checkpoints SET note = ? WHERE size = 15", note.replace("\n15\n", "\n14\n"))
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 11
    assert "checkpoint at size 15" in failed.reason
    assert "does not verify" in failed.reason


def test_checkpoint_row_disagreeing_with_its_note(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "UPDATE checkpoints SET root = zeroblob(32) WHERE size = 10")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 6
    assert "disagrees with its signed note" in failed.reason


def test_checkpoint_signed_by_another_key(db: Path, key: Ed25519PrivateKey) -> None:
    forged = Checkpoint(ORIGIN, 15, bytes(32))
    note = sign_checkpoint(forged, KEY_NAME, Ed25519PrivateKey.generate())
    attack(db, "UPDATE checkpoints SET note = ?, root = ? WHERE size = 15", note, bytes(32))
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 11
    assert "no signature of key" in failed.reason


def test_rewritten_chain_is_caught_by_the_checkpoints(db: Path, key: Ed25519PrivateKey) -> None:
    """The attacker changes entry 12 and recomputes every later prev: no link breaks."""
    attack(db, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = 12")
    for seq in range(13, SIZE + 1):
        attack(db, "UPDATE entries SET prev = ? WHERE seq = ?", leaves(db)[seq - 2], seq)
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 11  # the last checkpoint that holds is at size 10
    assert "checkpoint at size 15 does not match" in failed.reason
    assert "root got" in failed.reason
    assert "want" in failed.reason


def test_wrong_key_or_origin_trusts_no_checkpoint(db: Path, key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with AuditReader(db) as reader, pytest.raises(AuditVerificationError) as failed:
        verify_log(reader, other.public_key(), origin=ORIGIN, key_name=KEY_NAME)
    assert failed.value.first_bad_seq == 1
    with AuditReader(db) as reader, pytest.raises(AuditVerificationError) as failed:
        verify_log(reader, key.public_key(), origin="elsewhere/log", key_name=KEY_NAME)
    assert failed.value.first_bad_seq == 1
    assert "origin" in failed.value.reason
