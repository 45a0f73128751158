"""verify_log: an intact log passes; each kind of tampering names the first bad seq.

Every test starts from the same log: 20 entries committed five at a time, so with signed
checkpoints at sizes 5, 10, 15 and 20. Tampering is done as an attacker with write access
to the file would; the last tests give that attacker the log key too, and the DPO a
trusted checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import entry_leaf_hash
from audit.errors import AuditVerificationError, CheckpointError
from audit.hasher import EMPTY_ROOT
from audit.reader import AuditReader
from audit.verify import VerifyReport, verify_log
from tests.audit.audit_support import (
    ORIGIN,
    attack,
    forge_unchained_entry,
    forged_body,
    verify,
    write_log,
)
from tests.audit.reference_tree import reference_root

SIZE = 20


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def db(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "audit.sqlite3"
    write_log(path, key, SIZE, group=5)
    return path


def first_bad(db: Path, key: Ed25519PrivateKey) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as failed:
        verify(db, key)
    assert str(failed.value.first_bad_seq) in str(failed.value)
    return failed.value


def leaves(db: Path) -> list[bytes]:
    with AuditReader(db) as reader:
        return [entry_leaf_hash(*entry) for entry in reader.iter_entries()]


def shift_up(db: Path, from_seq: int) -> None:
    """Make room at `from_seq` (two steps, so the primary key never collides)."""
    attack(db, "UPDATE entries SET seq = seq + 1000000 WHERE seq >= ?", from_seq)
    attack(db, "UPDATE entries SET seq = seq - 999999 WHERE seq >= 1000000")


def test_intact_log_passes(db: Path, key: Ed25519PrivateKey) -> None:
    report = verify(db, key)
    assert (report.entries, report.checkpoints) == (SIZE, 4)
    assert report.root == reference_root(leaves(db))
    assert report.elapsed_s >= 0
    assert report.entries_per_s > 0


def test_empty_log_passes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "empty.sqlite3"
    write_log(path, key, 0)
    report = verify(path, key)
    assert (report.entries, report.checkpoints) == (0, 0)


def test_an_uncovered_tail_fails_at_its_first_entry(db: Path, key: Ed25519PrivateKey) -> None:
    # The gateway commits every entry with its checkpoint, a crash included: entries
    # after the latest checkpoint were added, or its newest checkpoints removed.
    attack(db, "DELETE FROM checkpoints WHERE size = 20")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 16
    assert "5 entries after the latest checkpoint (size 15) are not under any" in failed.reason


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
    forge_unchained_entry(db, 7)
    assert first_bad(db, key).first_bad_seq == 7


def test_inserted_first_entry(db: Path, key: Ed25519PrivateKey) -> None:
    shift_up(db, 1)
    forge_unchained_entry(db, 1)
    assert first_bad(db, key).first_bad_seq == 1


def test_entry_appended_past_a_gap(db: Path, key: Ed25519PrivateKey) -> None:
    forge_unchained_entry(db, 22)
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


def rebuild_without_constraints(db: Path, table: str, columns: str) -> None:
    """Replace `table` by a plain copy: no key, no STRICT types, no triggers."""
    # The writer's view trigger names both tables: it goes first (the writer makes it anew).
    attack(db, "DROP TRIGGER commit_groups_insert")
    attack(db, f"CREATE TABLE copy AS SELECT {columns} FROM {table}")  # noqa: S608
    attack(db, f"DROP TABLE {table}")
    attack(db, f"ALTER TABLE copy RENAME TO {table}")


def test_two_signed_checkpoints_at_one_size_are_refused(db: Path, key: Ed25519PrivateKey) -> None:
    # A rebuilt table without its key holds the real checkpoint at 15 and one the same
    # key signed for another history; whichever row comes first, the log fails.
    rebuild_without_constraints(db, "checkpoints", "*")
    other = sign_checkpoint(Checkpoint(ORIGIN, 15, bytes(32)), ORIGIN, key)
    attack(db, "INSERT INTO checkpoints VALUES (15, ?, ?, 'now')", bytes(32), other)
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 1
    assert "two signed checkpoints at size 15 disagree" in failed.reason


def test_a_prev_of_the_wrong_type_is_a_broken_link(db: Path, key: Ed25519PrivateKey) -> None:
    # The STRICT table refuses it; a rebuilt one need not. A bad entry, not a crash.
    rebuild_without_constraints(db, "entries", "seq, prev, body")
    attack(db, "UPDATE entries SET prev = 'not a hash' WHERE seq = 3")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 3


def test_checkpoint_signed_by_another_key(db: Path, key: Ed25519PrivateKey) -> None:
    forged = Checkpoint(ORIGIN, 15, bytes(32))
    note = sign_checkpoint(forged, ORIGIN, Ed25519PrivateKey.generate())
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
        verify_log(reader, other.public_key(), origin=ORIGIN)
    assert failed.value.first_bad_seq == 1
    with AuditReader(db) as reader, pytest.raises(AuditVerificationError) as failed:
        verify_log(reader, key.public_key(), origin="elsewhere/log")
    assert failed.value.first_bad_seq == 1
    assert "elsewhere/log" in failed.value.reason  # its key name is the origin


# -- coverage: entries no signed checkpoint vouches for ----------------------------------


def rewrite_from(db: Path, seq: int) -> None:
    """Change entry `seq` and recompute every later prev, so that no link breaks."""
    attack(db, "UPDATE entries SET body = replace(body, 'allow', 'deny') WHERE seq = ?", seq)
    for later in range(seq + 1, SIZE + 1):
        attack(db, "UPDATE entries SET prev = ? WHERE seq = ?", leaves(db)[later - 2], later)


def test_rewrite_with_every_checkpoint_deleted_fails_at_1(db: Path, key: Ed25519PrivateKey) -> None:
    """C1: no link breaks and no checkpoint is left to contradict the entries."""
    rewrite_from(db, 12)
    attack(db, "DELETE FROM checkpoints")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 1
    assert f"no signed checkpoint covers any of the {SIZE} entries" in failed.reason


def test_only_a_size_0_checkpoint_covers_nothing(db: Path, key: Ed25519PrivateKey) -> None:
    attack(db, "DELETE FROM checkpoints")
    note = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), ORIGIN, key)
    attack(db, "INSERT INTO checkpoints VALUES (0, ?, ?, 'now')", EMPTY_ROOT, note)
    assert first_bad(db, key).first_bad_seq == 1


def test_a_broken_link_is_still_reported_without_checkpoints(
    db: Path, key: Ed25519PrivateKey
) -> None:
    attack(db, "UPDATE entries SET prev = zeroblob(32) WHERE seq = 7")
    attack(db, "DELETE FROM checkpoints")
    failed = first_bad(db, key)
    assert failed.first_bad_seq == 1
    assert "also: entry 7 does not follow entry 6" in failed.reason


def test_unverifiable_checkpoints_are_not_reported_as_missing(
    db: Path, key: Ed25519PrivateKey
) -> None:
    with AuditReader(db) as reader, pytest.raises(AuditVerificationError) as failed:
        verify_log(reader, Ed25519PrivateKey.generate().public_key(), origin=ORIGIN)
    assert failed.value.first_bad_seq == 1
    assert "no signature of key" in failed.value.reason
    assert "no signed checkpoint covers" not in failed.value.reason


# -- the DPO's trusted checkpoint -------------------------------------------------------


def stored_note(db: Path, size: int) -> str:
    with AuditReader(db) as reader:
        (note,) = [c.note for c in reader.checkpoints() if c.size == size]
    return note


def verify_trusted(db: Path, key: Ed25519PrivateKey, trusted: str) -> VerifyReport:
    with AuditReader(db) as reader:
        return verify_log(reader, key.public_key(), origin=ORIGIN, trusted=trusted)


def first_bad_trusted(db: Path, key: Ed25519PrivateKey, trusted: str) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as failed:
        verify_trusted(db, key, trusted)
    return failed.value


def resign(db: Path, key: Ed25519PrivateKey, *sizes: int) -> None:
    """The attacker holds the log key: replace the checkpoints at `sizes` with new ones."""
    for size in sizes:
        root = reference_root(leaves(db)[:size])
        note = sign_checkpoint(Checkpoint(ORIGIN, size, root), ORIGIN, key)
        attack(db, "DELETE FROM checkpoints WHERE size = ?", size)
        attack(db, "INSERT INTO checkpoints VALUES (?, ?, ?, 'now')", size, root, note)


@pytest.mark.parametrize("size", [5, 15, 20])
def test_intact_log_holds_the_trusted_checkpoint(
    db: Path, key: Ed25519PrivateKey, size: int
) -> None:
    report = verify_trusted(db, key, stored_note(db, size))
    assert (report.entries, report.trusted_size) == (SIZE, size)


def test_trusted_checkpoint_at_an_unstored_size(db: Path, key: Ed25519PrivateKey) -> None:
    root = reference_root(leaves(db)[:12])
    note = sign_checkpoint(Checkpoint(ORIGIN, 12, root), ORIGIN, key)
    assert verify_trusted(db, key, note).trusted_size == 12
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), ORIGIN, key)
    assert verify_trusted(db, key, empty).trusted_size == 0


def test_truncated_tail_passes_alone_but_not_the_trusted_checkpoint(
    db: Path, key: Ed25519PrivateKey
) -> None:
    """H2: every entry and checkpoint above 10 is gone; what remains is self-consistent."""
    trusted = stored_note(db, 20)
    attack(db, "DELETE FROM entries WHERE seq > 10")
    attack(db, "DELETE FROM checkpoints WHERE size > 10")
    assert verify(db, key).entries == 10  # nothing in the file itself can tell
    failed = first_bad_trusted(db, key, trusted)
    assert failed.first_bad_seq == 11
    assert "holds 10 entries, fewer than the trusted checkpoint at size 20" in failed.reason


def test_truncated_below_the_trusted_size_with_an_old_one(db: Path, key: Ed25519PrivateKey) -> None:
    trusted = stored_note(db, 15)
    attack(db, "DELETE FROM entries WHERE seq > 13")
    attack(db, "DELETE FROM checkpoints WHERE size > 10")
    failed = first_bad_trusted(db, key, trusted)
    # Nothing vouches for entries 11 to 13 any more: the trusted checkpoint cannot, as
    # its root needs entries 14 and 15 too.
    assert failed.first_bad_seq == 11
    assert "3 entries after the latest checkpoint (size 10)" in failed.reason
    assert "also: the log holds 13 entries, fewer than the trusted checkpoint" in failed.reason


def test_rewrite_resigned_with_the_real_key_is_caught_by_the_trusted_checkpoint(
    db: Path, key: Ed25519PrivateKey
) -> None:
    """The attacker holds the key: checkpoints 15 and 20 are re-signed over the rewrite."""
    trusted = stored_note(db, 20)
    rewrite_from(db, 12)
    resign(db, key, 15, 20)
    assert verify(db, key).entries == SIZE  # the stored evidence is all consistent
    failed = first_bad_trusted(db, key, trusted)
    # The key signed two histories at size 20, so checkpoints 5 and 10 vouch for nothing.
    assert failed.first_bad_seq == 1
    assert "trusted checkpoint at size 20 does not match the entries" in failed.reason
    assert "the log key also signed the rewritten log (checkpoint at size 20)" in failed.reason


def test_resigned_rewrite_against_an_older_trusted_checkpoint(
    db: Path, key: Ed25519PrivateKey
) -> None:
    trusted = stored_note(db, 15)
    rewrite_from(db, 12)
    resign(db, key, 15, 20)
    failed = first_bad_trusted(db, key, trusted)
    assert failed.first_bad_seq == 1
    assert "checkpoint at size 15)" in failed.reason


def test_rewrite_with_later_checkpoints_deleted_blames_after_the_last_that_agrees(
    db: Path, key: Ed25519PrivateKey
) -> None:
    """No key: the attacker deletes the checkpoints that would contradict the rewrite."""
    trusted = stored_note(db, 20)
    rewrite_from(db, 12)
    attack(db, "DELETE FROM checkpoints WHERE size > 10")
    assert first_bad(db, key).first_bad_seq == 11  # alone: entries no checkpoint covers
    failed = first_bad_trusted(db, key, trusted)
    assert failed.first_bad_seq == 11  # checkpoint 10 still agrees with the entries
    assert "root got" in failed.reason


@pytest.mark.parametrize("smallest_deleted", [20, 15, 0], ids=["latest", "two", "all"])
def test_a_checkpoint_removed_from_below_the_trusted_one_is_caught(
    db: Path, key: Ed25519PrivateKey, smallest_deleted: int
) -> None:
    # The entries still match the DPO's checkpoint, but the log once held a checkpoint at
    # its size (the DPO took it from there) and now does not: it was removed.
    trusted = stored_note(db, 20)
    attack(db, "DELETE FROM checkpoints WHERE size >= ?", smallest_deleted)
    with AuditReader(db) as reader:
        latest = max((c.size for c in reader.checkpoints()), default=0)
    failed = first_bad_trusted(db, key, trusted)
    assert failed.first_bad_seq == latest + 1
    assert "was removed" in failed.reason


def test_rewrite_with_every_checkpoint_deleted_against_a_trusted_one(
    db: Path, key: Ed25519PrivateKey
) -> None:
    trusted = stored_note(db, 15)
    rewrite_from(db, 12)
    attack(db, "DELETE FROM checkpoints")
    failed = first_bad_trusted(db, key, trusted)
    assert failed.first_bad_seq == 1
    assert "trusted checkpoint at size 15 does not match" in failed.reason


def test_trusted_checkpoint_of_another_key_or_origin_is_refused(
    db: Path, key: Ed25519PrivateKey
) -> None:
    root = reference_root(leaves(db))
    other_key = sign_checkpoint(Checkpoint(ORIGIN, 20, root), ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="the trusted checkpoint: no signature of key"):
        verify_trusted(db, key, other_key)
    other_origin = sign_checkpoint(Checkpoint("elsewhere/log", 20, root), ORIGIN, key)
    with pytest.raises(CheckpointError, match="the trusted checkpoint: origin"):
        verify_trusted(db, key, other_origin)
    with pytest.raises(CheckpointError, match="the trusted checkpoint: note has no signature"):
        verify_trusted(db, key, "not a note")
