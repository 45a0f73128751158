"""``doelpoort policy check``: each mistake a policy author makes is caught, where it is.

Every case copies the shipped policy set, makes one mistake in it and expects the
finding at the file and line of the mistake (found in the edited text, not hard-coded).
The mistakes of issue 13 — ``not role_grantd``, ``data.registr``, ``denny contains``,
``input.dataset.domian``, ``sprintff`` — compile and run in regopy; the checker refuses
them. The shipped policies, and valid Rego of every construct the checker reads, give no
finding.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from regopy import Interpreter
from typer.testing import CliRunner

from gateway._cli import app
from gateway.connectors.catalog import Catalog
from gateway.policy.check import CODES, Finding, check_policy_set
from gateway.policy.input import build_policy_input, dataset_input
from gateway.policy.probe import probe_inputs
from gateway.policy.register import Register
from gateway.policy.rego_ast import AstUnreadable, parse_module, read_tree
from gateway.policy.rego_check import RegoModule, check_modules
from gateway.policy.shapes import input_schema, register_shape
from tests.policy.policy_support import CONNECTORS, NOW, POLICIES, REPO

DENY = "doelpoort/deny.rego"
DISCLOSURE = "doelpoort/disclosure.rego"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    catalog = Catalog.load(CONNECTORS, tmp_path_factory.mktemp("var"))
    yield catalog
    asyncio.run(catalog.aclose())


def policy_set(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> tuple[Path, dict[str, int]]:
    """A copy of the shipped policies with ``file: (old, new)`` replaced once each; and
    the line each replacement starts on."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    lines = {}
    for name, (old, new) in edits.items():
        path = policies / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        assert old in text, f"{old!r} is not in {name}"
        at = text.index(old) if old else len(text)
        path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
        lines[name] = text[:at].count("\n") + 1
    return policies, lines


def codes(findings: list[Finding]) -> list[tuple[str, int | None, str]]:
    return [(f.path, f.line, f.code) for f in findings]


def test_the_shipped_policies_are_clean(catalog: Catalog) -> None:
    assert check_policy_set(POLICIES, catalog, now=NOW) == []


# --- the mistakes of issue 13 ------------------------------------------------------------


def test_a_misspelt_rule_reference(tmp_path: Path, catalog: Catalog) -> None:
    policies, line = policy_set(tmp_path, {DENY: ("\tnot role_granted\n", "\tnot role_grantd\n")})
    findings = check_policy_set(policies, catalog, now=NOW)
    assert codes(findings) == [(DENY, line[DENY], "undefined-ref")]
    assert findings[0].column == 6
    assert "role_grantd is not defined" in findings[0].message
    assert str(findings[0]).startswith(f"{DENY}:{line[DENY]}:6: role_grantd is not defined")


