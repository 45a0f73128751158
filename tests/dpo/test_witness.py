"""The DPO's witness against a real gateway over mutual TLS: it cosigns as the log grows,
and it — and `audit verify --witness` — catch a fork (an entry rewritten and every
checkpoint re-signed with the gateway's own log key) and a rollback (the database
restored from a copy made after the DPO's trusted checkpoint), which a trusted
checkpoint alone does not catch."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV, entry_leaf_hash
from audit.tree import CompactRange
from gateway._cli import app
from gateway.dpo.proofs import WITNESS_KEYS_FILE
from gateway.keys import load_log_key
from gateway.settings import Settings
from gateway.witness_state import STATE_FILE, VERIFIER_KEY_FILE
from tests.audit.audit_support import attack
from tests.gateway_support import Deployment, make_settings, running_gateway

runner = CliRunner()


@dataclass
class Setup:
    settings: Settings
    witness_dir: Path
    log_vkey: Path
    tmp: Path

    @property
    def vkey(self) -> Path:
        return self.witness_dir / VERIFIER_KEY_FILE

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [*args, "--var-dir", str(self.settings.var_dir)])
        return result.exit_code, result.stdout, result.stderr

    def witness(self, gateway: Deployment) -> tuple[int, str, str]:
        return self.cli(
            *("witness", "run", "--state", str(self.witness_dir)),
            *("--log-key", str(self.log_vkey), "--url", gateway.base_url),
        )

    def verify(self, *extra: str) -> tuple[int, str, str]:
        return self.cli("audit", "verify", "--log-key", str(self.log_vkey), *extra)

    def state(self) -> bytes:
        return (self.witness_dir / STATE_FILE).read_bytes()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    settings = make_settings(tmp_path / "var")
    found = Setup(settings, tmp_path / "dpo" / "witness", tmp_path / "dpo" / "log.vkey", tmp_path)
    with running_gateway(settings):
        code, out, _ = found.cli("audit", "export-key")
        assert code == 0
        found.log_vkey.parent.mkdir(parents=True, exist_ok=True)
        found.log_vkey.write_text(out)
        code, out, err = found.cli("witness", "init", "--state", str(found.witness_dir))
        assert code == 0, err
        (settings.keys_dir / WITNESS_KEYS_FILE).write_text(out)
    return found


def disclose(gateway: Deployment, times: int = 1) -> None:
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "test: the witness",
        "subject": gateway.subjects["ct_subject"],
        "datasets": ["ind/residence"],
    }
    for _ in range(times):
        assert gateway.disclose("politie", body).status_code == 200


def size_of(settings: Settings) -> int:
    with closing(sqlite3.connect(settings.audit_db_path)) as db:
        return int(db.execute("SELECT max(size) FROM checkpoints").fetchone()[0])


def copy_log(settings: Settings, to: Path) -> None:
    """A consistent copy of the live database (SQLite's backup), as an operator makes one."""
    with (
        closing(sqlite3.connect(settings.audit_db_path)) as source,
        closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)


def restore_log(settings: Settings, copy: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.audit_db_path}{suffix}").unlink(missing_ok=True)
    settings.audit_db_path.write_bytes(copy.read_bytes())


def test_the_witness_cosigns_as_the_log_grows_and_verify_checks_it(setup: Setup) -> None:
    with running_gateway(setup.settings) as gateway:
        code, out, err = setup.verify("--witness", str(setup.vkey))
        assert code == 0, err  # nothing cosigned yet: no cosignature is a failure below
        disclose(gateway)
        code, _, err = setup.verify("--witness", str(setup.vkey))
        assert code == 1
        assert "no cosignature of witness" in err
        code, out, err = setup.witness(gateway)
        assert code == 0, err
        assert "first checkpoint, trusted on first use" in out
        first = size_of(setup.settings)
        disclose(gateway, 2)
        code, out, err = setup.witness(gateway)
        assert code == 0, err
        assert f"consistent with size {first}" in out
        code, out, _ = setup.witness(gateway)  # nothing new: handed in again, idempotent
        assert code == 0
        assert "no new checkpoint" in out
        with gateway.client("politie") as client:
            served = client.get("/v1/audit/checkpoint").text
        assert served.count("\n— ") == 2  # the log's signature and the witness's
    code, out, err = setup.verify(
        "--witness", str(setup.vkey), "--witness-state", str(setup.witness_dir)
    )
    assert code == 0, err
    assert f"vouches for it up to size {size_of(setup.settings)}" in out


def test_the_first_run_with_no_entries_yet_says_so(setup: Setup) -> None:
    with running_gateway(setup.settings) as gateway:
        code, _, err = setup.witness(gateway)
    assert code == 3
    assert "no signed checkpoint yet" in err


def test_a_rollback_past_the_trusted_checkpoint_is_caught_by_the_witness_only(
    setup: Setup,
) -> None:
    trusted = setup.tmp / "dpo" / "trusted.checkpoint"
    backup = setup.tmp / "backup.sqlite3"
    with running_gateway(setup.settings) as gateway:
        disclose(gateway, 2)
        code, _, err = setup.cli(
            "audit", "checkpoint", "--log-key", str(setup.log_vkey), "-o", str(trusted)
        )
        assert code == 0, err
        disclose(gateway)
        assert setup.witness(gateway)[0] == 0
        copy_log(setup.settings, backup)  # after the trusted checkpoint, and cosigned
        copied = size_of(setup.settings)
        disclose(gateway, 2)
        assert setup.witness(gateway)[0] == 0
        witnessed = size_of(setup.settings)
    restore_log(setup.settings, backup)
    # The trusted checkpoint alone passes the rolled-back log.
    code, _, err = setup.verify("--trusted-checkpoint", str(trusted))
    assert code == 0, err
    # So do the cosignatures it still holds; the witness's memory does not.
    assert setup.verify("--witness", str(setup.vkey))[0] == 0
    code, _, err = setup.verify(
        "--trusted-checkpoint",
        str(trusted),
        "--witness",
        str(setup.vkey),
        "--witness-state",
        str(setup.witness_dir),
    )
    assert code == 1
    assert f"first bad entry is seq {copied + 1}" in err
    assert f"fewer than the witness's latest cosigned checkpoint at size {witnessed}" in err
    state = setup.state()
    with running_gateway(setup.settings) as gateway:
        code, _, err = setup.witness(gateway)
        assert code == 1
        assert f"rollback: the log's latest checkpoint has size {copied}" in err
        assert setup.state() == state  # unchanged
        # The restored gateway goes on: a different history after the copy is a fork.
        disclose(gateway, 3)
        assert size_of(setup.settings) > witnessed
        code, _, err = setup.witness(gateway)
        assert code == 1
        assert f"fork: the log at size {size_of(setup.settings)} does not extend" in err
        assert setup.state() == state


def fork_log(settings: Settings, seq: int) -> None:
    """Rewrite entry `seq` and every later link, and re-sign every checkpoint with the
    gateway's own log key: what an attacker who can read var/keys can do offline."""
    key, origin = load_log_key(settings.keys_dir), settings.origin
    db = settings.audit_db_path
    rows = attack(db, "SELECT seq, prev, CAST(body AS BLOB) FROM entries ORDER BY seq")
    sizes = {row[0] for row in attack(db, "SELECT size FROM checkpoints")}
    tree, prev = CompactRange(), GENESIS_PREV
    for number, _, body in rows:
        body = bytes(body)
        if number == seq:
            record: dict[str, Any] = json.loads(body)
            record["case_ref"] = "CTI-2026-9999"  # the forged detail
            body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
            attack(db, "UPDATE entries SET body = ? WHERE seq = ?", body.decode(), number)
        if number > seq:
            attack(db, "UPDATE entries SET prev = ? WHERE seq = ?", prev, number)
        leaf = entry_leaf_hash(number, prev, body)
        tree.append(leaf)
        if number in sizes and number >= seq:
            note = sign_checkpoint(Checkpoint(origin, number, tree.root()), origin, key)
            attack(
                db,
                "UPDATE checkpoints SET root = ?, note = ? WHERE size = ?",
                tree.root(),
                note,
                number,
            )
        prev = leaf


def test_a_fork_re_signed_with_the_log_key_is_caught_by_the_witness(setup: Setup) -> None:
    trusted = setup.tmp / "dpo" / "trusted.checkpoint"
    with running_gateway(setup.settings) as gateway:
        disclose(gateway, 2)
        code, _, err = setup.cli(
            "audit", "checkpoint", "--log-key", str(setup.log_vkey), "-o", str(trusted)
        )
        assert code == 0, err
        trusted_size = size_of(setup.settings)
        disclose(gateway, 2)
        assert setup.witness(gateway)[0] == 0
    witnessed = size_of(setup.settings)
    forged = trusted_size + 1  # after the trusted checkpoint, before the witness's
    fork_log(setup.settings, forged)
    # The forged log is consistent with itself and with the DPO's trusted checkpoint.
    code, _, err = setup.verify("--trusted-checkpoint", str(trusted))
    assert code == 0, err
    code, _, err = setup.verify("--witness", str(setup.vkey))
    assert code == 1
    assert f"cosignature at size {witnessed} does not match the entries" in err
    assert "first bad entry is seq 1:" in err  # nothing the witness vouches for is left
    # With the trusted checkpoint too, the blame narrows to the entries after it.
    code, _, err = setup.verify("--trusted-checkpoint", str(trusted), "--witness", str(setup.vkey))
    assert code == 1
    assert f"first bad entry is seq {forged}:" in err
    code, _, err = setup.verify(
        "--witness", str(setup.vkey), "--witness-state", str(setup.witness_dir)
    )
    assert code == 1
    assert f"the witness's latest cosigned checkpoint at size {witnessed} does not match" in err
    state = setup.state()
    with running_gateway(setup.settings) as gateway:
        code, _, err = setup.witness(gateway)
        assert code == 1
        assert f"fork: the log's checkpoint at size {witnessed} has root" in err
        disclose(gateway)
        code, _, err = setup.witness(gateway)
        assert code == 1
        assert "fork: the log at size" in err
    assert setup.state() == state


def test_init_makes_a_private_key_once_and_never_inside_the_gateway(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    state = tmp_path / "dpo" / "w"

    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [*args, "--var-dir", str(settings.var_dir)])
        return result.exit_code, result.stdout, result.stderr

    code, out, err = cli("witness", "init", "--state", str(state), "--name", "dpo.example/w1")
    assert code == 0, err
    assert out.startswith("dpo.example/w1+")
    assert (state / VERIFIER_KEY_FILE).read_text() == out
    assert (state / "witness.key").stat().st_mode & 0o777 == 0o600
    key = (state / "witness.key").read_bytes()
    code, _, err = cli("witness", "init", "--state", str(state))
    assert code == 2
    assert "exists already" in err
    assert (state / "witness.key").read_bytes() == key
    inside = settings.var_dir / "witness"
    for command in (("witness", "init"), ("witness", "run")):
        code, _, err = cli(*command, "--state", str(inside))
        assert code == 2
        assert "inside the gateway's state directory" in err
    assert not inside.exists()
    code, _, err = cli("witness", "init", "--state", str(tmp_path / "x"), "--name", "two words")
    assert code == 2
    assert "witness name" in err


def test_every_repeats_with_a_progress_line_per_round(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[float] = []

    class Stop(Exception):
        pass

    def sleep(seconds: float) -> None:  # a stand-in for the wait between rounds
        rounds.append(seconds)
        if len(rounds) == 2:
            raise Stop

    monkeypatch.setattr("gateway._cli_witness._wait", sleep)
    with running_gateway(setup.settings) as gateway:
        disclose(gateway)
        result = runner.invoke(
            app,
            [
                *("witness", "run", "--state", str(setup.witness_dir)),
                *("--log-key", str(setup.log_vkey), "--url", gateway.base_url),
                *("--every", "5", "--var-dir", str(setup.settings.var_dir)),
            ],
        )
    assert isinstance(result.exception, Stop)
    assert rounds == [5.0, 5.0]
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "cosigned size" in lines[0]
    assert "no new checkpoint" in lines[1]
