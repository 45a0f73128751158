"""The fast canonical JSON path is byte-identical to the rfc8785 reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from gateway.canonical import CanonicalizationError, canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
keys = st.text(max_size=6) | st.sampled_from(["a", "b", "é", "\U0001f600", "\ue000", "A"])
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@given(json_values)
def test_matches_the_reference_implementation(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@given(json_values)
def test_round_trips(value: Any) -> None:
    try:
        encoded = canonical_json(value)
    except CanonicalizationError:
        return
    # JSON numbers are IEEE 754 doubles (RFC 8785 §3.2.2.3): read them back as such.
    assert canonical_json(json.loads(encoded, parse_int=float)) == encoded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [1.0, "é", None, 1e21]}, '{"a":[1,"é",null,1e+21],"b":1}'),
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'),  # UTF-16 order
        ('\x00\x1f"\\\n\u2028', '"\\u0000\\u001f\\"\\\\\\n\u2028"'),
        ([True, False, None, -(2**53) + 1], "[true,false,null,-9007199254740991]"),
    ],
)
def test_known_encodings(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected.encode()


@pytest.mark.parametrize("value", [2**53, float("nan"), "\ud800", {1: "x"}])
def test_values_json_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises((CanonicalizationError, TypeError)):
        canonical_json(value)
