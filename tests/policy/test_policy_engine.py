"""EmbeddedEngine fails closed: every error path raises, none returns an allowing decision."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import (
    InvalidDecision,
    PolicyError,
    PolicyEvaluationError,
    PolicyUnavailable,
    UnknownOperator,
)
from gateway.policy import Decision, EmbeddedEngine, compile_bundle, decision_from_result
from gateway.policy.bundle import PolicyBundle
from tests.policy.policy_support import POLICIES, decider, demo_catalog, policy_input, real_bundle

ALLOW = """
package doelpoort.disclosure

import rego.v1

decision := {
	"allow": true,
	"reasons": [],
	"field_ops": %s,
	"retention_days": 30,
	"legal_basis": "test",
}
"""


def custom_bundle(tmp_path: Path, rego: str) -> PolicyBundle:
    """A policies/ dir with the real register and ``rego`` as its only policy."""
    policies = tmp_path / "policies"
    (policies / "doelpoort").mkdir(parents=True)
    shutil.copy(POLICIES / "register.yaml", policies / "register.yaml")
    (policies / "doelpoort" / "disclosure.rego").write_text(rego, encoding="utf-8")
    return compile_bundle(policies, demo_catalog())


def decide_with(bundle: PolicyBundle, *, timeout_s: float = 5.0) -> Decision:
    with decider(bundle, timeout_s=timeout_s) as decide:
        return decide("politie", "ct-assessment", "ind/residence")


def test_the_custom_allow_policy_works(tmp_path: Path) -> None:
    decision = decide_with(custom_bundle(tmp_path, ALLOW % '{"bsn": "mask:2"}'))
    assert decision.allow
    assert dict(decision.field_ops) == {"bsn": "mask:2"}


def test_a_runtime_error_in_the_policy_is_an_evaluation_error(tmp_path: Path) -> None:
    rego = (ALLOW % "{}") + 'decision := {"allow": false} if { input.action }\n'
    with pytest.raises(PolicyEvaluationError, match="raised an error"):
        decide_with(custom_bundle(tmp_path, rego))


@pytest.mark.parametrize(
    ("condition", "cause"),
    [
        ("100 / (count(input.subject_keys) - 1) >= 0", "divide by zero (eval_builtin_error)"),
        ("to_number(input.purpose) >= 0", "invalid syntax (eval_builtin_error)"),
    ],
    ids=["division-by-zero", "not-a-number"],
)
def test_a_built_in_error_in_a_deny_rule_denies_instead_of_switching_the_rule_off(
    tmp_path: Path, condition: str, cause: str
) -> None:
    # By default a built-in's error makes its expression undefined: the rule would quietly
    # never deny, and every other rule's allow would stand. It must stop the decision.
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.disclosure\n\nimport rego.v1\n\n"
        f'deny contains "an extra rule of a policy author" if {{ {condition} }}\n',
        encoding="utf-8",
    )
    with pytest.raises(PolicyEvaluationError) as caught:
        decide_with(compile_bundle(policies, demo_catalog()))
    assert caught.value.detail == f"the policy raised an error: {cause}"


def extra_rule(tmp_path: Path, rule: str) -> PolicyBundle:
    """The demo policies with one more rule in package doelpoort.disclosure."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "doelpoort" / "extra.rego").write_text(
        f"package doelpoort.disclosure\n\nimport rego.v1\n\n{rule}\n", encoding="utf-8"
    )
    return compile_bundle(policies, demo_catalog())


def test_a_misspelt_built_in_is_named_in_the_error_and_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # rego-cpp reports an unknown function as an "ok" answer holding an error; regopy's
    # Output then fails to parse it as JSON. The cause must come through, not that.
    bundle = extra_rule(tmp_path, 'deny contains sprintff("%s", [input.purpose]) if true')
    with (
        caplog.at_level(logging.ERROR, logger="doelpoort.policy"),
        pytest.raises(PolicyEvaluationError) as caught,
    ):
        decide_with(bundle)
    cause = "Function not found: sprintff (wellformed_error)"
    assert caught.value.detail == f"the policy raised an error: {cause}"
    logged = [r.getMessage() for r in caplog.records]
    assert any(cause in message for message in logged), logged
    assert not any("JSONDecodeError" in message for message in logged)


