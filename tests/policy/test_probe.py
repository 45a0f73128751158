"""The start-up probe: a policy set that decides no ordinary request does not start.

Such a policy compiles, and would then fail every request closed with a 503. The engine
decides the probe inputs (one ordinary request per purpose, one for a purpose the
register lacks) before the gateway serves, and a failure names its cause. The whole
Runtime.start path is in tests/test_start_up.py.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy import EmbeddedEngine, compile_bundle
from gateway.policy.bundle import PolicyBundle
from gateway.policy.probe import probe_inputs
from tests.policy.policy_support import CONNECTORS, NOW, POLICIES, REPO, demo_catalog, real_bundle

DECISION = (
    'decision := {"allow": false, "reasons": ["no"], "field_ops": {}, "retention_days": 0,'
    ' "legal_basis": ""}'
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(CONNECTORS, REPO / "var")


def bundle_of(tmp_path: Path, rego: str) -> PolicyBundle:
    policies = tmp_path / "policies"
    (policies / "doelpoort").mkdir(parents=True)
    shutil.copy(POLICIES / "register.yaml", policies / "register.yaml")
    (policies / "doelpoort" / "disclosure.rego").write_text(
        f"package doelpoort.disclosure\n\nimport rego.v1\n\n{rego}\n", encoding="utf-8"
    )
    return compile_bundle(policies, demo_catalog())


def probe(bundle: PolicyBundle, catalog: Catalog) -> None:
    async def run() -> None:
        engine = EmbeddedEngine(bundle)
        try:
            await engine.probe(probe_inputs(bundle.register, catalog, NOW))
        finally:
            await engine.aclose()

    asyncio.run(run())


def test_the_probe_inputs_are_ordinary_requests(catalog: Catalog) -> None:
    inputs = dict(probe_inputs(real_bundle().register, catalog, NOW))
    assert list(inputs) == [
        "aivd asking ct-assessment for ind/residence",
        "dji asking vertrek for ind/residence",
        "voorbeeldbank asking tf-screening for fiu/transactions",
        "fiod asking pnr-request for kmar/passenger-records",
        "aivd asking no-such-purpose, not in the register",
    ]
    asked: dict[str, Any] = inputs["voorbeeldbank asking tf-screening for fiu/transactions"]
    assert asked["requester"] == {"id": "voorbeeldbank", "roles": ["fec-obliged-entity"]}
    assert asked["dataset"]["id"] == "fiu/transactions"
    first_key = catalog.datasets["fiu/transactions"].identity_keys[0]
    assert asked["subject_keys"] == sorted(first_key)
    assert inputs["aivd asking no-such-purpose, not in the register"]["dataset"]["id"] == ""
    # A subject the purpose's facts hold for, so the allowing path is the one probed.
    assert inputs["dji asking vertrek for ind/residence"]["subject_facts"] == {
        "no_lawful_residence": True
    }
    assert asked["subject_facts"] == {}


def test_the_demo_policy_allows_every_probe_of_a_registered_purpose(catalog: Catalog) -> None:
    async def run() -> list[bool]:
        engine = EmbeddedEngine(real_bundle())
        try:
            inputs = probe_inputs(real_bundle().register, catalog, NOW)
            return [(await engine.decide(document)).allow for _label, document in inputs]
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == [True, True, True, True, False]


def test_the_demo_policy_passes_the_probe(catalog: Catalog) -> None:
    probe(real_bundle(), catalog)


@pytest.mark.parametrize(
    ("rego", "cause"),
    [
        pytest.param(
            "something_else := 1",
            "the policy set has no rule doelpoort/disclosure/decision",
            id="no-decision-rule",
        ),
        pytest.param(
            f"{DECISION} if input.purpose == 'nothing'".replace("'", '"'),
            "the policy gave no decision (undefined)",
            id="undefined",
        ),
        pytest.param(
            f'{DECISION} if {{ sprintff("%s", [input.purpose]) }}',
            "the policy raised an error: Function not found: sprintff (wellformed_error)",
            id="misspelt-built-in",
        ),
        pytest.param(
            f"{DECISION} if {{ 1 / (count(input.subject_keys) - 1) }}",
            "the policy raised an error: divide by zero (eval_builtin_error)",
            id="built-in-error",
        ),
        pytest.param(
            DECISION.replace('"field_ops": {}', '"field_op": {}'),
            "the decision lacks field_ops",
            id="wrong-shape",
        ),
    ],
)
def test_a_policy_that_decides_no_probe_input_stops_start_up(
    tmp_path: Path, catalog: Catalog, rego: str, cause: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        probe(bundle_of(tmp_path, rego), catalog)
    assert caught.value.detail == (
        "the policy gives no valid decision for a probe input"
        f" (aivd asking ct-assessment for ind/residence): {cause}"
    )


def test_a_policy_failing_only_for_a_purpose_the_register_lacks_stops_start_up(
    tmp_path: Path, catalog: Catalog
) -> None:
    # The pipeline asks about such requests too (with no dataset), to log the refusal.
    rego = f'{DECISION} if input.dataset.id != ""'
    with pytest.raises(ConfigurationError, match=r"\(aivd asking no-such-purpose, not in the"):
        probe(bundle_of(tmp_path, rego), catalog)


@pytest.mark.parametrize(
    ("source", "declared"),
    [
        ("package doelpoort.disclosure\n\ndecision := 1\n", True),
        ("package doelpoort.disclosure\n\ndefault decision := 1\n", True),
        ("package doelpoort.disclosure\nimport rego.v1\ndecision if true\n", True),
        ("package doelpoort\n\ndisclosure.decision := 1\n", True),  # a ref head
        ("package doelpoort.disclosure\n\ndecisions := 1\n", False),
        ("package doelpoort.disclosure\n\n# decision := 1\n", False),
        ("package doelpoort.disclosure\n\nx := `\ndecision := 1`\n", False),
        ("package doelpoort.other\n\ndecision := 1\n", False),
    ],
)
def test_declares_entrypoint(source: str, declared: bool) -> None:
    bundle = PolicyBundle(
        digest="sha256:x",
        entrypoint="doelpoort/disclosure/decision",
        modules=(("p.rego", source),),
        data={},
        register=real_bundle().register,
    )
    assert bundle.declares_entrypoint() is declared
