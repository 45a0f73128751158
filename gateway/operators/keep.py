"""``keep``: release the value in clear, unchanged."""

from __future__ import annotations

from typing import Any

from gateway.operators.base import OperatorContext, require_known_type, require_no_param


class Keep:
    name = "keep"

    def validate(self, param: str | None, field_type: str) -> None:
        require_no_param(self.name, param)
        require_known_type(field_type)

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> Any:
        # The connector checked the value against the field's declared type.
        return value
