"""The DPO's audit commands: verify with their own key and checkpoint, export-key, checkpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from audit.checkpoint import verifier_key
from audit.store import AuditStore
from gateway._cli import app
from gateway.keys import create_log_key, load_log_key
from gateway.settings import Settings
from tests.audit.audit_support import attack, make_record

runner = CliRunner()
SIZE = 12


def log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log key in ``keys_dir``, created on first use."""
    create_log_key(keys_dir)
    return load_log_key(keys_dir)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A var dir whose log holds 12 entries committed four at a time, so with
    checkpoints at 4, 8 and 12."""
    settings = Settings.from_env().with_var_dir(tmp_path / "var")
    store = AuditStore.open(
        settings.audit_db_path, log_key=log_key(settings.keys_dir), origin=settings.origin
    )

    async def fill() -> None:
        for start in range(0, SIZE, 4):
            await store.append([make_record(i) for i in range(start, start + 4)])

    try:
        asyncio.run(fill())
    finally:
        store.close()
    return settings


def audit(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["audit", *args, "--var-dir", str(settings.var_dir)])
    return result.exit_code, result.stdout, result.stderr


def dpo_copies(settings: Settings, tmp_path: Path) -> tuple[Path, Path]:
    """The DPO's own copies of the log key, as PEM and as a verifier key."""
    code, out, _ = audit(settings, "export-key")
    assert code == 0
    vkey = tmp_path / "dpo" / "log.vkey"
    vkey.parent.mkdir()
    vkey.write_text(out)
    pem = tmp_path / "dpo" / "log.pem"
    pem.write_bytes((settings.keys_dir / "audit-log.pub").read_bytes())
    return pem, vkey


def test_verify_without_own_key_warns(settings: Settings) -> None:
    code, out, err = audit(settings, "verify")
    assert code == 0, err
    assert f"audit log intact: {SIZE} entries, 3 signed checkpoints" in out
    assert "warning: the log's public key was read from" in err
    assert "--log-key" in err


def test_verify_with_own_key_in_either_form(settings: Settings, tmp_path: Path) -> None:
    for copy in dpo_copies(settings, tmp_path):
        code, out, err = audit(settings, "verify", "--log-key", str(copy))
        assert code == 0, err
        assert "intact" in out
        assert err == ""


def test_export_key_prints_the_verifier_key(settings: Settings) -> None:
    code, out, err = audit(settings, "export-key")
    assert code == 0
    key = log_key(settings.keys_dir)
    assert out == verifier_key(settings.origin, key.public_key()) + "\n"
    assert "kept (it matches the log key)" in err


def test_a_missing_public_key_is_exported_on_request_only(settings: Settings) -> None:
    pub = settings.keys_dir / "audit-log.pub"
    before = pub.read_bytes()
    pub.unlink()
    code, _, err = audit(settings, "verify")
    assert code == 2
    assert "audit-log.pub is missing" in err
    assert "doelpoort audit export-key" in err
    assert not pub.exists()
    code, _, err = audit(settings, "export-key")
    assert code == 0
    assert f"wrote {pub}" in err
    assert pub.read_bytes() == before
    assert audit(settings, "verify")[0] == 0


