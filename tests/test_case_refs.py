"""Case references: a deployment's formats, and the rule no format can lift."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from gateway.api_models import DisclosureRequest, request_model
from gateway.case_refs import (
    DEFAULT_FORMATS,
    MAX_CHARS,
    CaseRefFormat,
    case_ref_type,
    combined_pattern,
)
from tests.gateway_support import Deployment

OM = CaseRefFormat("om-parketnummer", "[0-9]{2}/[0-9]{6}-[0-9]{2}", "09/123456-26")
LOOSE = CaseRefFormat("loose", "[A-Z0-9/-]+", "ZAAK-1")


def accepts(formats: list[CaseRefFormat], value: str) -> bool:
    adapter: TypeAdapter[str] = TypeAdapter(case_ref_type(formats))
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def body(case_ref: str) -> dict[str, Any]:
    return {
        "purpose": "ct-assessment",
        "case_ref": case_ref,
        "justification": "test",
        "subject": {"bsn": "999900997"},
    }


def test_each_configured_format_is_accepted_and_nothing_else() -> None:
    model = request_model([*DEFAULT_FORMATS, OM])
    assert model.model_validate(body("09/123456-26")).case_ref == "09/123456-26"
    assert model.model_validate(body("CTI-2026-0042")).case_ref == "CTI-2026-0042"
    for other in ("2026/0042", "09/123456-2026", "cti-2026-0042"):
        with pytest.raises(ValidationError):
            model.model_validate(body(other))
    # The model of a deployment without the OM's format refuses its case numbers.
    with pytest.raises(ValidationError):
        DisclosureRequest.model_validate(body("09/123456-26"))
    assert model.__name__ == DisclosureRequest.__name__  # the OpenAPI schema's name


@pytest.mark.parametrize(
    "value",
    [
        "CTI-2026-0042\n",  # `$` is the end of the text, not of a line
        " CTI-2026-0042",
        "CTI-2026-0042X",
        # The default format's prefix may hold digits: a BSN in it is still refused.
        "A999900997-2026-1",
        "CTI-٢٠٢٦-0042",  # Arabic-Indic digits
    ],
)
def test_a_format_matches_the_whole_case_reference_in_ascii(value: str) -> None:
    assert not accepts(list(DEFAULT_FORMATS), value)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("ZAAK-123456", True),
        ("ZAAK-1234567", False),  # a seven-digit run: never, whatever the format says
        ("999900997", False),  # a BSN
        # The rule sees runs only: a format must not let a number be written in pieces.
        ("99-99-00-997", True),
        ("X" * MAX_CHARS, True),
        ("X" * (MAX_CHARS + 1), False),
    ],
)
def test_the_rule_holds_under_a_loose_format(value: str, accepted: bool) -> None:
    assert accepts([LOOSE], value) is accepted


def test_formats_do_not_leak_into_each_other() -> None:
    # Each pattern is grouped before the alternation: "A|B" in one format stays in it.
    pattern = combined_pattern(["A|B", "C"])
    assert re.fullmatch(pattern, "A")
    assert re.fullmatch(pattern, "C")
    assert not re.fullmatch(pattern, "AC")


@given(st.from_regex(combined_pattern([LOOSE.pattern]), fullmatch=True))
def test_what_a_loose_format_matches_is_accepted_exactly_when_it_obeys_the_rule(
    value: str,
) -> None:
    obeys = len(value) <= MAX_CHARS and not re.search("[0-9]{7}", value)
    assert accepts([LOOSE], value) is obeys


def test_the_openapi_document_states_the_registers_formats(gateway: Deployment) -> None:
    with gateway.client("politie") as client:
        document = client.get("/openapi.json").json()
    case_ref = document["components"]["schemas"]["DisclosureRequest"]["properties"]["case_ref"]
    formats = gateway.runtime.register.case_ref_formats
    assert case_ref["pattern"] == combined_pattern([f.pattern for f in formats])
    assert case_ref["examples"] == ["CTI-2026-0042", "09/123456-26"]