def test_a_built_in_never_prints_the_input(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # rego-cpp's JSON parser logs what it could not parse, value and all, unless told not
    # to log; the cause reaches the caller without it.
    bundle = extra_rule(tmp_path, 'deny contains "x" if json.unmarshal(input.case_ref)')
    document = policy_input("politie", "ct-assessment", "ind/residence")
    document["case_ref"] = "CTI-2026-0042 [not json"
    with decider(bundle) as decide, pytest.raises(PolicyEvaluationError, match="parse JSON"):
        decide.raw(document)
    out, err = capfd.readouterr()
    assert "not json" not in out + err


def test_conflicting_rule_values_are_an_evaluation_error(tmp_path: Path) -> None:
    rego = """
package doelpoort.disclosure

import rego.v1

level := 1 if input.action
level := 2 if input.action

decision := {"allow": true, "reasons": [], "field_ops": {}, "retention_days": level,
	"legal_basis": "test"}
"""
    with pytest.raises(PolicyEvaluationError, match="raised an error: complete rules must not"):
        decide_with(custom_bundle(tmp_path, rego))


def test_an_undefined_decision_is_an_evaluation_error(tmp_path: Path) -> None:
    rego = (ALLOW % "{}").replace('"legal_basis": "test",\n}', '"legal_basis": "test",\n} if false')
    with pytest.raises(PolicyEvaluationError, match="undefined"):
        decide_with(custom_bundle(tmp_path, rego))


def test_a_missing_entrypoint_is_an_evaluation_error(tmp_path: Path) -> None:
    rego = "package doelpoort.disclosure\n\nsomething_else := 1\n"
    with pytest.raises(PolicyEvaluationError):
        decide_with(custom_bundle(tmp_path, rego))


def test_an_unknown_op_is_an_error_never_a_pass_through(tmp_path: Path) -> None:
    bundle = custom_bundle(tmp_path, ALLOW % '{"bsn": "reveal", "name": "keep"}')
    with pytest.raises(UnknownOperator):
        decide_with(bundle)


@pytest.mark.parametrize(
    "ops",
    [
        '{"lawful_residence": "generalise:year"}',  # boolean
        '{"name": "generalise:municipality"}',  # string
        '{"address": "mask"}',  # address
        '{"bsn": "mask:99"}',
        '{"bsn": "keep:everything"}',
        '{"bsn": "generalise"}',
        '{"religion": "keep"}',  # not a field of ind/residence
        '{"bsn": 1}',
    ],
)
def test_an_op_that_does_not_fit_is_an_invalid_decision(tmp_path: Path, ops: str) -> None:
    with pytest.raises(InvalidDecision):
        decide_with(custom_bundle(tmp_path, ALLOW % ops))


GOOD: dict[str, Any] = {
    "allow": True,
    "reasons": [],
    "field_ops": {"bsn": "keep"},
    "retention_days": 1,
    "legal_basis": "x",
}


@pytest.mark.parametrize(
    "decision",
    [
        "allow",
        True,
        {**GOOD, "allow": "yes"},
        {k: v for k, v in GOOD.items() if k != "legal_basis"},
        {**GOOD, "reasons": "none"},
        {**GOOD, "field_ops": []},
        {**GOOD, "retention_days": 1.5},
        {**GOOD, "retention_days": 0},
        {**GOOD, "retention_days": True},
        {**GOOD, "retention_days": 10**15},  # the audit store counts in 64-bit seconds
        {**GOOD, "legal_basis": ""},
        {**GOOD, "field_op": {"name": "keep"}},  # a misspelt key is not ignored
    ],
)
def test_a_decision_of_the_wrong_shape_is_invalid(tmp_path: Path, decision: object) -> None:
    rego = f"package doelpoort.disclosure\n\ndecision := {json.dumps(decision)}\n"
    with pytest.raises(InvalidDecision):
        decide_with(custom_bundle(tmp_path, rego))


@pytest.mark.parametrize(
    "ops", ["{}", '{"bsn": "drop"}', '{"bsn": "drop", "name": "drop", "address": "drop"}']
)
def test_an_allow_that_releases_no_field_is_an_invalid_decision(tmp_path: Path, ops: str) -> None:
    # The safety net behind the policy's own rule: empty records would still tell the
    # requester that the subject is in the dataset.
    with pytest.raises(InvalidDecision, match="releases no field"):
        decide_with(custom_bundle(tmp_path, ALLOW % ops))


def test_a_denial_without_reasons_still_carries_one(tmp_path: Path) -> None:
    rego = (
        "package doelpoort.disclosure\n\ndecision := "
        '{"allow": false, "reasons": [], "field_ops": {"bsn": "whatever"}, '
        '"retention_days": 0, "legal_basis": ""}\n'
    )
    decision = decide_with(custom_bundle(tmp_path, rego))
    assert not decision.allow
    assert decision.reasons
    assert dict(decision.field_ops) == {}  # ops of a denial are never kept


SLOW = """
package doelpoort.disclosure

import rego.v1

decision := {"allow": true, "reasons": [], "field_ops": {}, "retention_days": n,
	"legal_basis": "slow"}

n := count([x |
	some a in numbers.range(1, 100)
	some b in numbers.range(1, 100)
	some c in numbers.range(1, 100)
	x := (a * b) * c
])
"""


def test_a_policy_that_takes_too_long_is_an_evaluation_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyEvaluationError, match="did not decide"):
        decide_with(custom_bundle(tmp_path, SLOW), timeout_s=0.01)


