"""``pseudonymise``: replace the value by its keyed pseudonym in the requester x purpose domain.

Stable within the domain (the same subject links across datasets of one requester and
purpose), unlinkable across domains; see gateway.pseudonyms.
"""

from __future__ import annotations

from typing import Any

from gateway.operators.base import OperatorContext, require_known_type, require_no_param


class Pseudonymise:
    name = "pseudonymise"

    def validate(self, param: str | None, field_type: str) -> None:
        require_no_param(self.name, param)
        require_known_type(field_type)

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> str:
        return ctx.pseudonymiser.pseudonym(value)
