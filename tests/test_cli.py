"""The ``doelpoort`` command as an operator and a DPO use it."""

from __future__ import annotations

import asyncio
import json
import shlex
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner

from audit.store import AuditStore
from gateway._cli import app
from gateway.dev.demo import run_demo
from gateway.keys import load_log_key
from gateway.transport.pki_paths import PkiPaths
from tests.gateway_support import Deployment, make_settings, running_gateway

runner = CliRunner()


def test_setup_creates_state_once(tmp_path: Path) -> None:
    var = tmp_path / "var"
    first = runner.invoke(app, ["setup", "--var-dir", str(var)])
    assert first.exit_code == 0, first.output
    assert (var / "pki" / "ca.pem").exists()
    assert (var / "pki" / "partners" / "voorbeeldbank.pem").exists()
    assert (var / "pki" / "dpo" / "dpo.pem").exists()
    assert (var / "demo" / "subjects.json").exists()
    for key in ("master.key", "audit-log.key", "escrow.pub", "subject-ref.key"):
        assert f"created {var / 'keys' / key}" in first.output
    # The DPO's copies, in development only.
    assert f"created {var / 'dpo' / 'subject-ref.key'}" in first.output
    assert (var / "dpo" / "subject-ref.key").read_bytes() == (
        var / "keys" / "subject-ref.key"
    ).read_bytes()
    before = (var / "pki" / "ca.pem").read_bytes()
    second = runner.invoke(app, ["setup", "--var-dir", str(var)])
    assert second.exit_code == 0
    assert "created" not in second.output
    assert (var / "pki" / "ca.pem").read_bytes() == before


@pytest.mark.parametrize("command", [[], ["serve"], ["audit", "reidentify"]])
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    # Typer 0.29 printed a value placeholder after every flag ("--setup <bool>"), as if
    # a flag took a value; pyproject.toml keeps it out.
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output


def test_revoke_unknown_partner_is_a_clear_error(tmp_path: Path) -> None:
    var = tmp_path / "var"
    runner.invoke(app, ["pki", "init", "--var-dir", str(var)])
    result = runner.invoke(app, ["pki", "revoke", "nobody", "--var-dir", str(var)])
    assert result.exit_code == 1
    assert "nobody" in result.output
    assert "Traceback" not in result.output


def test_pki_revoke_says_what_it_revoked_and_what_was_revoked_already(tmp_path: Path) -> None:
    var = str(tmp_path / "var")
    assert runner.invoke(app, ["pki", "init", "--var-dir", var]).exit_code == 0
    paths = PkiPaths(tmp_path / "var" / "pki")
    politie = x509.load_pem_x509_certificate(paths.partner_cert("politie").read_bytes())
    kmar = x509.load_pem_x509_certificate(paths.partner_cert("kmar").read_bytes())

    first = runner.invoke(app, ["pki", "revoke", "politie", "--var-dir", var])
    assert first.exit_code == 0, first.output
    assert f"revoked partner politie (serial {politie.serial_number:x})" in first.output
    again = runner.invoke(app, ["pki", "revoke", "politie", "--var-dir", var])
    assert again.exit_code == 2
    assert f"already revoked (serial {politie.serial_number:x}); nothing changed" in again.output

    # As OpenSSL prints it: capitals, colons.
    hex_serial = f"{kmar.serial_number:X}"
    openssl_style = ":".join(hex_serial[i : i + 2] for i in range(0, len(hex_serial), 2))
    one = runner.invoke(app, ["pki", "revoke", "--serial", openssl_style, "--var-dir", var])
    assert one.exit_code == 0, one.output
    assert f"revoked certificate (serial {kmar.serial_number:x})" in one.output
    twice = runner.invoke(app, ["pki", "revoke", "--serial", hex_serial, "--var-dir", var])
    assert twice.exit_code == 2
    assert "already revoked" in twice.output


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        pytest.param([], 2, "give a partner or --serial", id="neither"),
        pytest.param(["politie", "--serial", "1f"], 2, "give a partner or --serial", id="both"),
        pytest.param(["--serial", "xyz"], 2, "positive hex number", id="not-hex"),
        pytest.param(["--serial", "0"], 2, "positive hex number", id="zero"),
        pytest.param(["--serial", "1f"], 1, "no certificate with serial 1f", id="unknown"),
    ],
)
def test_pki_revoke_takes_a_partner_or_a_serial(
    tmp_path: Path, args: list[str], code: int, said: str
) -> None:
    var = str(tmp_path / "var")
    assert runner.invoke(app, ["pki", "init", "--var-dir", var]).exit_code == 0
    result = runner.invoke(app, ["pki", "revoke", *args, "--var-dir", var], terminal_width=200)
    assert result.exit_code == code, result.output
    assert said in result.output
    assert "Traceback" not in result.output


