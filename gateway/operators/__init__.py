"""Field operators: what a decision's ``field_ops`` do to each record before disclosure.

One small module per op (presidio style), a registry keyed by name, and
:func:`minimise`, which the pipeline calls. See each module for the op's exact output.

==================  ==========================  =======================================
op                  applies to                  output
==================  ==========================  =======================================
keep                any type                    the value, unchanged
drop                any type                    nothing (the field is left out)
pseudonymise        any type                    ``psn:…`` keyed per requester x purpose
generalise:year     date                        ``"1990"``
generalise:month    date                        ``"1990-04"``
generalise:municipality  address                the municipality
mask[:n]            string                      ``"****"`` + last n (default 4) chars
exists              any type                    true / false
==================  ==========================  =======================================
"""

from gateway.operators.base import Operator, OperatorContext, Pseudonymiser
from gateway.operators.registry import OPERATORS, minimise, parse_op, validate_op
from gateway.vocabulary import FIELD_TYPES

__all__ = [
    "FIELD_TYPES",
    "OPERATORS",
    "Operator",
    "OperatorContext",
    "Pseudonymiser",
    "minimise",
    "parse_op",
    "validate_op",
]
