"""``exists``: release only whether the field holds a value (true/false).

None and the empty string count as absent.
"""

from __future__ import annotations

from typing import Any

from gateway.operators.base import OperatorContext, require_known_type, require_no_param


class Exists:
    name = "exists"

    def validate(self, param: str | None, field_type: str) -> None:
        require_no_param(self.name, param)
        require_known_type(field_type)

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> bool:
        return value is not None and value != ""