def test_pki_init_records_an_older_pki_in_a_new_register(tmp_path: Path) -> None:
    var = tmp_path / "var"
    assert runner.invoke(app, ["pki", "init", "--var-dir", str(var)]).exit_code == 0
    (var / "pki" / "issued.jsonl").unlink()  # as a version without the register left it
    result = runner.invoke(app, ["pki", "init", "--var-dir", str(var)])
    assert result.exit_code == 0, result.output
    assert f"recorded {var / 'pki' / 'partners' / 'politie.pem'} in the issuance register" in (
        result.output
    )
    assert "made before the issuance register" in result.output


def test_a_command_that_cannot_run_says_why_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-connectors"
    empty.mkdir()
    monkeypatch.setenv("DOELPOORT_CONNECTORS_DIR", str(empty))
    result = runner.invoke(app, ["pki", "init", "--var-dir", str(tmp_path / "var")])
    assert result.exit_code == 1
    assert str(empty) in result.output
    assert "Traceback" not in result.output


def _not_a_database(var: Path) -> list[str]:
    make_settings(var).audit_db_path.write_bytes(b"not a database, just bytes" * 100)
    return ["audit", "verify", "--var-dir", str(var)]


def _var_dir_is_a_file(var: Path) -> list[str]:
    (var.parent / "a-file").write_text("x")
    return ["keys", "rotate", "--var-dir", str(var.parent / "a-file")]


def _seq_beyond_sqlite(var: Path) -> list[str]:
    settings = make_settings(var)
    AuditStore.open(
        settings.audit_db_path,
        log_key=load_log_key(settings.keys_dir),
        origin=settings.origin,
    ).close()
    key = str(var / "dpo" / "escrow.key")
    return [
        "audit", "reidentify", str(2**64), "--key", key, "--reason", "test",
        "--var-dir", str(var),
    ]  # fmt: skip


def _demo_without_subjects(var: Path) -> list[str]:
    (var / "demo" / "subjects.json").write_bytes(b"\xff\xfe not json")
    return ["demo", "--var-dir", str(var), "--url", "https://127.0.0.1:9"]


@pytest.mark.parametrize(
    "broken",
    [_not_a_database, _var_dir_is_a_file, _seq_beyond_sqlite, _demo_without_subjects],
    ids=lambda f: f.__name__,
)
def test_bad_state_or_arguments_get_a_message_not_a_traceback(tmp_path: Path, broken: Any) -> None:
    var = tmp_path / "var"
    assert runner.invoke(app, ["setup", "--var-dir", str(var)]).exit_code == 0
    result = runner.invoke(app, broken(var))
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_a_bad_environment_setting_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOELPOORT_PORT", "abc")
    result = runner.invoke(app, ["audit", "verify", "--var-dir", str(tmp_path / "var")])
    assert result.exit_code == 1
    assert "DOELPOORT_PORT" in result.output
    assert isinstance(result.exception, SystemExit)


def test_an_audit_url_is_refused_rather_than_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ignoring it would give each replica its own SQLite log: a forked audit trail.
    monkeypatch.setenv("DOELPOORT_AUDIT_URL", "postgresql://127.0.0.1/audit")
    result = runner.invoke(app, ["setup", "--var-dir", str(tmp_path / "var")])
    assert result.exit_code == 1
    assert "DOELPOORT_AUDIT_URL" in result.output
    assert not (tmp_path / "var").exists()


