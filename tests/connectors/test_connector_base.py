"""The rules every connector shares: key normalisation and record matching."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.connectors import Catalog
from gateway.connectors.base import normalise_key_value, record_matches, subject_lookups
from gateway.pseudonyms import normalise, normalise_text
from gateway.vocabulary import DatasetSpec
from tests.connectors.connector_support import partner_doc, write_partners

RECORD: dict[str, Any] = {
    "bsn": "999900018",
    "iban": "NL67FICT9900000001",
    "name": "Am\u00e9lie Fictief-9001",  # precomposed é
    "date_of_birth": "1980-04-01",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> DatasetSpec:
    directory = tmp_path_factory.mktemp("connectors")
    catalog = Catalog.load(write_partners(directory, partner_doc()), directory)
    return catalog.datasets["provider/records"]


def test_text_is_compared_in_nfc_as_pseudonyms_are() -> None:
    decomposed = "Ame\u0301lie  FICTIEF-9001 "
    assert normalise_key_value("name", "string", decomposed) == "am\u00e9lie fictief-9001"
    assert normalise_key_value("name", "string", decomposed) == normalise_text(decomposed)
    assert normalise(decomposed) == normalise_text(decomposed).encode()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bsn", " 9999 00 018 ", "999900018"),
        ("iban", "nl67 FICT 9900 0000 01", "nl67fict9900000001"),
        ("v_number", "99\u00a012345678", "9912345678"),  # a no-break space is whitespace too
        ("name", " Sam\tFictief-9001 ", "sam fictief-9001"),
    ],
)
def test_compact_keys_lose_their_inner_whitespace(field: str, value: str, expected: str) -> None:
    assert normalise_key_value(field, "string", value) == expected


@pytest.mark.parametrize(
    ("subject", "matches"),
    [
        pytest.param({"bsn": "9999 00018"}, True, id="bsn"),
        pytest.param({"name": "Ame\u0301lie fictief-9001", "date_of_birth": "19800401"}, True),
        pytest.param({"bsn": "999900018", "iban": "NL67FICT9900000001"}, True, id="both-agree"),
        pytest.param({"bsn": "999900018", "iban": "NL67FICT9900000002"}, False, id="one-differs"),
        pytest.param({"bsn": "999900031"}, False, id="other-bsn"),
        pytest.param({"name": "Amelie Fictief-9001", "date_of_birth": "1980-04-01"}, False),
    ],
)
def test_a_record_matches_only_when_every_covered_key_agrees(
    spec: DatasetSpec, subject: dict[str, str], matches: bool
) -> None:
    assert record_matches(spec, RECORD, subject_lookups(spec, subject)) is matches


@pytest.mark.parametrize("value", [None, "", 999900018])
def test_a_record_without_the_key_does_not_match(spec: DatasetSpec, value: object) -> None:
    lookups = subject_lookups(spec, {"bsn": "999900018"})
    assert not record_matches(spec, {**RECORD, "bsn": value}, lookups)
    without = {k: v for k, v in RECORD.items() if k != "bsn"}
    assert not record_matches(spec, without, lookups)
