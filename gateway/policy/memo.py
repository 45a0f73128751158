"""Memoised decisions: a decision is a pure function of the input the policy reads.

Most of a policy input — who asks, for which purpose, which dataset with which fields,
which identity key names — repeats from request to request; only ``time`` and
``case_ref`` change, and the demo policy reads neither. Evaluating the same Rego over the
same facts again costs about a millisecond and yields the same decision, so the engine
remembers decisions keyed on exactly the top-level input keys the policy references.

That is sound only when the decision cannot depend on anything else. So
:func:`input_dependencies` reads the policy sources (with comments and string literals
removed) and gives up — no memo at all — when

- ``input`` is used other than as ``input.<key>`` (``input[x]``, ``x := input``,
  ``import input as i``), because then any key may matter; or
- a built-in whose answer changes between calls appears (``time.now_ns``, ``rand.*``,
  ``uuid.*``, ``http.send``, ``net.lookup_ip_addr``, ``opa.runtime``, and the clock-reading
  ``io.jwt.decode_verify`` and ``crypto.x509.parse_and_verify_certificates*``).

A policy that reads ``input.time`` simply gets ``time`` in its key: still correct, never
a hit. Only allowing and denying decisions are remembered; errors are always re-tried.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

_COMMENT_OR_STRING = re.compile(r'#[^\n]*|"(?:\\.|[^"\\\n])*"|`[^`]*`')
_INPUT_WORD = re.compile(r"\binput\b")
_INPUT_KEY = re.compile(r"\binput\.([A-Za-z_][A-Za-z0-9_]*)")
_NONDETERMINISTIC = re.compile(
    r"\b(time\.now_ns|rand\.[a-z_]+|uuid\.[a-z0-9_]+|http\.send|net\.lookup_ip_addr"
    # io.jwt.decode_verify and the x509 verifiers read the clock when given no time.
    r"|opa\.runtime|io\.jwt\.decode_verify|crypto\.x509\.parse_and_verify_certificates\w*)\b"
)

V = TypeVar("V")


def code_of(source: str) -> str:
    """A Rego source without its comments and string literals (each left as a space)."""
    return _COMMENT_OR_STRING.sub(" ", source)


def input_dependencies(sources: Iterable[str]) -> frozenset[str] | None:
    """Top-level input keys the policy reads, or None when that cannot be told."""
    keys: set[str] = set()
    for source in sources:
        code = code_of(source)
        if _NONDETERMINISTIC.search(code):
            return None
        uses = len(_INPUT_WORD.findall(code))
        reads = _INPUT_KEY.findall(code)
        if uses != len(reads):
            return None
        keys.update(reads)
    return frozenset(keys)


class DecisionMemo(Generic[V]):
    """A bounded LRU of decisions, keyed on the input keys the policy reads."""

    def __init__(self, dependencies: frozenset[str], size: int = 4096) -> None:
        self._keys = tuple(sorted(dependencies))
        self._size = size
        self._entries: OrderedDict[str, V] = OrderedDict()
        # The input's dataset section is one long-lived object per dataset (prepared
        # once, never changed): encode it once, recognised by identity.
        self._encoded: dict[int, tuple[object, str]] = {}
        self.hits = 0
        self.misses = 0

    def key(self, policy_input: Mapping[str, Any]) -> str:
        # One encoding for the small keys, the dataset's remembered one appended; JSON
        # never holds a raw 0x1F, so the two parts cannot run together.
        rest = {k: policy_input.get(k) for k in self._keys if k != "dataset"}
        if len(rest) == len(self._keys):
            return _json(rest)
        return _json(rest) + "\x1f" + self._encode_dataset(policy_input.get("dataset"))

    def _encode_dataset(self, value: object) -> str:
        known = self._encoded.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        text = _json(value)
        if len(self._encoded) < 1024:  # one per dataset; the bound is a safety net
            self._encoded[id(value)] = (value, text)
        return text

    def get(self, key: str) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