def test_revocation_verify_and_tamper_on_a_running_gateway(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    var = str(settings.var_dir)
    with running_gateway(settings) as gw:
        body = {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0100",
            "justification": "cli test",
            "subject": gw.subjects["ct_subject"],
        }
        assert gw.disclose("kmar", body).status_code == 200
        revoked = runner.invoke(app, ["pki", "revoke", "kmar", "--var-dir", var])
        assert revoked.exit_code == 0, revoked.output
        refused = gw.disclose("kmar", body)
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:doelpoort:problem:unauthenticated"
        assert gw.disclose("politie", body).status_code == 200
        old_cert = gw.paths.partner_cert("kmar").read_bytes()
        reissued = runner.invoke(app, ["pki", "reissue", "kmar", "--var-dir", var])
        assert reissued.exit_code == 0, reissued.output
        assert gw.paths.partner_cert("kmar").read_bytes() != old_cert
        assert gw.disclose("kmar", body).status_code == 200  # the new certificate works

    intact = runner.invoke(app, ["audit", "verify", "--var-dir", var])
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output

    with sqlite3.connect(settings.audit_db_path) as db:
        # An attacker with file access first removes the append-only guard.
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("UPDATE entries SET body = replace(body, 'kmar', 'ind') WHERE seq = 2")
    tampered = runner.invoke(app, ["audit", "verify", "--var-dir", var])
    assert tampered.exit_code != 0
    assert "seq 2" in tampered.output


def test_demo_plays_every_step_as_expected(gateway: Deployment) -> None:
    lines: list[str] = []
    code = asyncio.run(run_demo(gateway.settings, gateway.base_url, echo=lines.append))
    output = "\n".join(lines)
    assert code == 0, output
    assert "UNEXPECTED" not in output
    assert "synthetic" in output
    assert "denied" in output or "refused" in output

    # The demo's last hint, the DPO re-identifying a pseudonym, works as printed at once:
    # the entry was committed with the checkpoint that covers it.
    line = next(line for line in output.splitlines() if "audit reidentify" in line)
    command = shlex.split(line)
    args = [*command[1:], "--var-dir", str(gateway.settings.var_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert all(key.startswith("psn:") for key in json.loads(result.stdout)["pseudonyms"])


def test_demo_without_a_gateway_says_how_to_start_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    runner.invoke(app, ["setup", "--var-dir", str(settings.var_dir)])
    lines: list[str] = []
    code = asyncio.run(run_demo(settings, "https://127.0.0.1:9", echo=lines.append))
    assert code == 2
    assert "make run" in "\n".join(lines)


@pytest.mark.parametrize("command", ["setup", "keys init"])
@pytest.mark.parametrize("key", ["master.key", "audit-log.key", "receipts/current"])
def test_a_lost_key_of_a_deployment_with_an_audit_log_is_not_replaced(
    tmp_path: Path, command: str, key: str
) -> None:
    # A new master key would change every pseudonym, a new log key fork the log's
    # signatures, a new receipt key orphan every receipt: restored from a backup, or not.
    var = tmp_path / "var"
    assert runner.invoke(app, ["setup", "--var-dir", str(var)]).exit_code == 0
    make_settings(var).audit_db_path.write_bytes(b"")  # the deployment has served
    lost = var / "keys" / key
    lost.unlink()
    public_log_key = (var / "keys" / "audit-log.pub").read_bytes()
    result = runner.invoke(app, [*command.split(), "--var-dir", str(var)])
    assert result.exit_code == 1
    assert str(lost) in result.output
    assert "backup" in result.output
    assert "Traceback" not in result.output
    assert not lost.exists()
    assert (var / "keys" / "audit-log.pub").read_bytes() == public_log_key


def test_keys_init_creates_only_missing_keys(tmp_path: Path) -> None:
    var = tmp_path / "var"
    first = runner.invoke(app, ["keys", "init", "--var-dir", str(var)])
    assert first.exit_code == 0, first.output
    keys = var / "keys"
    master = (keys / "master.key").read_bytes()
    assert (keys / "audit-log.key").exists()
    assert list((keys / "receipts").glob("*.key"))
    assert not (var / "pki").exists()  # production keys only: no development PKI
    again = runner.invoke(app, ["keys", "init", "--var-dir", str(var)])
    assert again.exit_code == 0, again.output
    assert (keys / "master.key").read_bytes() == master
