"""Each field op, the registry, and minimise()'s default deny."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidDecision, OperatorError, UnknownOperator
from gateway.operators import FIELD_TYPES, OPERATORS, minimise, parse_op, validate_op
from gateway.pseudonyms import PseudonymKeys

KEYS = PseudonymKeys(bytes(range(32)))
PSN = KEYS.domain("politie", "ct-assessment")

TYPES = {
    "bsn": "string",
    "iban": "string",
    "date_of_birth": "date",
    "address": "address",
    "lawful_residence": "boolean",
    "amount_eur": "number",
    "count": "integer",
}
ADDRESS = {
    "street": "Kerkstraat",
    "house_number": "1",
    "postcode": "1234AB",
    "municipality": "Utrecht",
}
RECORD: dict[str, Any] = {
    "bsn": "123456782",
    "iban": "NL91ABNA0417164300",
    "date_of_birth": "1990-04-17",
    "address": ADDRESS,
    "lawful_residence": True,
    "amount_eur": 1250.5,
    "count": 3,
}


def one(field: str, op: str, value: Any) -> Any:
    return minimise([{field: value}], {field: op}, TYPES, PSN)[0][field]


def test_the_registry_holds_the_contract_ops() -> None:
    assert set(OPERATORS) == {"keep", "drop", "pseudonymise", "generalise", "mask", "exists"}
    assert all(op.name == name for name, op in OPERATORS.items())


@pytest.mark.parametrize(
    ("op", "parsed"),
    [
        ("keep", ("keep", None)),
        ("generalise:year", ("generalise", "year")),
        ("mask:2", ("mask", "2")),
        ("generalise:", ("generalise", "")),
    ],
)
def test_parse_op(op: str, parsed: tuple[str, str | None]) -> None:
    assert parse_op(op) == parsed


@pytest.mark.parametrize("op", ["", "reveal", "KEEP", "keep ", ":year", "hash:sha256"])
def test_parse_op_refuses_unknown_ops(op: str) -> None:
    with pytest.raises(UnknownOperator):
        parse_op(op)


def test_validate_op_matrix() -> None:
    fits = {
        "keep": FIELD_TYPES,
        "drop": FIELD_TYPES,
        "pseudonymise": FIELD_TYPES,
        "exists": FIELD_TYPES,
        "generalise:year": {"date"},
        "generalise:month": {"date"},
        "generalise:municipality": {"address"},
        "mask": {"string"},
        "mask:0": {"string"},
        "mask:16": {"string"},
    }
    for op, types in fits.items():
        for field_type in FIELD_TYPES:
            if field_type in types:
                validate_op(op, field_type)
            else:
                with pytest.raises(InvalidDecision):
                    validate_op(op, field_type)


@pytest.mark.parametrize(
    "op",
    [
        "keep:x",
        "drop:1",
        "pseudonymise:sha1",
        "exists:yes",
        "generalise",
        "generalise:day",
        "generalise:",
        "mask:",
        "mask:-1",
        "mask:17",
        "mask:two",
        "mask:1.5",
        "mask:٣",
    ],
)
def test_validate_op_refuses_bad_params(op: str) -> None:
    with pytest.raises(InvalidDecision):
        validate_op(op, "date" if op.startswith("generalise") else "string")


def test_validate_op_refuses_unknown_types() -> None:
    with pytest.raises(InvalidDecision):
        validate_op("keep", "blob")


# --- each op ---------------------------------------------------------------------------


def test_keep() -> None:
    assert one("address", "keep", ADDRESS) == ADDRESS
    assert one("lawful_residence", "keep", False) is False


def test_pseudonymise() -> None:
    value = one("bsn", "pseudonymise", "123456782")
    assert value == PSN.pseudonym("123456782")
    assert value.startswith("psn:")
    assert "123456782" not in value


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("generalise:year", "1990-04-17", "1990"),
        ("generalise:month", "1990-04-17", "1990-04"),
        ("generalise:year", "1990-04", "1990"),
        ("generalise:year", "1990", "1990"),
        ("generalise:month", "1990-04", "1990-04"),
        ("generalise:year", "2024-02-29", "2024"),
    ],
)
def test_generalise_date(op: str, value: str, expected: str) -> None:
    assert one("date_of_birth", op, value) == expected


def test_generalise_municipality() -> None:
    assert one("address", "generalise:municipality", ADDRESS) == "Utrecht"


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("generalise:year", "17-04-1990"),
        ("generalise:year", "1990-13-01"),
        ("generalise:year", "2023-02-29"),
        ("generalise:year", "1990-04-17T10:00:00Z"),
        ("generalise:year", "١٩٩٠-04-17"),  # non-ASCII digits
        ("generalise:year", 1990),
        ("generalise:month", "1990"),
        ("generalise:municipality", "Kerkstraat 1, 1234AB Utrecht"),
        ("generalise:municipality", {"street": "Kerkstraat"}),
        ("generalise:municipality", {"municipality": ""}),
        ("mask", 123456782),
    ],
)
def test_a_value_an_op_cannot_transform_is_an_operator_error(op: str, value: Any) -> None:
    field = {"generalise:municipality": "address", "mask": "iban"}.get(op, "date_of_birth")
    with pytest.raises(OperatorError) as caught:
        one(field, op, value)
    text = str(caught.value)
    assert field in text
    assert str(value) not in text
    # Nothing chained either: a lower-level message could quote the value.
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("mask", "NL91ABNA0417164300", "****4300"),
        ("mask:2", "NL91ABNA0417164300", "****00"),
        ("mask:0", "NL91ABNA0417164300", "****"),
        ("mask", "ABC123", "****123"),  # at most half of the value
        ("mask", "X", "****"),
        ("mask", "", "****"),
    ],
)
def test_mask(op: str, value: str, expected: str) -> None:
    assert one("iban", op, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("123", True), (False, True), (0, True), (ADDRESS, True), ("", False), (None, False)],
)
def test_exists(value: Any, expected: bool) -> None:
    assert one("bsn", "exists", value) is expected


# --- minimise --------------------------------------------------------------------------


def test_minimise_keeps_exactly_the_named_fields_in_op_order() -> None:
    ops = {
        "date_of_birth": "generalise:year",
        "bsn": "pseudonymise",
        "iban": "drop",
        "lawful_residence": "exists",
    }
    [out] = minimise([RECORD], ops, TYPES, PSN)
    assert list(out) == ["date_of_birth", "bsn", "lawful_residence"]
    assert out == {
        "date_of_birth": "1990",
        "bsn": PSN.pseudonym("123456782"),
        "lawful_residence": True,
    }


def test_minimise_with_no_ops_releases_nothing() -> None:
    assert minimise([RECORD, RECORD], {}, TYPES, PSN) == [{}, {}]


def test_fields_the_record_lacks_or_holds_none_stay_none() -> None:
    ops = {"bsn": "keep", "iban": "mask", "date_of_birth": "generalise:year", "count": "exists"}
    assert minimise([{"bsn": None}], ops, TYPES, PSN) == [
        {"bsn": None, "iban": None, "date_of_birth": None, "count": False}
    ]


def test_minimise_validates_every_op_before_touching_a_record() -> None:
    class Exploding:
        def __iter__(self) -> Any:
            raise AssertionError("records were read")

    with pytest.raises(UnknownOperator):
        minimise(Exploding(), {"bsn": "reveal"}, TYPES, PSN)
    with pytest.raises(InvalidDecision):
        minimise(Exploding(), {"lawful_residence": "mask"}, TYPES, PSN)
    with pytest.raises(InvalidDecision):
        minimise(Exploding(), {"religion": "keep"}, TYPES, PSN)


def test_a_record_that_is_not_an_object_is_an_operator_error() -> None:
    with pytest.raises(OperatorError):
        minimise(["123456782"], {"bsn": "keep"}, TYPES, PSN)  # type: ignore[list-item]


def test_minimise_does_not_return_the_input_objects() -> None:
    record = {"bsn": "1", "extra": "secret"}
    [out] = minimise([record], {"bsn": "keep"}, TYPES, PSN)
    assert out is not record
    assert "extra" not in out
    assert record == {"bsn": "1", "extra": "secret"}


def test_an_unexpected_failure_inside_an_op_becomes_an_operator_error() -> None:
    # A value canonical JSON cannot carry (a set) cannot be pseudonymised.
    with pytest.raises(OperatorError) as caught:
        one("bsn", "pseudonymise", {"a", "b"})
    assert caught.value.__cause__ is None
    assert "'a'" not in str(caught.value)


def test_drop_refuses_to_operate_when_called_directly() -> None:
    from gateway.operators.base import OperatorContext

    ctx = OperatorContext(field="bsn", field_type="string", pseudonymiser=PSN)
    with pytest.raises(OperatorError):
        OPERATORS["drop"].operate("123456782", None, ctx)
