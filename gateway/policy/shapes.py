"""The shapes of the documents a policy reads: which keys ``input`` and ``data`` have.

The static checker (`gateway.policy.rego_check`) walks each ``input.…`` and
``data.register.…`` path of a policy down a :class:`Shape`, so that a misspelt key
(``input.dataset.domian``, ``purpose.legal_basi``) is reported instead of silently being
undefined. Both shapes are derived, never copied by hand:

- the input's from the documented JSON Schema `gateway/policy/input.schema.json` (what
  `gateway.policy.input.build_policy_input` builds; a test holds the two together);
- the register's from :meth:`Register.as_data` itself, applied to a register whose
  every optional part is filled in (:func:`register_shape`): mappings get one key,
  :data:`ANY_KEY`, which marks them as maps whose keys are names (purposes, datasets,
  fields) rather than records with fixed keys.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Union, get_args, get_origin, get_type_hints

from gateway.policy.register import Register

__all__ = ["ANY", "ANY_KEY", "SCALAR", "Shape", "input_schema", "input_shape", "register_shape"]

#: The key that stands for "any name" in a sample register (no real name looks like it).
ANY_KEY = "\x00any"
INPUT_SCHEMA = "input.schema.json"


@dataclass(frozen=True)
class Shape:
    """What a value may be. ``record``: these keys only; ``map``: any key, each value of
    shape ``value``; ``array``/``set``: elements of shape ``value``; ``scalar``: no keys;
    ``any``: not known (nothing is checked below it)."""

    kind: str
    fields: Mapping[str, Shape] = field(default_factory=dict)
    value: Shape | None = None
    #: Where the shape comes from ("input", "data" or "rule"): names the kind of mistake.
    origin: str = ""

    def key(self, key: str | int | None) -> Shape | str:
        """The shape below ``key`` (None: a key not known until evaluation), or why
        there is none."""
        if self.kind == "any":
            return self
        if self.kind == "record":
            if key is None:
                return ANY
            if isinstance(key, str) and key in self.fields:
                return self.fields[key]
            known = ", ".join(sorted(self.fields)) or "none"
            return f"has no key {key} (its keys: {known})"
        if self.kind == "map" or self.kind == "set":
            return self.value or ANY
        if self.kind == "array":
            if isinstance(key, str):
                return f"is an array, not an object (no key {key})"
            return self.value or ANY
        return "is a single value, not an object or array"


ANY = Shape("any")
SCALAR = Shape("scalar")


def union(a: Shape, b: Shape) -> Shape:
    """One shape for a value that may be either: ``any`` unless they are the same."""
    return a if a == b else ANY


@cache
def input_schema() -> dict[str, Any]:
    """The documented JSON Schema of the policy input."""
    text = resources.files("gateway.policy").joinpath(INPUT_SCHEMA).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def input_shape() -> Shape:
    """The policy input's shape, from its JSON Schema."""
    return _from_schema(input_schema(), "input")


def _from_schema(schema: Mapping[str, Any], origin: str) -> Shape:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["array", "null"]: the non-null one decides
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if properties:
            if extra is not False:
                return ANY  # a record that may hold more: its keys cannot be judged
            fields = {k: _from_schema(v, origin) for k, v in properties.items()}
            return Shape("record", fields, origin=origin)
        if isinstance(extra, Mapping):
            return Shape("map", value=_from_schema(extra, origin), origin=origin)
        return ANY
    if kind == "array":
        items = schema.get("items")
        value = _from_schema(items, origin) if isinstance(items, Mapping) else ANY
        return Shape("array", value=value, origin=origin)
    if kind in ("string", "boolean", "integer", "number", "null"):
        return Shape("scalar", origin=origin)
    return ANY


@cache
def register_shape() -> Shape:
    """``data.register``'s shape: :meth:`Register.as_data` of a register whose every
    optional part is filled in, read back as a shape."""
    return _from_sample(_sample(Register).as_data())


def _from_sample(value: object) -> Shape:
    if isinstance(value, Mapping):
        if ANY_KEY in value:
            return Shape("map", value=_from_sample(value[ANY_KEY]), origin="data")
        fields = {str(k): _from_sample(v) for k, v in value.items()}
        return Shape("record", fields, origin="data")
    if isinstance(value, list | tuple):
        return Shape("array", value=_from_sample(value[0]) if value else ANY, origin="data")
    return Shape("scalar", origin="data")


def _sample(kind: Any) -> Any:
    """A value of a type hint with every optional part present (None only for None)."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        arms = [arm for arm in get_args(kind) if arm is not type(None)]
        return _sample(arms[0])
    if origin is tuple or origin is list:
        return (_sample(get_args(kind)[0]),)
    if origin in (dict, Mapping) or (origin is not None and _is_mapping(origin)):
        return {ANY_KEY: _sample(get_args(kind)[1])}
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = get_type_hints(kind)
        values = {}
        for spec in dataclasses.fields(kind):
            try:
                values[spec.name] = _sample(hints[spec.name])
            except TypeError:
                # Not policy data (case_ref_formats): its default will do.
                if spec.default is dataclasses.MISSING and (
                    spec.default_factory is dataclasses.MISSING
                ):
                    raise
        return kind(**values)
    if kind is bool:
        return True
    if kind is int:
        return 1
    if kind is str:
        return ANY_KEY
    raise TypeError(f"no sample for {kind!r}")


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)
