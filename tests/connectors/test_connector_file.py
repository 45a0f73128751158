"""The file connector: indexed lookups, normalisation, checking and failure modes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.connectors import Catalog
from gateway.connectors.file import FileConnector
from gateway.errors import ConnectorResponseError, ConnectorUnavailable
from gateway.operators import minimise
from tests.connectors.connector_support import partner_doc, write_partners

pytestmark = pytest.mark.anyio

ALICE: dict[str, Any] = {
    "bsn": "999900018",
    "iban": "NL67FICT9900000001",
    "name": "Sam Fictief-9001",
    "date_of_birth": "1980-04-01",
    "score": 3,
    "ratio": 1.5,
    "flagged": True,
    "address": {
        "street": "Voorbeeldstraat",
        "house_number": 12,
        "postcode": "0123 ZZ",
        "municipality": "Utrecht",
    },
    "undeclared": "must not leave the connector",
}
BOB: dict[str, Any] = {
    "bsn": "999900031",
    "iban": None,
    "name": "Kim  Fictief-9002",
    "date_of_birth": "1991-12-31",
    "score": None,
    "ratio": 2,
    "flagged": False,
    "address": None,
}
# Same name as ALICE, another birth date: the compound key must tell them apart.
NAMESAKE: dict[str, Any] = {"name": "Sam Fictief-9001", "date_of_birth": "1975-01-01"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _write_records(var_dir: Path, lines: list[str]) -> Path:
    path = var_dir / "demo" / "records.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def _lines(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(r) for r in records]


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[Catalog]:
    catalog = Catalog.load(write_partners(tmp_path / "connectors", partner_doc()), tmp_path)
    yield catalog
    await catalog.aclose()


@pytest.fixture
def connector(catalog: Catalog, tmp_path: Path) -> FileConnector:
    _write_records(tmp_path, [*_lines(ALICE, BOB), "", *_lines(NAMESAKE)])
    connector = catalog.connector("provider/records")
    assert isinstance(connector, FileConnector)
    return connector


class _Pseudonymiser:
    def pseudonym(self, value: object) -> str:
        return "psn:test"


def _stripped(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "undeclared"}


# ---------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param({"bsn": "999900018"}, [ALICE], id="bsn"),
        pytest.param({"iban": "NL67FICT9900000001"}, [ALICE], id="iban"),
        pytest.param(
            {"name": "Sam Fictief-9001", "date_of_birth": "1980-04-01"},
            [ALICE],
            id="name+date_of_birth",
        ),
        pytest.param(
            {"name": "Sam Fictief-9001", "date_of_birth": "1975-01-01"},
            [NAMESAKE],
            id="namesake",
        ),
        pytest.param({"name": "Sam Fictief-9001"}, [], id="name-alone-is-no-key"),
        pytest.param({"date_of_birth": "1980-04-01"}, [], id="date-alone-is-no-key"),
        pytest.param({"bsn": "999900030"}, [], id="no-match"),
        pytest.param({"passport_no": "XX0000001"}, [], id="key-the-dataset-lacks"),
        pytest.param({"bsn": ""}, [], id="empty-value"),
        pytest.param(
            # One subject: keys naming two different people match neither.
            {"bsn": "999900018", "name": "Kim Fictief-9002", "date_of_birth": "1991-12-31"},
            [],
            id="keys-of-two-people",
        ),
        pytest.param(
            {"bsn": "999900018", "name": "Sam Fictief-9001", "date_of_birth": "1980-04-01"},
            [ALICE],
            id="every-covered-key-agrees",
        ),
    ],
)
async def test_matches_on_every_covered_identity_key(
    connector: FileConnector, subject: dict[str, str], expected: list[dict[str, Any]]
) -> None:
    assert await connector.fetch(subject) == [_stripped(r) for r in expected]


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param({"bsn": "  999900018 "}, id="bsn-stripped"),
        pytest.param({"bsn": "9999 00 018"}, id="bsn-inner-space"),
        pytest.param({"iban": "nl67 fict 9900 0000 01"}, id="iban-grouped-lowercase"),
        pytest.param(
            {"name": "  sam   FICTIEF-9001 ", "date_of_birth": "1980-04-01"}, id="name-casefold"
        ),
        pytest.param({"name": "Sam\tFictief-9001", "date_of_birth": " 19800401 "}, id="date-iso"),
    ],
)
async def test_normalised_matching(connector: FileConnector, subject: dict[str, str]) -> None:
    assert await connector.fetch(subject) == [_stripped(ALICE)]


async def test_record_values_are_normalised_too(connector: FileConnector) -> None:
    # BOB's name has a double space in the file; the subject has one.
    found = await connector.fetch({"name": "kim fictief-9002", "date_of_birth": "1991-12-31"})
    assert found == [BOB]


async def test_undeclared_fields_are_stripped_and_none_is_allowed(
    connector: FileConnector,
) -> None:
    [alice] = await connector.fetch({"bsn": "999900018"})
    assert "undeclared" not in alice
    [bob] = await connector.fetch({"bsn": "999900031"})
    assert bob["score"] is None
    assert bob["address"] is None
    assert bob["iban"] is None


async def test_results_are_the_loaded_records_and_minimise_leaves_them_alone(
    connector: FileConnector,
) -> None:
    # No copy per fetch: the records were checked and copied at load. What the pipeline
    # does with them next (minimise, under every op) must leave them as they were.
    [first] = await connector.fetch({"bsn": "999900018"})
    [again] = await connector.fetch({"bsn": "999900018"})
    assert again is first
    for ops in (
        {name: "keep" for name in first},
        {name: "exists" for name in first},
        {"bsn": "pseudonymise", "iban": "mask", "name": "drop"},
        {"date_of_birth": "generalise:month", "address": "generalise:municipality"},
    ):
        types = {name: spec.type for name, spec in connector.spec.fields.items()}
        released = minimise([first], ops, types, _Pseudonymiser())
        assert released[0] is not first
    [after] = await connector.fetch({"bsn": "999900018"})
    assert after == _stripped(ALICE)


async def test_loaded_once(connector: FileConnector, tmp_path: Path) -> None:
    assert await connector.fetch({"bsn": "999900018"})
    (tmp_path / "demo" / "records.jsonl").unlink()
    assert await connector.fetch({"bsn": "999900018"})  # served from the index


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------

BAD_VALUES = [
    ("bsn", 999900018),
    ("name", ["Sam"]),
    ("date_of_birth", "01-04-1980"),
    ("date_of_birth", "1980-02-30"),
    ("score", "3"),
    ("score", 3.5),
    ("score", True),
    ("ratio", "1.5"),
    ("ratio", False),
    ("flagged", "yes"),
    ("flagged", 1),
    ("address", "Voorbeeldstraat 12"),
    ("address", {"street": "Voorbeeldstraat", "country": "NL"}),
    ("address", {"municipality": 7}),
    # What the signed canonical JSON could not carry exactly.
    ("score", 2**53),
    ("ratio", -(2**60)),
    ("name", "Sam \ud800"),
    ("address", {"municipality": "\udc00"}),
    ("address", {"municipality": "Breda", "house_number": 2**60}),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
async def test_wrong_type_is_a_response_error(
    catalog: Catalog, tmp_path: Path, field: str, value: object
) -> None:
    _write_records(tmp_path, _lines(BOB, {**ALICE, field: value}))
    with pytest.raises(ConnectorResponseError) as caught:
        await catalog.connector("provider/records").fetch({"bsn": "999900031"})
    message = str(caught.value)
    assert message.startswith("provider/records: data file line 2: ")
    assert repr(field) in message
    assert str(value) not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b'{"bsn": "999900018"\n', "line 1 is not valid JSON", id="truncated"),
        pytest.param(b'{"bsn": "1"}\n["a", "list"]\n', "line 2: a record is not", id="list"),
        pytest.param(b'{"ratio": NaN}\n', "line 1 is not valid JSON", id="nan"),
        pytest.param(b'{"name": "\xff"}\n', "not UTF-8", id="not-utf8"),
        pytest.param(
            b'{"bsn": "1"}\n{"bsn": "999900018", "bsn": "999900031"}\n',
            "line 2 repeats a member name in an object",
            id="repeated-member",
        ),
    ],
)
async def test_malformed_file_is_a_response_error(
    catalog: Catalog, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "demo" / "records.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ConnectorResponseError, match=problem):
        await catalog.connector("provider/records").fetch({"bsn": "999900018"})


# ---------------------------------------------------------------------------
# Availability
# ---------------------------------------------------------------------------


async def test_missing_file_is_unavailable_until_it_appears(
    catalog: Catalog, tmp_path: Path
) -> None:
    connector = catalog.connector("provider/records")  # no error at build time
    for _ in range(2):
        with pytest.raises(ConnectorUnavailable, match=r"^provider/records: data file not found"):
            await connector.fetch({"bsn": "999900018"})
    _write_records(tmp_path, _lines(ALICE))
    assert await connector.fetch({"bsn": "999900018"}) == [_stripped(ALICE)]


async def test_broken_file_is_retried_once_changed(catalog: Catalog, tmp_path: Path) -> None:
    _write_records(tmp_path, ["{broken"])
    connector = catalog.connector("provider/records")
    with pytest.raises(ConnectorResponseError):
        await connector.fetch({"bsn": "999900018"})
    _write_records(tmp_path, _lines(ALICE, BOB))
    assert await connector.fetch({"bsn": "999900018"}) == [_stripped(ALICE)]


async def test_unreadable_file_is_unavailable(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "demo" / "records.jsonl").mkdir(parents=True)  # a directory, not a file
    with pytest.raises(ConnectorUnavailable, match="cannot be read"):
        await catalog.connector("provider/records").fetch({"bsn": "999900018"})


async def test_catalog_load_does_not_need_the_files(tmp_path: Path) -> None:
    catalog = Catalog.load(write_partners(tmp_path / "c", partner_doc()), tmp_path / "absent")
    assert "provider/records" in catalog.datasets
    await catalog.aclose()
