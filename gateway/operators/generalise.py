"""``generalise:<level>``: release a coarser form of the value.

- ``generalise:year`` on a date: ``"1990-04-17"`` → ``"1990"``
- ``generalise:month`` on a date: ``"1990-04-17"`` → ``"1990-04"``
- ``generalise:municipality`` on an address: the address object → its municipality

Year and month also accept a value that is already that coarse (``"1990"``,
``"1990-04"``), so generalising is idempotent on its own output. An address given as
anything but an object with a municipality is refused: a free-text address string could
hold the street and house number.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from gateway.errors import InvalidDecision, OperatorError
from gateway.operators.base import OperatorContext

# [0-9], not \d: \d also matches non-ASCII digits.
_PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")

#: level → the field type it applies to.
LEVELS = {"year": "date", "month": "date", "municipality": "address"}


class Generalise:
    name = "generalise"

    def validate(self, param: str | None, field_type: str) -> None:
        if param is None:
            raise InvalidDecision("op generalise needs a level: year, month or municipality")
        if param not in LEVELS:
            raise InvalidDecision(f"op generalise has no level {param!r}")
        if LEVELS[param] != field_type:
            raise InvalidDecision(
                f"op generalise:{param} applies to {LEVELS[param]} fields, not {field_type}"
            )

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> str:
        if param == "municipality":
            return _municipality(value, ctx)
        if param in ("year", "month"):
            return _coarse_date(value, param, ctx)
        raise OperatorError(f"field {ctx.field}: op generalise has no level {param!r}")


def _municipality(value: Any, ctx: OperatorContext) -> str:
    municipality = value.get("municipality") if isinstance(value, dict) else None
    if not isinstance(municipality, str) or not municipality.strip():
        raise OperatorError(f"field {ctx.field}: value is not an address with a municipality")
    return municipality.strip()


def _coarse_date(value: Any, level: str, ctx: OperatorContext) -> str:
    match = _PARTIAL_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise OperatorError(f"field {ctx.field}: value is not a date (YYYY-MM-DD)")
    year, month, day = match.groups()
    if month is not None and not 1 <= int(month) <= 12:
        raise OperatorError(f"field {ctx.field}: value is not a valid date")
    if day is not None and not 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]:
        raise OperatorError(f"field {ctx.field}: value is not a valid date")
    if level == "year":
        return year
    if month is None:
        raise OperatorError(f"field {ctx.field}: value has no month")
    return f"{year}-{month}"