def test_a_misspelt_data_document(tmp_path: Path, catalog: Catalog) -> None:
    policies, line = policy_set(
        tmp_path, {DISCLOSURE: ("purpose := data.register.", "purpose := data.registr.")}
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert (DISCLOSURE, line[DISCLOSURE], "unknown-data") in codes(findings)
    unknown = next(f for f in findings if f.code == "unknown-data")
    assert "data has no registr" in unknown.message
    # The rule that reads it can never be defined, which denies every request.
    assert (DISCLOSURE, line[DISCLOSURE], "never-defined") in codes(findings)


def test_a_misspelt_rule_head(tmp_path: Path, catalog: Catalog) -> None:
    policies, line = policy_set(
        tmp_path,
        {
            DENY: (
                'deny contains sprintf("purpose %s excludes %s data", [',
                'denny contains sprintf("purpose %s excludes %s data", [',
            )
        },
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert codes(findings) == [(DENY, line[DENY], "unreachable")]
    assert "rule denny is never read" in findings[0].message


def test_a_misspelt_input_path(tmp_path: Path, catalog: Catalog) -> None:
    policies, line = policy_set(
        tmp_path,
        {
            DENY: (
                "\tinput.dataset.domain in purpose.excluded_domains",
                "\tinput.dataset.domian in purpose.excluded_domains",
            )
        },
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert (DENY, line[DENY], "unknown-input") in codes(findings)
    assert (DENY, line[DENY] - 1, "never-defined") in codes(findings)  # the rule's head
    unknown = next(f for f in findings if f.code == "unknown-input")
    assert "input.dataset has no key domian" in unknown.message


def test_a_misspelt_built_in(tmp_path: Path, catalog: Catalog) -> None:
    policies, line = policy_set(
        tmp_path,
        {
            DENY: (
                'deny contains sprintf("purpose %s requires',
                'deny contains sprintff("purpose %s requires',
            )
        },
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert (DENY, line[DENY], "unknown-builtin") in codes(findings)
    assert (DENY, line[DENY], "never-defined") in codes(findings)


# --- the other checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "code", "says"),
    [
        pytest.param(
            DISCLOSURE,
            "legal_basis := purpose.legal_basis",
            "legal_basis := purpose.legal_basi",
            "unknown-data",
            "has no key legal_basi",
            id="register-key-through-a-rule",
        ),
        pytest.param(
            DENY,
            "\tf.category in purpose.excluded_categories",
            "\tf.catgory in purpose.excluded_categories",
            "unknown-key",
            "has no key catgory",
            id="key-of-a-rule-built-object",
        ),
        pytest.param(
            DISCLOSURE,
            "\t\tis_string(spec.type)",
            "\t\tis_string(spec.tpye)",
            "unknown-input",
            "has no key tpye",
            id="input-key-of-an-every-variable",
        ),
        pytest.param(
            DISCLOSURE,
            "\tname := op_name(op)",
            "\tname := op_nam(op)",
            "unknown-builtin",
            "op_nam is not a built-in",
            id="misspelt-function",
        ),
        pytest.param(
            DISCLOSURE,
            "op_name(op) :=",
            "op_name(a, b) := a\n\nop_name(op) :=",
            "conflict",
            "different numbers of arguments",
            id="function-arities",  # rego-cpp crashes compiling this: never compiled
        ),
        pytest.param(
            DENY,
            "\tnot well_formed_input\n",
            "\tnot well_formed_input\n\tx := \n",
            "syntax",
            "",
            id="syntax",
        ),
    ],
)
def test_each_mistake_is_found_where_it_is(
    tmp_path: Path, catalog: Catalog, file: str, old: str, new: str, code: str, says: str
) -> None:
    policies, line = policy_set(tmp_path, {file: (old, new)})
    findings = check_policy_set(policies, catalog, now=NOW)
    found = [f for f in findings if f.code == code]
    assert found, findings
    assert found[0].path == file
    assert found[0].line is not None
    assert line[file] <= found[0].line <= line[file] + new.count("\n") + 1
    assert says in found[0].message


def test_a_rule_whose_condition_is_constant_false_is_reported_at_its_head(
    tmp_path: Path, catalog: Catalog
) -> None:
    policies, line = policy_set(
        tmp_path,
        {
            DENY: (
                'deny contains "the policy input is malformed" if {\n',
                'deny contains "the policy input is malformed" if {\n\t1 == 2\n',
            )
        },
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert codes(findings) == [(DENY, line[DENY], "never-defined")]
    assert f"its condition is always false (line {line[DENY] + 1})" in findings[0].message


@pytest.mark.parametrize(
    ("edit", "code", "says"),
    [
        pytest.param(
            (
                "    legal_basis: Vreemdelingenwet 2000; Landelijk Afstemmingsoverleg Vertrek"
                " (LAOV)\n",
                "",
            ),
            "register",
            "purpose vertrek: legal_basis is required",
            id="no-legal-basis",
        ),
        pytest.param(
            ("    retention_days: 730\n", ""),
            "register",
            "purpose vertrek: retention_days is required",
            id="no-retention",
        ),
        pytest.param(
            ("facility: keep", "facility: shred"),
            "register",
            "shred",
            id="op-no-operator-implements",
        ),
        pytest.param(
            ("expected_release: keep", "expected_releas: keep"),
            "catalog",
            "field expected_releas is not a field of the dataset",
            id="field-the-catalog-lacks",
        ),
        pytest.param(
            ("      dji/detention:\n", "      dji/detentoin:\n"),
            "catalog",
            "the connector catalog has no such dataset",
            id="dataset-the-catalog-lacks",
        ),
        pytest.param(
            ("requesters: [aivd, nctv, politie, om]", "requesters: [aivd, nctv, politei, om]"),
            "catalog",
            "requester politei is not a partner",
            id="requester-the-catalog-lacks",
        ),
    ],
)
def test_register_mistakes_are_findings(
    tmp_path: Path, catalog: Catalog, edit: tuple[str, str], code: str, says: str
) -> None:
    policies, _ = policy_set(tmp_path, {"register.yaml": edit})
    findings = check_policy_set(policies, catalog, now=NOW)
    assert [f.code for f in findings] == [code]
    assert findings[0].path == "register.yaml"
    assert says in findings[0].message


def test_a_policy_that_fails_an_ordinary_request_is_found_by_the_probe(
    tmp_path: Path, catalog: Catalog
) -> None:
    # Statically sound, but a division by zero errors on every request.
    policies, _ = policy_set(
        tmp_path,
        {
            DENY: (
                "\tnot well_formed_input\n}\n",
                '\tnot well_formed_input\n}\n\ndeny contains "never" if {\n'
                "\tcount(input.requester.roles) / 0 == 1\n}\n",
            )
        },
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    assert [f.code for f in findings] == ["probe"]
    assert "no valid decision for a probe input" in findings[0].message


def test_no_entrypoint(tmp_path: Path, catalog: Catalog) -> None:
    policies, _ = policy_set(
        tmp_path,
        {DISCLOSURE: ('decision := {\n\t"allow": true,', 'decisions := {\n\t"allow": true,')},
    )
    text = (policies / DISCLOSURE).read_text(encoding="utf-8")
    (policies / DISCLOSURE).write_text(
        text.replace("default decision :=", "default decisions :=").replace(
            'decision := {\n\t"allow": false,\n\t"reasons": sort',
            'decisions := {\n\t"allow": false,\n\t"reasons": sort',
        ),
        encoding="utf-8",
    )
    found = {f.code for f in check_policy_set(policies, catalog, now=NOW)}
    assert "no-entrypoint" in found
    assert "probe" in found


def test_test_modules_are_checked_but_need_not_be_reachable(
    tmp_path: Path, catalog: Catalog
) -> None:
    test_module = (
        "package doelpoort.checker_test\n\nimport rego.v1\n\n"
        "test_unknown_purpose_is_denied if {\n"
        '\tnot data.doelpoort.disclosure.decision.allow with input as {"purpose": "x"}\n'
        "}\n\n"
        "test_misspelt if {\n\tnot data.doelpoort.disclosure.decisoin.allow\n}\n"
    )
    policies, _ = policy_set(tmp_path, {"doelpoort/checker_test.rego": ("", test_module)})
    findings = check_policy_set(policies, catalog, now=NOW)
    assert codes(findings) == [("doelpoort/checker_test.rego", 10, "unknown-data")]


# --- valid Rego: no false findings -----------------------------------------------------------

CONSTRUCTS = (HERE / "constructs.rego").read_text(encoding="utf-8")


def _static(source: str, entry: tuple[str, ...] = ("constructs", "allow")) -> list[str]:
    module = RegoModule("constructs.rego", source, parse_module("constructs.rego", source))
    problems = check_modules([module], is_builtin=Interpreter().is_builtin, entrypoints=[entry])
    return [f"{p.code}: {p.message}" for p in problems]


def test_valid_constructs_give_no_finding() -> None:
    # every, some, comprehensions, functions, else, with, default, contains, ref heads,
    # object rules, imports of data and input, raw strings, patterns.
    assert _static(CONSTRUCTS) == []
    interpreter = Interpreter()  # and the engine evaluates it: it is valid Rego
    interpreter.add_module("constructs.rego", CONSTRUCTS)
    interpreter.add_data({"register": {"purposes": {"p": {"legal_basis": "b"}}}})
    interpreter.set_input(
        {
            "purpose": "p",
            "subject_keys": ["bsn"],
            "requester": {"roles": ["r"]},
            "dataset": {
                "fields": {"bsn": {"type": "string", "category": "identity"}},
                "identity_keys": [["bsn"]],
            },
            "subject_facts": {"p": True},
            "has_justification": False,
        }
    )
    answer = json.loads(str(interpreter.query("data.constructs")))["expressions"][0]
    assert answer["x"] == ["fallback"]
    assert answer["q"] == {"r": 5}


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('v.type != ""', 'v.tpye != ""', "v.tpye is not in the policy input"),
        ("spec.category |", "spec.categroy |", "spec.categroy is not in the policy input"),
        ('.legal_basis != ""', '.legal_basi != ""', "has no key legal_basi"),
        ("every key in ds.identity_keys", "every key in ds.identity_key", "no key identity_key"),
        ("\tone == 1\n", "\tone == 1\n\ttwo == 2\n", "two is not defined"),
        ("m.a == 1", "n.a == 1", "n is not defined"),
    ],
)
def test_mistakes_inside_those_constructs_are_found(old: str, new: str, says: str) -> None:
    assert old in CONSTRUCTS
    problems = _static(CONSTRUCTS.replace(old, new, 1))
    assert any(says in p for p in problems), problems


# --- the engine's syntax tree ------------------------------------------------------------------


def test_the_reader_fails_closed_on_a_tree_it_does_not_know() -> None:
    with pytest.raises(AstUnreadable):
        read_tree(b"(rego-module |0|12 [unexpected])")
    with pytest.raises(AstUnreadable):
        read_tree(b"(rego-var |0|99:short)")
    assert read_tree(b"(rego-var 3:_$0)").text == "_$0"


def test_a_syntax_error_names_its_line_and_column(tmp_path: Path, catalog: Catalog) -> None:
    policies, _ = policy_set(
        tmp_path,
        {DENY: ("package doelpoort.disclosure\n", "package doelpoort.disclosure\n\nx := \n")},
    )
    findings = check_policy_set(policies, catalog, now=NOW)
    # Only the syntax error: the rules of a module that does not parse are unknown, so
    # nothing is judged by them.
    assert [(f.path, f.code) for f in findings] == [(DENY, "syntax")]
    assert findings[0].line is not None
    lines = (policies / DENY).read_text(encoding="utf-8").splitlines()
    broken = lines.index("x := ") + 1
    assert broken <= findings[0].line <= broken + 2  # at the broken rule, or where it ends
    assert findings[0].column is not None


# --- the documents' shapes -----------------------------------------------------------------------


def test_the_input_builder_builds_what_the_schema_documents(catalog: Catalog) -> None:
    register = Register.load(POLICIES / "register.yaml")
    validator = jsonschema_rs.validator_for(input_schema())
    inputs = [policy_input for _label, policy_input in probe_inputs(register, catalog, NOW)]
    inputs.append(
        build_policy_input(
            requester_id="politie",
            roles=["ct-infobox"],
            purpose="ct-assessment",
            case_ref="CTI-2026-0042",
            has_justification=False,
            dataset=dataset_input(catalog.datasets["ind/residence"].policy_view()),
            subject_keys=["bsn", "name"],
            now=NOW,
        )
    )
    for policy_input in inputs:
        validator.validate(json.loads(json.dumps(policy_input)))
        assert set(policy_input) <= set(input_schema()["properties"])
    # and the schema refuses what the builder never makes
    with pytest.raises(jsonschema_rs.ValidationError):
        validator.validate({**inputs[0], "subject_values": {}})


def test_the_register_shape_holds_every_path_of_the_shipped_register() -> None:
    def walk(value: object, shape: object, where: str) -> None:
        from gateway.policy.shapes import Shape

        assert isinstance(shape, Shape), where
        if isinstance(value, dict):
            for key, below in value.items():
                walk(below, shape.key(key), f"{where}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, shape.key(0), f"{where}[]")

    data = Register.load(POLICIES / "register.yaml").as_data()
    walk(data, register_shape(), "data.register")
    # Optional keys are in the shape even where the shipped register leaves them out.
    grant = register_shape().key("purposes")
    assert not isinstance(grant, str)


def test_every_code_is_documented() -> None:
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"`{code}`" in architecture, code


# --- the command ------------------------------------------------------------------------------


def test_the_command_prints_findings_and_exits_1(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["policy", "check", "--policies", str(POLICIES)])
    assert clean.exit_code == 0, clean.output
    assert clean.output.strip().endswith("clean")

    policies, line = policy_set(tmp_path, {DENY: ("\tnot role_granted\n", "\tnot role_grantd\n")})
    result = runner.invoke(app, ["policy", "check", "--policies", str(policies)])
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(f"{policies / DENY}:{line[DENY]}:6: role_grantd is not defined")
    assert result.output.strip().endswith("1 finding")

    as_json = runner.invoke(app, ["policy", "check", "--policies", str(policies), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert report["clean"] is False
    assert report["findings"][0] == {
        "path": DENY,
        "line": line[DENY],
        "column": 6,
        "code": "undefined-ref",
        "message": report["findings"][0]["message"],
    }

    missing = runner.invoke(app, ["policy", "check", "--policies", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2


def test_the_register_file_is_what_the_finding_names(tmp_path: Path, catalog: Catalog) -> None:
    policies, _ = policy_set(tmp_path, {"register.yaml": ("purposes:\n", "purposes:\n  bad: 1\n")})
    register = yaml.safe_load((policies / "register.yaml").read_text(encoding="utf-8"))
    assert register["purposes"]["bad"] == 1
    findings = check_policy_set(policies, catalog, now=NOW)
    assert [(f.path, f.code) for f in findings] == [("register.yaml", "register")]
    assert not findings[0].message.startswith(str(policies))


def test_print_is_no_finding(tmp_path: Path, catalog: Catalog) -> None:
    # The engine evaluates print() (the test runner shows its output with -v), though it
    # is not among its listed built-ins.
    test_module = (
        "package doelpoort.printing_test\n\nimport rego.v1\n\n"
        'test_it_prints if {\n\tprint("purpose", input.purpose)\n\ttrue\n}\n'
    )
    policies, _ = policy_set(tmp_path, {"doelpoort/printing_test.rego": ("", test_module)})
    assert check_policy_set(policies, catalog, now=NOW) == []
