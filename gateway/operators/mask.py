"""``mask`` / ``mask:<n>``: release only the last few characters of a string.

The output is the fixed marker ``****`` followed by at most the last ``n`` characters
(default 4) and never more than half of the value: ``"NL91ABNA0417164300"`` →
``"****4300"``. The fixed marker hides the value's length; the half rule keeps a short
value from leaving almost whole. ``mask:0`` releases the marker only.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import InvalidDecision, OperatorError
from gateway.operators.base import OperatorContext

MARKER = "****"
DEFAULT_KEEP = 4
MAX_KEEP = 16
_COUNT = re.compile(r"[0-9]{1,2}")


def keep_count(param: str | None) -> int:
    """How many trailing characters ``mask:<param>`` may keep; InvalidDecision if bad."""
    if param is None:
        return DEFAULT_KEEP
    if not _COUNT.fullmatch(param) or int(param) > MAX_KEEP:
        raise InvalidDecision(f"op mask takes a character count from 0 to {MAX_KEEP}")
    return int(param)


class Mask:
    name = "mask"

    def validate(self, param: str | None, field_type: str) -> None:
        keep_count(param)
        if field_type != "string":
            raise InvalidDecision(f"op mask applies to string fields, not {field_type}")

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> str:
        if not isinstance(value, str):
            raise OperatorError(f"field {ctx.field}: value is not a string")
        keep = min(keep_count(param), len(value) // 2)
        return MARKER + (value[len(value) - keep :] if keep else "")
