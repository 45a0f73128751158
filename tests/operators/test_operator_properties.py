"""Hypothesis properties of the field operators."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from gateway.operators import minimise
from gateway.operators.mask import MARKER
from gateway.pseudonyms import PseudonymKeys

KEYS = PseudonymKeys(b"\x07" * 32)
DOMAIN = KEYS.domain("politie", "ct-assessment")
OTHER = KEYS.domain("nctv", "ct-assessment")
TYPES = {"value": "string", "date": "date"}

dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(
    lambda d: d.isoformat()
)
identifiers = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


def op(field: str, op: str, value: object) -> object:
    return minimise([{field: value}], {field: op}, TYPES, DOMAIN)[0][field]


@given(st.text(max_size=60), st.integers(min_value=0, max_value=16))
def test_mask_keeps_at_most_the_last_n_characters_behind_a_fixed_marker(value: str, n: int) -> None:
    masked = op("value", f"mask:{n}", value)
    assert isinstance(masked, str)
    assert masked.startswith(MARKER)
    kept = masked[len(MARKER) :]
    assert len(kept) <= n
    assert len(kept) <= len(value) // 2
    assert value.endswith(kept)
    # The output length depends on n and the value's length only up to 2n: no more.
    assert len(masked) == len(MARKER) + min(n, len(value) // 2)


@given(dates)
def test_generalise_is_idempotent_on_its_own_output(date: str) -> None:
    for level in ("year", "month"):
        once = op("date", f"generalise:{level}", date)
        assert op("date", f"generalise:{level}", once) == once
    assert op("date", "generalise:year", op("date", "generalise:month", date)) == date[:4]


@given(dates)
def test_generalise_outputs_a_prefix_of_the_date(date: str) -> None:
    assert op("date", "generalise:year", date) == date[:4]
    assert op("date", "generalise:month", date) == date[:7]


@given(identifiers)
def test_pseudonyms_are_stable_within_a_domain_and_differ_across(value: str) -> None:
    first = op("value", "pseudonymise", value)
    assert first == op("value", "pseudonymise", value)
    assert first == DOMAIN.pseudonym(value)
    assert first != OTHER.pseudonym(value)


@given(identifiers)
def test_a_pseudonym_never_contains_its_input(value: str) -> None:
    pseudonym = DOMAIN.pseudonym(value)
    normalised = " ".join(value.split()).casefold()
    # Tiny inputs may occur in any random string by chance; from 4 characters on it
    # would take a 2**-20 coincidence.
    if len(normalised) >= 4:
        assert normalised not in pseudonym
    assert len(pseudonym) == len("psn:") + 32


@given(st.dictionaries(st.sampled_from(["value", "date", "x", "y"]), st.text(max_size=5)))
def test_only_named_fields_leave(record: dict[str, str]) -> None:
    [out] = minimise([record], {"value": "exists"}, TYPES, DOMAIN)
    assert set(out) == {"value"}
