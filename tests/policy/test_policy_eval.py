"""``doelpoort policy eval`` and its explanation (gateway.policy.explain)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway._cli import app
from gateway.policy import EmbeddedEngine
from gateway.policy.bundle import PolicyBundle
from gateway.policy.explain import explain
from gateway.settings import Settings
from tests.policy.logged_decisions import seed_log
from tests.policy.policy_support import (
    POLICIES,
    copy_policies,
    edit_register,
    policy_input,
    real_bundle,
)

runner = CliRunner()


def line_of(path: Path, pattern: str) -> int:
    """The line of the first match of ``pattern`` in ``path``: what the explanation must
    name, found independently of it."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"{pattern} not in {path}")


def register_line(purpose: str, dataset: str, field: str) -> int:
    lines = (POLICIES / "register.yaml").read_text(encoding="utf-8").splitlines()
    at = lines.index(f"  {purpose}:")
    at = lines.index(f"      {dataset}:", at)
    return next(i for i in range(at, len(lines)) if lines[i].startswith(f"          {field}:")) + 1


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["policy", "eval", *args])
    return result.exit_code, result.stdout, result.stderr


def write_input(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_eval_prints_the_decision_as_the_gateway_validates_it(tmp_path: Path) -> None:
    path = write_input(tmp_path, policy_input("dtv", "vertrek", "ind/residence"))
    code, out, err = run("--input", str(path), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["policy_digest"] == real_bundle().digest
    decision = shown["decision"]
    assert decision["allow"] is True
    assert decision["retention_days"] == 730
    assert decision["field_ops"]["name"] == "keep"
    assert "bsn" not in decision["field_ops"]
    assert shown["error"] is None


def test_explain_names_register_entries_and_rule_lines(tmp_path: Path) -> None:
    path = write_input(tmp_path, policy_input("dtv", "vertrek", "ind/residence"))
    code, out, err = run("--input", str(path), "--explain")
    assert code == 0, err
    field_ops = line_of(POLICIES / "doelpoort" / "disclosure.rego", r"^field_ops :=")
    name = register_line("vertrek", "ind/residence", "name")
    assert re.search(
        r"name +keep +from register.yaml purposes\.vertrek\.datasets\.ind/residence"
        rf"\.field_ops\.name \(line {name}\), set by field_ops in "
        rf"doelpoort/disclosure\.rego:{field_ops}",
        out,
    ), out
    assert re.search(r"bsn +dropped +not named by the register: dropped \(default deny\)", out)
    allow = line_of(POLICIES / "doelpoort" / "disclosure.rego", r'^\t"allow": true')
    assert f"decided by: decision in doelpoort/disclosure.rego:{allow - 1}" in out


def test_explain_names_the_deny_rules_of_a_refusal(tmp_path: Path) -> None:
    document = policy_input("dtv", "vertrek", "politie/incidents")
    code, out, err = run("--input", str(write_input(tmp_path, document)), "--explain", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["decision"]["allow"] is False
    deny = POLICIES / "doelpoort" / "deny.rego"
    excludes = line_of(deny, r"purpose %s excludes %s data\"")
    denials = {d["reason"]: d["rules"] for d in shown["explanation"]["denials"]}
    assert denials["purpose vertrek excludes police data"] == [
        f"deny in doelpoort/deny.rego:{excludes}"
    ]
    assert all(rules for rules in denials.values())
    assert {f["outcome"] for f in shown["explanation"]["fields"]} == {"refused"}
    assert shown["explanation"]["conditions"]["grant"] == "undefined"
    assert shown["explanation"]["traced"] is True


def test_explain_follows_the_policy_not_the_register_when_they_differ(tmp_path: Path) -> None:
    # A policy that masks every name whatever the register says: the explanation must say
    # the op came from the rule, and what the register said.
    candidate = copy_policies(tmp_path)
    rego = candidate / "doelpoort" / "disclosure.rego"
    text = rego.read_text(encoding="utf-8").replace(
        "field_ops := object.filter(grant_ops, object.keys(input.dataset.fields))",
        "field_ops := object.union(\n"
        "\tobject.filter(grant_ops, object.keys(input.dataset.fields)),\n"
        '\t{"name": "mask"},\n)',
    )
    rego.write_text(text, encoding="utf-8")
    path = write_input(tmp_path, policy_input("dtv", "vertrek", "ind/residence"))
    code, out, err = run("--input", str(path), "--explain", "--policies", str(candidate))
    assert code == 0, err
    line = line_of(rego, r"^field_ops :=")
    assert re.search(
        rf"name +mask +set by field_ops in doelpoort/disclosure\.rego:{line}; the register"
        r" says keep \(register\.yaml purposes\.vertrek",
        out,
    ), out


def test_explain_names_a_requesters_own_field_rule() -> None:
    # The register gives the NCTV its own op for amount_eur (requester_field_ops).
    bundle = real_bundle()
    document = policy_input("nctv", "ct-assessment", "fiu/transactions")
    decision = _decide(bundle, document)
    assert decision.field_ops["amount_eur"] == "drop"
    amount = {f.field: f for f in explain(bundle, document, decision).fields}["amount_eur"]
    assert amount.outcome == "dropped"
    assert amount.register is not None
    assert amount.register.path == (
        "purposes.ct-assessment.datasets.fiu/transactions.requester_field_ops.nctv.amount_eur"
    )
    assert amount.register.line == line_of(POLICIES / "register.yaml", r"^ +amount_eur: drop$")
    # Another requester gets the grant's own op, from its own entry.
    document = policy_input("politie", "ct-assessment", "fiu/transactions")
    decision = _decide(bundle, document)
    amount = {f.field: f for f in explain(bundle, document, decision).fields}["amount_eur"]
    assert (amount.outcome, amount.op) == ("released", "keep")
    assert amount.register is not None
    assert amount.register.path.endswith("fiu/transactions.field_ops.amount_eur")
    assert amount.register.line == register_line("ct-assessment", "fiu/transactions", "amount_eur")


def _decide(bundle: PolicyBundle, document: dict[str, Any]) -> Any:
    async def decide() -> Any:
        engine = EmbeddedEngine(bundle)
        try:
            return await engine.decide_fresh(document)
        finally:
            await engine.aclose()

    return asyncio.run(decide())


def test_an_input_that_is_no_json_object_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text("[1, 2]", encoding="utf-8")
    assert run("--input", str(path))[0] == 2
    path.write_text("{not json", encoding="utf-8")
    code, _, err = run("--input", str(path))
    assert code == 2
    assert "not a readable JSON policy input" in err
    # Nested deeper than the JSON parser's stack: unreadable too, not a traceback.
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    code, _, err = run("--input", str(path))
    assert code == 2
    assert err.strip() == f"{path}: not a readable JSON policy input (RecursionError)"
    assert run()[0] == 2  # neither --input nor --seq


def test_a_policy_that_gives_no_valid_decision_exits_1(tmp_path: Path) -> None:
    candidate = copy_policies(tmp_path)
    rule = candidate / "doelpoort" / "deny.rego"
    rule.write_text(
        rule.read_text(encoding="utf-8") + '\ndeny contains "x" if to_number("abc") > 0\n',
        encoding="utf-8",
    )
    document = policy_input("dtv", "vertrek", "ind/residence")
    path = write_input(tmp_path, document)
    code, out, _ = run("--input", str(path), "--policies", str(candidate), "--explain")
    assert code == 1
    assert "decision     error (policy-evaluation-error)" in out


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return seed_log(tmp_path_factory.mktemp("eval"))


def test_eval_seq_reproduces_every_logged_decision(logged: Settings) -> None:
    for seq in range(1, 15):
        code, out, err = run("--seq", str(seq), "--var-dir", str(logged.var_dir), "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["reproduced"] is True
        assert shown["logged"]["policy_digest"] == shown["policy_digest"]
    code, out, _ = run("--seq", "4", "--explain", "--var-dir", str(logged.var_dir))
    assert code == 0
    assert "entry 4: this reproduces the logged decision (allow)" in out
    assert "purposes.vertrek.datasets.ind/residence.field_ops.name" in out


def test_eval_seq_takes_the_set_that_made_the_entry_from_the_archive(
    logged: Settings, tmp_path: Path
) -> None:
    candidate = copy_policies(tmp_path)
    edit_register(candidate, lambda register: register["purposes"].pop("pnr-request"))
    args = ("--seq", "1", "--var-dir", str(logged.var_dir), "--policies", str(candidate))
    code, out, err = run(*args, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["reproduced"] is True
    assert shown["policy_digest"] == real_bundle().digest
    assert run("--seq", "99", "--var-dir", str(logged.var_dir))[0] == 2


def test_eval_seq_without_an_archived_set_refuses_another_policy_set(
    logged: Settings, tmp_path: Path
) -> None:
    # A log written before the archive existed: only the given set can explain it.
    var_dir = tmp_path / "var"
    shutil.copytree(logged.var_dir, var_dir)
    with sqlite3.connect(var_dir / logged.audit_db_path.name) as db:
        db.execute("DROP TABLE policy_sets")
    candidate = copy_policies(tmp_path / "candidate")
    edit_register(candidate, lambda register: register["purposes"].pop("pnr-request"))
    code, _, err = run("--seq", "1", "--var-dir", str(var_dir), "--policies", str(candidate))
    assert code == 1
    assert real_bundle().digest in err
    assert "--policies holds sha256:" in err
    code, _, err = run("--seq", "1", "--var-dir", str(var_dir))
    assert code == 0, err
