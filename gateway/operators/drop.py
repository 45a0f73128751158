"""``drop``: the field leaves nothing, not even its name (same as not naming it)."""

from __future__ import annotations

from typing import Any

from gateway.errors import OperatorError
from gateway.operators.base import OperatorContext, require_known_type, require_no_param


class Drop:
    name = "drop"

    def validate(self, param: str | None, field_type: str) -> None:
        require_no_param(self.name, param)
        require_known_type(field_type)

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> Any:
        # minimise() never calls this: a dropped field is left out of the record. Should a
        # caller do so anyway, refuse rather than return something a caller might release.
        raise OperatorError(f"field {ctx.field}: op drop has no output")
