"""The deployment's YAML (``connectors/*.yaml``, ``policies/register.yaml``): read safe
and strict, with errors of one line that name the file.

Strict means a mapping key given twice is refused. PyYAML keeps the last one, so in the
register a ``bsn: keep`` below ``bsn: pseudonymise`` would silently release the BSN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigurationError

__all__ = ["load_yaml", "parse_yaml"]


def load_yaml(path: Path) -> object:
    """The document in ``path``, as plain data; ConfigurationError naming the file (and
    the line) when it cannot be read or is not valid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot be read ({type(exc).__name__})") from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, name: str | Path) -> object:
    """The document in ``text`` (read from ``name``, as messages call it), as plain data;
    ConfigurationError naming it (and the line) when it is not valid YAML. For a caller
    that must use the very bytes it read, such as the policy digest."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigurationError(f"{name}: {problem}{at}") from exc
    except RecursionError:
        # PyYAML composes nested collections recursively: a deep enough document
        # exhausts the stack. Nothing the gateway reads nests more than a few levels.
        raise ConfigurationError(f"{name}: nested too deeply") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
