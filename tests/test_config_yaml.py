"""The YAML reader of every deployment file (gateway/config_yaml.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config_yaml import load_yaml, parse_yaml
from gateway.errors import ConfigurationError


def test_a_document_nested_too_deeply_is_a_one_line_configuration_error(tmp_path: Path) -> None:
    # PyYAML composes recursively: without a guard, a deep flow sequence in a register or
    # a bundle's register.yaml ends in a RecursionError (a traceback), not a refusal.
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigurationError, match=r"^register\.yaml: nested too deeply$"):
        parse_yaml(deep, "register.yaml")
    path = tmp_path / "register.yaml"
    path.write_text(deep, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="nested too deeply"):
        load_yaml(path)


def test_a_duplicate_key_names_the_file_and_line() -> None:
    with pytest.raises(ConfigurationError, match=r"^r\.yaml: .* at line 2$"):
        parse_yaml("a: 1\na: 2\n", "r.yaml")
