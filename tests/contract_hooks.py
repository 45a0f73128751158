"""Schemathesis hooks for Doelpoort's contract: ``SCHEMATHESIS_HOOKS=tests.contract_hooks``.

The document gives ``subject.bsn`` the format ``bsn``: nine digits that pass the
eleven-test, which JSON Schema cannot state. Without this strategy a fuzzer draws nine
random digits, ten in eleven fail the test and are rightly refused (422), and almost no
generated request with a BSN reaches a decision. With it, every drawn BSN passes.
Likewise a consistency proof's two sizes are sent in order (`before_call`).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

from gateway.api_models import bsn_is_valid

_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def complete_bsn(first_eight: int) -> str | None:
    """The one BSN that starts with these eight digits, if any (the check digit d9 is
    the weighted sum mod 11; a sum of 10 mod 11 has none)."""
    digits = f"{first_eight:08d}"
    check = sum(int(d) * w for d, w in zip(digits, _WEIGHTS, strict=True)) % 11
    bsn = f"{digits}{check}"
    return bsn if check < 10 and bsn_is_valid(bsn) else None


def _is_bsn(value: str | None) -> bool:
    return value is not None


BSNS = st.integers(0, 99_999_999).map(complete_bsn).filter(_is_bsn)

schemathesis.openapi.format("bsn", BSNS)


CONSISTENCY = "/v1/audit/consistency"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Any, kwargs: object) -> None:
    """`GET /v1/audit/consistency?from=M&to=N` needs M <= N, which JSON Schema cannot
    state across two parameters: a drawn request that is valid by the schema, with M > N,
    is sent the right way round (the gateway answers a reversed pair with 422, and
    tests/dpo/test_proofs.py holds it to that)."""
    meta = case.meta
    if case.operation.path != CONSISTENCY or meta is None or not meta.generation.mode.is_positive:
        return
    query = case.query or {}
    first, last = _number(query.get("from")), _number(query.get("to"))
    if first is not None and last is not None and first > last:
        case.query = {**query, "from": query["to"], "to": query["from"]}


def _number(value: object) -> int | None:
    """A drawn query value as a number (the coverage phase sends strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
