"""``doelpoort audit export``: a filtered selection to stdout or a file, in each format;
bad filters are one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway._cli import app
from gateway.keys import create_log_key, load_log_key
from gateway.settings import Settings
from tests.audit.log_builder import LogBuilder

runner = CliRunner()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings.from_env().with_var_dir(tmp_path / "var")
    create_log_key(settings.keys_dir)
    log = LogBuilder()
    log.request("2026-02-02T10:00:00Z", requester="politie")
    log.request(
        "2026-03-03T10:00:00Z",
        requester="nctv",
        decisions=(("ind", "ind/residence", "allow"), ("fiu", "fiu/transactions", "deny")),
    )
    log.refusal("2026-04-04T10:00:00Z", "dji", "unknown-dataset")
    log.write(settings.audit_db_path, load_log_key(settings.keys_dir), settings.origin)
    return settings


def export(settings: Settings, *args: str) -> tuple[int, str, str]:
    var_dir = str(settings.var_dir)
    result = runner.invoke(app, ["audit", "export", *args, "--var-dir", var_dir])
    return result.exit_code, result.stdout, result.stderr


def test_jsonl_to_stdout_with_a_filter(settings: Settings) -> None:
    code, out, err = export(settings, "--format", "jsonl", "--requester", "nctv")
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["seq"], e["decision"]) for e in entries] == [(2, "allow"), (3, "deny")]


def test_csv_to_a_file_for_a_period(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    code, out, err = export(
        settings,
        "--format",
        "csv",
        "--since",
        "2026-03-01",
        "--until",
        "2026-04-05",
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(), newline="")))
    assert [(row["seq"], row["kind"]) for row in rows] == [
        ("2", "decision"),
        ("3", "decision"),
        ("4", "refusal"),
    ]
    assert f"wrote {target} (csv)" in err


def test_logboek_records_of_the_refusals(settings: Settings) -> None:
    code, out, err = export(settings, "--format", "logboek", "--decision", "refused")
    assert code == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["name"] == "refused-request"
    assert record["status"] == "Unset"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "--format must be jsonl, csv or logboek"),
        (["--format", "csv", "--since", "last week"], "since must be an RFC 3339 time"),
        (["--format", "csv", "--decision", "maybe"], "decision must be one of"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    settings: Settings, args: list[str], message: str
) -> None:
    code, out, err = export(settings, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""
