"""JSON read one way only: no object may repeat a member name (I-JSON, RFC 7493).

Parsers disagree about ``{"bsn": "A", "bsn": "B"}``: the first wins, the last wins, or
it is an error. A proxy, a log or a check that read one value while the gateway acted on
the other would be fooled, so the gateway reads no such document, whoever sends it: a
partner's request body (`gateway.api_models`) and a provider's answer or data file
(`gateway.connectors`) alike. ``NaN`` and ``Infinity``, which are not JSON at all
(RFC 8259) and which no receipt could carry, are refused here too.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RepeatedMemberName", "loads"]


class RepeatedMemberName(ValueError):
    """A JSON object repeats a member name.

    The name is not said: it could be an identifier or a value.
    """


def loads(document: str | bytes) -> Any:
    """The JSON value of ``document``.

    Raises `RepeatedMemberName` for an object that repeats a member name, `ValueError`
    for anything else that is not JSON (bad syntax, bad UTF-8, ``NaN``), and
    `RecursionError` for nesting deeper than the interpreter's stack.
    """
    # Constants are refused after the whole document is read, so a repeated name is
    # found wherever it stands: ``{"a": NaN, "b": 1, "b": 2}`` must not pass as "not
    # JSON" to a parser that takes NaN and keeps the last "b" (pydantic-core does).
    constants: list[str] = []
    value = json.loads(document, object_pairs_hook=_unique_members, parse_constant=constants.append)
    if constants:
        raise ValueError("NaN and Infinity are not JSON")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise RepeatedMemberName("a JSON object repeats a member name")
    return members
