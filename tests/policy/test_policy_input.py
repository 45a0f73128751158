"""build_policy_input: names and categories only, never values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.errors import ConfigurationError, InvalidRequest
from gateway.policy import build_policy_input, dataset_input
from tests.policy.policy_support import NOW, dataset_views

VIEW = dataset_views()["ind/residence"]


def build(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "requester_id": "politie",
        "roles": ("pnr-competent-authority", "ct-infobox"),
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "has_justification": True,
        "dataset": dataset_input(VIEW),
        "subject_keys": ["bsn", "name", "date_of_birth"],
        "now": NOW,
    }
    args.update(overrides)
    return build_policy_input(**args)


def test_shape() -> None:
    document = build()
    assert document == {
        "action": "disclose",
        "time": "2026-11-22T10:00:00Z",
        "requester": {"id": "politie", "roles": ["ct-infobox", "pnr-competent-authority"]},
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "has_justification": True,
        "dataset": {
            "id": "ind/residence",
            "provider": "ind",
            "domain": "immigration",
            "fields": VIEW["fields"],
            "identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
        },
        "subject_keys": ["bsn", "date_of_birth", "name"],
        "subject_facts": {},
    }


def test_subject_facts_are_booleans_by_fact_name() -> None:
    facts = {"no_lawful_residence": False, "terrorism_conviction": True}
    assert build(subject_facts=facts)["subject_facts"] == facts
    assert build(subject_facts=None)["subject_facts"] == {}


@pytest.mark.parametrize(
    "facts",
    [
        {"no_lawful_residence": "NLD"},  # a value, not whether the fact holds
        {"no_lawful_residence": 0},
        {"no_lawful_residence": None},
        {"123456782": True},  # an identifier where a fact name belongs
        {"": True},
        [("no_lawful_residence", True)],
    ],
)
def test_anything_but_booleans_by_fact_name_is_refused(facts: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build(subject_facts=facts)
    assert "NLD" not in str(caught.value)
    assert "123456782" not in str(caught.value)


def test_time_is_rfc3339_utc() -> None:
    amsterdam = timezone(timedelta(hours=1))
    assert build(now=datetime(2026, 11, 22, 11, 0, tzinfo=amsterdam))["time"] == (
        "2026-11-22T10:00:00Z"
    )
    with pytest.raises(ValueError, match="timezone"):
        build(now=datetime(2026, 11, 22, 10, 0))


def test_only_names_and_categories_leave_the_view() -> None:
    view = {
        **VIEW,
        "records": [{"bsn": "123456782"}],
        "fields": {
            name: {**spec, "example": "123456782", "description": "x"}
            for name, spec in VIEW["fields"].items()
        },
    }
    document = build(dataset=dataset_input(view))
    assert "123456782" not in repr(document)
    assert set(document["dataset"]) == {"id", "provider", "domain", "fields", "identity_keys"}
    assert all(set(spec) == {"type", "category"} for spec in document["dataset"]["fields"].values())


@pytest.mark.parametrize("keys", [["123456782"], ["J. Fictief"], ["bsn", "1990-04-17"], [""]])
def test_subject_key_values_are_refused(keys: list[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build(subject_keys=keys)
    for key in keys:
        if key and key != "bsn":
            assert key not in str(caught.value)


@pytest.mark.parametrize(
    "view",
    [
        {k: v for k, v in VIEW.items() if k != "fields"},
        {**VIEW, "fields": {"bsn": {"type": "string"}}, "identity_keys": [["bsn"]]},
        {**VIEW, "identity_keys": [["passport_no"]]},
        {**VIEW, "identity_keys": ["bsn"]},
        {**VIEW, "domain": None},
    ],
)
def test_a_malformed_view_is_a_configuration_error(view: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        build(dataset=dataset_input(view))


@pytest.mark.parametrize(
    "override",
    [
        {"purpose": ""},
        {"requester_id": 7},
        {"has_justification": "yes"},
        {"roles": "ct-infobox"},
        {"case_ref": None},
    ],
)
def test_bad_request_arguments_are_invalid(override: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        build(**override)


def test_the_empty_view_of_no_dataset_is_accepted() -> None:
    empty = {"id": "", "provider": "", "domain": "", "fields": {}, "identity_keys": []}
    assert build(dataset=dataset_input(empty))["dataset"] == empty
