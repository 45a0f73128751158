"""Compile ``policies/`` (every ``*.rego`` plus the purpose register) into a regopy bundle.

The bundle's digest identifies exactly which policy made a decision::

    digest = "sha256:" + hex(SHA-256 over every policy file, sorted by relative path, of
             len(path) ":" path len(content) ":" content)

where *policy file* is every ``*.rego`` under ``policies/`` but the tests
(``*_test.rego``) and ``register.yaml``, paths
are POSIX and relative to ``policies/``, lengths are decimal byte counts (so no two file
sets share an encoding). Any change to a rule, a comment or the register changes it;
nothing else does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regopy import Interpreter, LogLevel, RegoError

from gateway.errors import ConfigurationError
from gateway.policy.memo import code_of
from gateway.policy.register import REGISTER_FILE, Register

#: The rule every disclosure decision comes from (package doelpoort.disclosure).
ENTRYPOINT = "doelpoort/disclosure/decision"
#: Rego files ending so are tests: neither compiled into the bundle nor under the digest.
TEST_SUFFIX = "_test.rego"

# regopy's error S-expression: (error <n>:<file>|<offset>|<len> (errormsg <n>:<message>) …)
_ERROR = re.compile(r"\(error (\d+):")
_MESSAGE = re.compile(r"\(errormsg (\d+):")
# For declares_entrypoint: the package and every rule head at the start of a line
# (``decision :=``, ``default decision :=``, ``x if``, ``x.y contains``, ``f(a) :=``).
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_RULE_HEAD = re.compile(
    r"^(?:default\s+)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?=:=|=|\bif\b|\bcontains\b|\{|\[|\()",
    re.MULTILINE,
)


@dataclass(frozen=True)
class PolicyBundle:
    """A policy bundle that compiled, and what it was compiled from.

    :func:`compile_bundle` compiles it once to check it. regopy interpreters are not
    thread-safe, so each engine worker thread compiles its own copy from ``modules`` and
    ``data`` with :meth:`compile` (a few milliseconds, once).
    """

    digest: str
    entrypoint: str
    modules: tuple[tuple[str, str], ...]
    data: Mapping[str, Any]
    register: Register
    #: (relative path, content) of every file the digest covers, sorted by path: what
    #: an archive or a bundle of this policy set holds.
    sources: tuple[tuple[str, str], ...] = ()

    def compile(self) -> tuple[Any, Any]:
        """A fresh (Interpreter, Bundle) pair for the calling thread only."""
        return _build(self.modules, self.data, self.entrypoint)

    def declares_entrypoint(self) -> bool:
        """Whether some module declares the entrypoint's rule (by reading the sources).

        regopy compiles a bundle for an entrypoint no rule defines, and then answers
        "undefined", as for a rule that is undefined for an input; this tells the two
        apart to word a start-up error. A guess from the text, so it never refuses
        anything by itself.
        """
        target = self.entrypoint.replace("/", ".")
        for _name, source in self.modules:
            code = code_of(source)
            package = _PACKAGE.search(code)
            if package is None:
                continue
            for head in _RULE_HEAD.findall(code):
                rule = f"{package.group(1)}.{head}"
                if rule == target or rule.startswith(target + "."):
                    return True
        return False


def compile_bundle(policies_dir: Path, *, entrypoint: str = ENTRYPOINT) -> PolicyBundle:
    """Load the register and every ``*.rego`` under ``policies_dir`` and compile them.

    Raises ConfigurationError on an unreadable or invalid register, no Rego at all, or a
    Rego syntax error (naming file, line and column as regopy reports them).
    """
    register_path = policies_dir / REGISTER_FILE
    register = Register.load(register_path)
    # *_test.rego files are tests (`doelpoort policy test`), not policy: never served.
    rego_paths = sorted(
        (p for p in policies_dir.rglob("*.rego") if not p.name.endswith(TEST_SUFFIX)),
        key=lambda p: p.relative_to(policies_dir),
    )
    if not rego_paths:
        raise ConfigurationError(f"{policies_dir}: no .rego policy files")
    modules = tuple((path.relative_to(policies_dir).as_posix(), _read(path)) for path in rego_paths)
    data = {"register": register.as_data()}
    _build(modules, data, entrypoint)  # compile errors stop start-up, naming the line
    files = tuple(sorted([*modules, (REGISTER_FILE, _read(register_path))]))
    return PolicyBundle(
        digest=policy_digest(files),
        entrypoint=entrypoint,
        modules=modules,
        data=data,
        register=register,
        sources=files,
    )


def policy_digest(files: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
    """The digest of (relative path, content) pairs; see the module docstring."""
    h = hashlib.sha256()
    for path, content in sorted(files):
        for part in (path.encode(), content.encode()):
            h.update(b"%d:" % len(part))
            h.update(part)
    return "sha256:" + h.hexdigest()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read policy file: {exc}") from exc


def _build(
    modules: tuple[tuple[str, str], ...], data: Mapping[str, Any], entrypoint: str
) -> tuple[Any, Any]:
    interpreter = Interpreter()
    # Errors reach the caller as ConfigurationError/PolicyEvaluationError, not stdout.
    interpreter.log_level = LogLevel.NONE
    sources = dict(modules)
    try:
        for name, source in modules:
            interpreter.add_module(name, source)
        interpreter.add_data(dict(data))
        bundle = interpreter.build(None, [entrypoint])
    except RegoError as exc:
        raise ConfigurationError(_describe(str(exc), sources)) from None
    if not bundle.ok():
        raise ConfigurationError(f"the policy bundle for {entrypoint} did not compile")
    return interpreter, bundle


def _describe(error: str, sources: Mapping[str, str]) -> str:
    """Turn regopy's error S-expression into "file:line:col: message" lines."""
    lines: list[str] = []
    pos = 0
    while (m := _ERROR.search(error, pos)) is not None:
        start = m.end()
        name = error[start : start + int(m.group(1))]
        offset_m = re.match(r"\|(\d+)\|", error[start + len(name) :])
        msg_m = _MESSAGE.search(error, start)
        message = "policy error"
        if msg_m is not None:
            message = error[msg_m.end() : msg_m.end() + int(msg_m.group(1))]
        where = name
        if offset_m is not None and name in sources:
            line, col = _line_col(sources[name], int(offset_m.group(1)))
            where = f"{name}:{line}:{col}"
        lines.append(f"{where}: {message}")
        pos = start
    return "; ".join(lines) if lines else "the policy did not compile: " + error.strip()[:500]


def _line_col(source: str, offset: int) -> tuple[int, int]:
    # regopy reports byte offsets into the UTF-8 source.
    before = source.encode()[:offset].decode(errors="replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