def test_verify_with_a_copy_of_another_key_fails(settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    public_key = Ed25519PrivateKey.generate().public_key()
    other.write_bytes(public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    code, _, err = audit(settings, "verify", "--log-key", str(other))
    assert code == 1
    assert "first bad entry is seq 1" in err
    assert "no signature of key" in err
    unreadable = tmp_path / "garbage"
    unreadable.write_text("garbage")
    code, _, err = audit(settings, "verify", "--log-key", str(unreadable))
    assert code == 2
    assert "neither a PEM public key nor a verifier key" in err


def test_checkpoint_to_stdout_and_to_a_file(settings: Settings, tmp_path: Path) -> None:
    code, out, err = audit(settings, "checkpoint")
    assert code == 0
    assert out.startswith(f"{settings.origin}\n{SIZE}\n")
    assert f"\n\n\u2014 {settings.origin} " in out
    assert f"checkpoint at size {SIZE}" in err
    saved = tmp_path / "trusted.checkpoint"
    code, out, _ = audit(settings, "checkpoint", "-o", str(saved))
    assert code == 0
    assert out == ""
    assert saved.read_text().startswith(f"{settings.origin}\n{SIZE}\n")


def test_checkpoint_of_a_log_that_does_not_verify_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    # A checkpoint is worth keeping only if the log it comes from verified: with the
    # DPO's own key, a forged one would otherwise become the DPO's trusted anchor.
    pem = dpo_copies(settings, tmp_path)[1]
    attack(settings.audit_db_path, "UPDATE entries SET body = replace(body, 'allow', 'deny')")
    saved = tmp_path / "trusted.checkpoint"
    code, out, err = audit(settings, "checkpoint", "--log-key", str(pem), "-o", str(saved))
    assert code == 1
    assert "audit log NOT intact" in err
    assert out == ""
    assert not saved.exists()


def test_checkpoint_of_a_log_without_one(tmp_path: Path) -> None:
    settings = Settings.from_env().with_var_dir(tmp_path / "var")
    code, _, err = audit(settings, "checkpoint")
    assert (code, "no audit log at") == (2, err[: len("no audit log at")])
    key = log_key(settings.keys_dir)
    AuditStore.open(settings.audit_db_path, log_key=key, origin=settings.origin).close()
    code, out, err = audit(settings, "checkpoint")
    assert code == 2
    assert out == ""
    assert "no signed checkpoint yet" in err


def test_truncation_is_caught_by_the_dpo_trusted_checkpoint(
    settings: Settings, tmp_path: Path
) -> None:
    pem, _ = dpo_copies(settings, tmp_path)
    saved = tmp_path / "dpo" / "trusted.checkpoint"
    assert audit(settings, "checkpoint", "-o", str(saved))[0] == 0
    code, out, _ = audit(
        settings, "verify", "--log-key", str(pem), "--trusted-checkpoint", str(saved)
    )
    assert code == 0
    assert f"consistent with your trusted checkpoint at size {SIZE}" in out

    attack(settings.audit_db_path, "DELETE FROM entries WHERE seq > 8")
    attack(settings.audit_db_path, "DELETE FROM checkpoints WHERE size > 8")
    assert audit(settings, "verify", "--log-key", str(pem))[0] == 0  # alone, it cannot tell
    code, _, err = audit(
        settings, "verify", "--log-key", str(pem), "--trusted-checkpoint", str(saved)
    )
    assert code == 1
    assert "audit log NOT intact: first bad entry is seq 9" in err


def test_a_trusted_checkpoint_of_another_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    pem, _ = dpo_copies(settings, tmp_path)
    saved = tmp_path / "dpo" / "trusted.checkpoint"
    code, note, _ = audit(settings, "checkpoint")
    saved.write_text(note.replace(f"\n{SIZE}\n", f"\n{SIZE - 1}\n"))
    code, _, err = audit(
        settings, "verify", "--log-key", str(pem), "--trusted-checkpoint", str(saved)
    )
    assert code == 1
    assert "audit log NOT verified: the trusted checkpoint: signature" in err
    code, _, err = audit(settings, "verify", "--trusted-checkpoint", str(tmp_path / "none"))
    assert code == 2
    assert "cannot read the trusted checkpoint" in err


def test_entries_no_checkpoint_covers_fail_verify(settings: Settings) -> None:
    # Once a warning ("not yet under a signed checkpoint"): now every commit carries its
    # checkpoint, so such entries are someone else's work.
    attack(settings.audit_db_path, "DELETE FROM checkpoints WHERE size = 12")
    code, out, err = audit(settings, "verify")
    assert code == 1
    assert out == ""
    assert "first bad entry is seq 9: 4 entries after the latest checkpoint (size 8)" in err
    code, _, err = audit(settings, "checkpoint")
    assert (code, "audit log NOT intact" in err) == (1, True)


def test_deleted_checkpoints_fail_verify(settings: Settings) -> None:
    attack(settings.audit_db_path, "DELETE FROM checkpoints")
    code, _, err = audit(settings, "verify")
    assert code == 1
    assert f"first bad entry is seq 1: no signed checkpoint covers any of the {SIZE}" in err
