"""One reading of JSON for partners and providers alike: no repeated member names."""

from __future__ import annotations

import pytest

from gateway import ijson


def test_plain_json_is_read() -> None:
    assert ijson.loads(b'{"records": [{"bsn": "1", "n": 2.5}], "x": null}') == {
        "records": [{"bsn": "1", "n": 2.5}],
        "x": None,
    }


@pytest.mark.parametrize(
    "document",
    [
        '{"a": 1, "a": 1}',
        '{"records": [], "records": [{"bsn": "999900018"}]}',
        '{"records": [{"bsn": "999900018", "bsn": "999900031"}]}',
        '[{"x": {"y": 1, "y": 2}}]',
        '{"a": NaN, "b": 1, "b": 2}',  # found wherever it stands
    ],
)
def test_a_repeated_member_name_is_refused_without_naming_it(document: str) -> None:
    with pytest.raises(ijson.RepeatedMemberName) as caught:
        ijson.loads(document)
    assert "999900" not in str(caught.value)
    assert '"' not in str(caught.value)


@pytest.mark.parametrize("document", ['{"a": NaN}', "[Infinity]", "-Infinity", "{", b"\xff"])
def test_what_is_not_json_is_a_value_error(document: str | bytes) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        ijson.loads(document)
    assert not isinstance(caught.value, ijson.RepeatedMemberName)
