"""RFC 8785 canonical JSON — the bytes that receipts sign and audit entries hash.

The ``rfc8785`` package is the reference implementation; it is pure Python and about
eight times slower than the standard library's C encoder. For the values Doelpoort
produces almost always — no floats, integers within ±(2**53 - 1), ASCII object keys —
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` yields the
very same bytes: both escape exactly ``"``, ``\\`` and U+0000 to U+001F (with the same short
forms and lowercase ``\\u00xx``), and for ASCII keys sorting by code point equals RFC
8785's sorting by UTF-16 code unit. Anything outside that shape (a float, a big integer,
a non-ASCII key, a type JSON does not have) goes to ``rfc8785``. The property tests in
``tests/test_canonical.py`` hold the two paths byte-identical.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785
from rfc8785 import CanonicalizationError

__all__ = ["CanonicalizationError", "canonical_json"]

_INT_MAX = 2**53 - 1
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``; raises ``CanonicalizationError``."""
    if _plain(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation report it
    try:
        return rfc8785.dumps(value)
    except UnicodeEncodeError as exc:
        raise CanonicalizationError("a string is not valid Unicode") from exc


def _plain(value: Any) -> bool:
    """Whether the standard encoder's output is already canonical for ``value``."""
    # Iterative and branch-light: this walk runs on every receipt.
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif kind is int:
            if not -_INT_MAX <= item <= _INT_MAX:
                return False
        else:
            return False
    return True
