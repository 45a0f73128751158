"""The operator registry and the one function the pipeline calls: :func:`minimise`.

An op is written ``name`` or ``name:param`` (``generalise:year``, ``mask:2``). A name no
operator implements is :class:`~gateway.errors.UnknownOperator`, never a pass-through.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.errors import InvalidDecision, OperatorError, UnknownOperator
from gateway.operators.base import Operator, OperatorContext, Pseudonymiser
from gateway.operators.drop import Drop
from gateway.operators.exists import Exists
from gateway.operators.generalise import Generalise
from gateway.operators.keep import Keep
from gateway.operators.mask import Mask
from gateway.operators.pseudonymise import Pseudonymise

OPERATORS: Mapping[str, Operator] = {
    op.name: op for op in (Keep(), Drop(), Pseudonymise(), Generalise(), Mask(), Exists())
}


@functools.lru_cache(maxsize=256)
def parse_op(op: str) -> tuple[str, str | None]:
    """Split ``"generalise:year"`` into ``("generalise", "year")``; ``"keep"`` → ``("keep", None)``.

    Raises UnknownOperator if no operator has that name.
    """
    if not isinstance(op, str):
        raise UnknownOperator("a field op must be a string")
    name, sep, param = op.partition(":")
    if name not in OPERATORS:
        # Ops come from the policy, never from record values: safe to name.
        raise UnknownOperator(f"no operator implements op {name!r}")
    return name, (param if sep else None)


@functools.lru_cache(maxsize=1024)  # pure: ops are few; a failure raises and is not kept
def validate_op(op: str, field_type: str) -> None:
    """Raise UnknownOperator or InvalidDecision unless ``op`` applies to ``field_type``."""
    name, param = parse_op(op)
    OPERATORS[name].validate(param, field_type)


def minimise(
    records: Iterable[Mapping[str, Any]],
    field_ops: Mapping[str, str],
    field_types: Mapping[str, str],
    pseudonymiser: Pseudonymiser,
) -> list[dict[str, Any]]:
    """Apply the decision's field ops to every record.

    Each output record holds exactly the fields ``field_ops`` names with an op other than
    ``drop``, in ``field_ops`` order; every other field is dropped (default deny). A missing
    or None value stays None (``exists`` gives False). Every op is validated against the
    field's declared type before the first record is touched.

    Raises UnknownOperator/InvalidDecision for a bad op and OperatorError for a record
    value an op cannot transform; no message carries a value.
    """
    plan = [
        (field, op, operator, param, OperatorContext(field, field_type, pseudonymiser))
        for field, op, operator, param, field_type in _plan(
            tuple(field_ops.items()), tuple(field_types.items())
        )
    ]

    out: list[dict[str, Any]] = []
    for record in records:
        if not isinstance(record, Mapping):
            raise OperatorError("a record is not an object")
        out.append(
            {
                field: _apply(record.get(field), op, operator, param, ctx)
                for field, op, operator, param, ctx in plan
            }
        )
    return out


_Step = tuple[str, str, Operator, str | None, str]  # field, op, operator, param, field type


@functools.lru_cache(maxsize=1024)  # a plan per decision shape: few; failures are not kept
def _plan(
    field_ops: tuple[tuple[str, str], ...], field_types: tuple[tuple[str, str], ...]
) -> tuple[_Step, ...]:
    """The validated steps of a decision's ops, ``drop`` left out; raises for a bad op."""
    types = dict(field_types)
    steps: list[_Step] = []
    for field, op in field_ops:
        field_type = types.get(field)
        if field_type is None:
            raise InvalidDecision(f"field op names field {field!r}, which the dataset lacks")
        validate_op(op, field_type)
        name, param = parse_op(op)
        if name != "drop":
            steps.append((field, op, OPERATORS[name], param, field_type))
    return tuple(steps)


def _apply(value: Any, op: str, operator: Operator, param: str | None, ctx: OperatorContext) -> Any:
    if value is None:
        return False if operator.name == "exists" else None
    try:
        return operator.operate(value, param, ctx)
    except OperatorError:
        raise
    except Exception:
        # `from None`: a lower-level message (e.g. from a parser) may quote the value.
        raise OperatorError(f"field {ctx.field}: op {op} cannot transform the value") from None
