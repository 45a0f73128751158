"""Schemathesis hooks for Doelpoort's contract: ``SCHEMATHESIS_HOOKS=tests.contract_hooks``.

The document gives ``subject.bsn`` the format ``bsn``: nine digits that pass the
eleven-test, which JSON Schema cannot state. Without this strategy a fuzzer draws nine
random digits, ten in eleven fail the test and are rightly refused (422), and almost no
generated request with a BSN reaches a decision. With it, every drawn BSN passes.
"""

from __future__ import annotations

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
