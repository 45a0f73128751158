"""Purposes that require facts about the subject (vertrek: no lawful residence).

The input says only whether each required fact holds; the policy refuses a subject a
required fact does not hold for with one reason, the same whether the subject is
unknown to the dataset that declares the fact (the gateway then says false) or known
and ineligible, and the same whichever fact failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import compile_bundle
from tests.policy.policy_support import Decider, copy_policies, decider, demo_catalog, edit_register

NOT_MET = "the subject does not meet the conditions of purpose vertrek"


@pytest.fixture(scope="module")
def decide() -> Iterator[Decider]:
    with decider() as d:
        yield d


@pytest.mark.parametrize("dataset", ["ind/residence", "dji/detention"])
def test_vertrek_releases_to_dtv_only_when_the_subject_has_no_lawful_residence(
    decide: Decider, dataset: str
) -> None:
    eligible = decide(
        "dtv", "vertrek", dataset, ["v_number"], subject_facts={"no_lawful_residence": True}
    )
    assert eligible.allow, eligible.reasons
    lawful = decide(
        "dtv", "vertrek", dataset, ["v_number"], subject_facts={"no_lawful_residence": False}
    )
    unknown = decide("dtv", "vertrek", dataset, ["v_number"], subject_facts={})
    # Unknown and ineligible read the same: the refusal does not leak presence.
    assert lawful == unknown
    assert not lawful.allow
    assert lawful.reasons == (NOT_MET,)
    assert dict(lawful.field_ops) == {}


def test_a_purpose_without_required_facts_ignores_them(decide: Decider) -> None:
    plain = decide("politie", "ct-assessment", "ind/residence", subject_facts={})
    with_facts = decide(
        "politie",
        "ct-assessment",
        "ind/residence",
        subject_facts={"no_lawful_residence": False, "terrorism_conviction": True},
    )
    assert plain.allow
    assert with_facts.allow
    assert plain.field_ops == with_facts.field_ops


def test_the_facts_reason_is_only_told_to_a_requester_the_purpose_is_granted_to(
    decide: Decider,
) -> None:
    decision = decide("politie", "vertrek", "ind/residence", subject_facts={})
    assert not decision.allow
    assert decision.reasons == ("purpose vertrek is not granted to politie",)


def _two_facts(register: dict[str, Any]) -> None:
    register["purposes"]["vertrek"]["requires_facts"] = [
        "no_lawful_residence",
        "terrorism_conviction",
    ]


@pytest.mark.parametrize(
    "facts",
    [
        {"no_lawful_residence": True, "terrorism_conviction": False},
        {"no_lawful_residence": False, "terrorism_conviction": True},
        {"no_lawful_residence": True},
        {},
    ],
)
def test_every_required_fact_must_hold_and_the_reason_names_none(
    tmp_path: Path, facts: dict[str, bool]
) -> None:
    policies = copy_policies(tmp_path)
    edit_register(policies, _two_facts)
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        refused = decide("dtv", "vertrek", "ind/residence", ["v_number"], subject_facts=facts)
        both = {"no_lawful_residence": True, "terrorism_conviction": True}
        allowed = decide("dtv", "vertrek", "ind/residence", ["v_number"], subject_facts=both)
    assert not refused.allow
    assert refused.reasons == (NOT_MET,)
    assert allowed.allow
