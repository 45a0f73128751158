"""What every field operator is: a name, a validation step and a transformation.

Validation (``validate``) runs once per decision, before any record is fetched, and
raises :class:`~gateway.errors.UnknownOperator` or :class:`~gateway.errors.InvalidDecision`:
a bad op denies the request (503, fail closed). Transformation (``operate``) runs per
record value and raises :class:`~gateway.errors.OperatorError` for a value it cannot
transform; the message names the field and the op, never the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import InvalidDecision
from gateway.vocabulary import FIELD_TYPES


class Pseudonymiser(Protocol):
    """Turns a value into a keyed pseudonym of one domain (see gateway.pseudonyms)."""

    def pseudonym(self, value: object) -> str: ...


@dataclass(frozen=True)
class OperatorContext:
    """What an operator may know besides the value: the field and the domain's keys."""

    field: str
    field_type: str
    pseudonymiser: Pseudonymiser


class Operator(Protocol):
    """A field op such as ``keep`` or ``generalise:year`` (name ``generalise``, param ``year``)."""

    @property
    def name(self) -> str: ...

    def validate(self, param: str | None, field_type: str) -> None:
        """Raise InvalidDecision if the op cannot apply to a field of ``field_type``."""

    def operate(self, value: Any, param: str | None, ctx: OperatorContext) -> Any:
        """Transform one non-None value; raise OperatorError if it cannot."""


def require_no_param(name: str, param: str | None) -> None:
    if param is not None:
        raise InvalidDecision(f"op {name} takes no parameter")


def require_known_type(field_type: str) -> None:
    if field_type not in FIELD_TYPES:
        raise InvalidDecision(f"field type {field_type!r} is not a known field type")