def test_a_closed_engine_is_unavailable() -> None:
    async def scenario() -> None:
        engine = EmbeddedEngine(real_bundle())
        assert engine.ready()
        await engine.aclose()
        assert not engine.ready()
        with pytest.raises(PolicyUnavailable):
            await engine.decide(policy_input("politie", "ct-assessment", "ind/residence"))

    asyncio.run(scenario())


def test_input_that_is_not_json_is_an_evaluation_error() -> None:
    document: dict[str, Any] = policy_input("politie", "ct-assessment", "ind/residence")
    document["time"] = object()
    with decider() as decide, pytest.raises(PolicyEvaluationError):
        decide.raw(document)


def test_input_strings_with_quotes_survive_the_engine() -> None:
    # regopy's own dict input does not escape quotes on the way out; ours must.
    document = policy_input("politie", 'ct-"assessment\\', "ind/residence")
    with decider() as decide:
        decision = decide.raw(document)
    assert decision.reasons == ('purpose ct-"assessment\\ is not in the register',)


def test_concurrent_decisions_on_several_threads_agree() -> None:
    inputs = [
        policy_input("politie", "ct-assessment", "ind/residence"),
        policy_input("ind", "ct-assessment", "fiu/transactions"),
        policy_input("voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"]),
    ] * 30

    async def scenario() -> list[Decision]:
        engine = EmbeddedEngine(real_bundle(), timeout_s=10.0, workers=4)
        try:
            return list(await asyncio.gather(*(engine.decide(i) for i in inputs)))
        finally:
            await engine.aclose()

    decisions = asyncio.run(scenario())
    for i in range(3, len(decisions)):
        assert decisions[i] == decisions[i % 3]
    assert [d.allow for d in decisions[:3]] == [True, False, True]


def test_decision_is_immutable() -> None:
    with decider() as decide:
        decision = decide("politie", "ct-assessment", "ind/residence")
    with pytest.raises(FrozenInstanceError):
        decision.allow = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        decision.field_ops["bsn"] = "keep"  # type: ignore[index]


def test_every_policy_error_is_a_policy_error() -> None:
    # The pipeline maps PolicyError to 503 and discloses nothing.
    for cls in (PolicyEvaluationError, InvalidDecision, UnknownOperator, PolicyUnavailable):
        assert issubclass(cls, PolicyError)


def test_decision_from_result_checks_ops_against_the_input_dataset() -> None:
    document = policy_input("politie", "ct-assessment", "ind/residence")
    good = {
        "allow": True,
        "reasons": [],
        "field_ops": {"date_of_birth": "generalise:month"},
        "retention_days": 1,
        "legal_basis": "x",
    }
    assert decision_from_result(good, document, "sha256:x").allow
    with pytest.raises(InvalidDecision):
        decision_from_result({**good, "field_ops": {"bsn": "keep"}}, {"dataset": {}}, "d")
