"""``doelpoort policy diff | show | list`` on the archive a real gateway wrote.

A gateway serves a disclosure with the demo policy set A; then the deployment grants the
bank the police's role, lengthens a retention and edits a rule, and the gateway starts
again with set B. The DPO's tools read the real SQLite log read-only.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from audit.policy_sets import encode_policy_set, policy_digest
from audit.reader import AuditReader
from gateway._cli import app
from gateway.connectors.catalog import Catalog
from gateway.policy.bundle import read_policy_set
from gateway.runtime import Runtime
from tests.gateway_support import copy_tree, make_settings, running_gateway

runner = CliRunner()


@dataclass(frozen=True)
class Archive:
    db: Path
    a: str
    b: str
    policies_a: Path
    connectors_a: Path
    policies_b: Path
    connectors_b: Path
    entry_digests: list[str]


def _grant_the_bank_police_data(connectors: Path) -> None:
    path = connectors / "voorbeeldbank.yaml"
    partner = yaml.safe_load(path.read_text(encoding="utf-8"))
    partner["roles"].append("police")
    path.write_text(yaml.safe_dump(partner, sort_keys=False), encoding="utf-8")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    root = tmp_path_factory.mktemp("deployment")
    policies_a, connectors_a = (
        copy_tree("policies", root / "a"),
        copy_tree("connectors", root / "a"),
    )
    settings = make_settings(root / "var", policies_dir=policies_a, connectors_dir=connectors_a)
    with running_gateway(settings) as gw:
        body = {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0100",
            "justification": "policy diff test",
            "subject": gw.subjects["ct_subject"],
        }
        assert gw.disclose("politie", body).status_code == 200

    policies_b, connectors_b = (
        copy_tree("policies", root / "b"),
        copy_tree("connectors", root / "b"),
    )
    _grant_the_bank_police_data(connectors_b)
    _edit(policies_b / "register.yaml", "retention_days: 365", "retention_days: 366")
    _edit(policies_b / "doelpoort" / "deny.rego", "\n", "\n# reviewed\n")

    async def start_b() -> None:
        runtime = await Runtime.start(
            settings.replace(policies_dir=policies_b, connectors_dir=connectors_b)
        )
        await runtime.close()

    asyncio.run(start_b())
    with AuditReader(settings.audit_db_path) as log:
        digests = [json.loads(entry.body)["policy_digest"] for entry in log.iter_entries()]
        archived = [found.digest for found in log.policy_sets()]
    a, b = archived  # in the order they were first used
    return Archive(
        db=settings.audit_db_path,
        a=a,
        b=b,
        policies_a=policies_a,
        connectors_a=connectors_a,
        policies_b=policies_b,
        connectors_b=connectors_b,
        entry_digests=digests,
    )


def policy(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["policy", *map(str, args)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_every_decision_names_an_archived_set_the_gateway_archived_before_serving(
    archive: Archive,
) -> None:
    assert archive.entry_digests
    assert set(archive.entry_digests) == {archive.a}
    code, out, _ = policy("list", "--audit-db", archive.db)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [archive.a, archive.b]
    assert all("first used 20" in line for line in lines)
    code, out, _ = policy("list", "--json", "--audit-db", archive.db)
    assert [found["digest"] for found in json.loads(out)] == [archive.a, archive.b]


def test_a_directory_and_the_set_archived_from_it_are_identical(archive: Archive) -> None:
    code, out, err = policy(
        "diff", archive.a, archive.policies_a, "--connectors", archive.connectors_a,
        "--audit-db", archive.db,
    )  # fmt: skip
    assert (code, out) == (0, ""), err
    assert "identical" in err
    code, out, _ = policy("diff", archive.b, archive.b, "--audit-db", archive.db)
    assert (code, out) == (0, "")


def test_diff_shows_the_role_the_retention_and_the_rule_that_changed(archive: Archive) -> None:
    code, out, err = policy("diff", archive.a, archive.b, "--audit-db", archive.db)
    assert code == 1
    assert "--- a/catalog.json\t" + archive.a in out
    assert "+++ b/catalog.json\t" + archive.b in out
    # The catalog is shown indented: the granted role is a line of its own.
    assert '+        "police"' in out.splitlines()
    assert "-    retention_days: 365" in out.splitlines()
    assert "+# reviewed" in out.splitlines()
    assert "changed: catalog.json, doelpoort/deny.rego, register.yaml" in err
    assert "added" not in err
    assert "removed" not in err
    # A unique prefix of a digest names it too.
    assert policy("diff", archive.a[:15], archive.b[7:20], "--audit-db", archive.db)[1] == out


def test_diff_of_two_directories_needs_no_audit_log(archive: Archive, tmp_path: Path) -> None:
    policies = copy_tree("policies", tmp_path)
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.extra\n\nx := 1\n", encoding="utf-8"
    )
    (policies / "doelpoort" / "extra_test.rego").write_text("not policy\n", encoding="utf-8")
    code, out, err = policy(
        "diff", archive.policies_a, policies, "--connectors", archive.connectors_a,
        "--audit-db", tmp_path / "none.sqlite3",
    )  # fmt: skip
    assert code == 1, err
    assert "--- /dev/null" in out
    assert "+++ b/doelpoort/extra.rego" in out
    assert "extra_test.rego" not in out + err
    assert "added: doelpoort/extra.rego" in err
    code, _, err = policy(
        "diff", policies, archive.policies_a, "--connectors", archive.connectors_a,
        "--audit-db", tmp_path / "none.sqlite3",
    )  # fmt: skip
    assert code == 1
    assert "removed: doelpoort/extra.rego" in err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sha256:" + "0" * 64, "holds no policy set sha256:" + "0" * 64),
        ("00000000", "no archived policy set"),
        ("no-such-thing", "neither a policy digest"),
    ],
)
def test_an_unknown_set_is_one_line_and_exit_status_2(
    archive: Archive, name: str, message: str
) -> None:
    code, out, err = policy("diff", archive.a, name, "--audit-db", archive.db)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_no_audit_log_is_exit_status_2(archive: Archive, tmp_path: Path) -> None:
    missing = tmp_path / "audit.sqlite3"
    for args in (["diff", archive.a, archive.b], ["show", archive.a], ["list"]):
        code, _, err = policy(*args, "--audit-db", missing)
        assert code == 2
        assert f"no audit log at {missing}" in err
    assert not missing.exists()  # a reader never makes one


def test_show_prints_and_extracts_the_exact_text(archive: Archive, tmp_path: Path) -> None:
    catalog = Catalog.load(archive.connectors_b, tmp_path)
    files = dict(read_policy_set(archive.policies_b, catalog))
    code, out, _ = policy("show", archive.b, "--audit-db", archive.db)
    assert code == 0
    assert f"==> register.yaml <==\n{files['register.yaml']}" in out
    assert f"==> catalog.json <==\n{files['catalog.json']}\n" in out

    target = tmp_path / "shown"
    code, _, err = policy("show", archive.b[:20], "--output", target, "--audit-db", archive.db)
    assert code == 0, err
    written = {
        path.relative_to(target).as_posix(): path.read_text(encoding="utf-8")
        for path in target.rglob("*")
        if path.is_file()
    }
    assert written == files
    assert policy_digest(written.items()) == archive.b
    # Never over what is there.
    code, _, err = policy("show", archive.b, "--output", target, "--audit-db", archive.db)
    assert code == 2
    assert "not an empty directory" in err
    # A directory is not a digest, for show.
    code, _, err = policy("show", str(archive.policies_b), "--audit-db", archive.db)
    assert code == 2


def test_a_changed_archived_set_is_refused(archive: Archive, tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    with sqlite3.connect(archive.db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER policy_sets_no_update")
        conn.execute(
            "UPDATE policy_sets SET sources = replace(sources, 'retention_days: 365', "
            "'retention_days: 3650') WHERE digest = ?",
            (archive.a,),
        )
    conn.close()
    code, out, err = policy("show", archive.a, "--audit-db", db)
    assert code == 1
    assert out == ""
    assert f"the archived policy set {archive.a} does not match its digest" in err
    code, out, err = policy("diff", archive.a, archive.b, "--audit-db", db)
    assert (code, out) == (2, "")
    assert "does not match its digest" in err
    assert policy("show", archive.b, "--audit-db", db)[0] == 0  # the other set is intact


@pytest.mark.parametrize("path", ["../outside.rego", "/etc/outside.rego", "a/../../x.rego", ""])
def test_show_writes_nothing_outside_its_directory(
    archive: Archive, tmp_path: Path, path: str
) -> None:
    # Whoever can write the log can archive a set of their own making under its true
    # digest; its paths are not trusted to stay inside --output.
    db = tmp_path / "audit.sqlite3"
    with sqlite3.connect(archive.db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    files = {path: "package evil\n", "register.yaml": "purposes: {}\n"}
    digest = policy_digest(files.items())
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO policy_sets VALUES (?, ?, '2026-01-01T00:00:00Z')",
            (digest, encode_policy_set(files.items()).decode()),
        )
    conn.close()
    target = tmp_path / "out" / "shown"
    code, _, err = policy("show", digest, "--output", target, "--audit-db", db)
    assert code == 2
    assert "outside its directory" in err
    assert not (tmp_path / "out").exists()
