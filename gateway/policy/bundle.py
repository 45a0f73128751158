"""Compile a policy set (the Rego, the purpose register and the catalog) into a regopy bundle.

A *policy set* is every file that decides a disclosure, as (relative path, content) pairs
(`PolicyBundle.sources`):

* every ``*.rego`` under ``policies/``, except ``*_test.rego``: those are tests of the
  policy, not policy, so they are neither compiled into the serving bundle nor covered;
* ``register.yaml``, the purpose register;
* ``catalog.json``, the RFC 8785 canonical JSON of the connector catalog's policy document
  (`Catalog.policy_document`): each partner's roles, each dataset's provider, domain,
  fields (type, category) and identity keys. Granting a partner a role, or changing a
  field's category, changes what policies decide, so it changes the digest; a connector's
  URL, path, secret or pinned certificate is not in it.

The bundle's digest identifies exactly which policy set made a decision::

    digest = "sha256:" + hex(SHA-256 over every (path, content) pair, sorted by path, of
             len(path) ":" path len(content) ":" content)

with paths POSIX and relative to ``policies/``, and lengths decimal byte counts (so no two
sets share an encoding): `audit.policy_sets.policy_digest`, the one implementation, which
the DPO's tools use too. Any change to a rule, a comment, the register or what policies
read from the catalog changes it; nothing else does. The audit store archives each set
under its digest (`AuditStore.archive_policy_set`) before the gateway serves with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regopy import Interpreter, LogLevel, RegoError

from audit.policy_sets import policy_digest
from gateway.canonical import canonical_json
from gateway.config_yaml import parse_yaml
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy.memo import code_of
from gateway.policy.register import REGISTER_FILE, Register

__all__ = [
    "CATALOG_FILE",
    "ENTRYPOINT",
    "TEST_SUFFIX",
    "PolicyBundle",
    "compile_bundle",
    "policy_digest",
    "read_policy_set",
]

#: The policy set's file holding the catalog's policy document.
CATALOG_FILE = "catalog.json"
#: Rego files whose name ends so are tests: never compiled to serve, never in the digest.
TEST_SUFFIX = "_test.rego"

#: The rule every disclosure decision comes from (package doelpoort.disclosure).
ENTRYPOINT = "doelpoort/disclosure/decision"

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


def compile_bundle(
    policies_dir: Path, catalog: Catalog, *, entrypoint: str = ENTRYPOINT
) -> PolicyBundle:
    """Compile the policy set of ``policies_dir`` with ``catalog``: every policy ``*.rego``
    under it (not the ``*_test.rego`` tests), its register, and the catalog's policy
    document; `PolicyBundle.sources` holds exactly what was compiled and what the digest
    covers, read once.

    Raises ConfigurationError on an unreadable or invalid register, no Rego at all, or a
    Rego syntax error (naming file, line and column as regopy reports them). Whether the
    register fits the catalog is `Register.check_against`'s to say (the gateway checks it
    at start-up; tests compile registers that do not, to see the policy refuse them).
    """
    return compile_sources(
        read_policy_set(policies_dir, catalog), where=policies_dir, entrypoint=entrypoint
    )


def compile_sources(
    sources: tuple[tuple[str, str], ...], *, where: Path, entrypoint: str = ENTRYPOINT
) -> PolicyBundle:
    """Compile a policy set given as its (relative path, content) pairs — read from a
    directory, an archive or a bundle; ``where`` names it in errors."""
    sources = tuple(sorted(sources))
    files = dict(sources)
    register_path = where / REGISTER_FILE
    if REGISTER_FILE not in files:
        raise ConfigurationError(f"{where}: the policy set has no {REGISTER_FILE}")
    document = parse_yaml(files[REGISTER_FILE], register_path)  # its errors name the file
    try:
        # From the very text the digest covers, not the file read again.
        register = Register.from_mapping(document)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{register_path}: {exc.detail}") from exc
    modules = tuple((path, content) for path, content in sources if path.endswith(".rego"))
    if not modules:
        raise ConfigurationError(f"{where}: no .rego policy files")
    data = {"register": register.as_data()}
    _build(modules, data, entrypoint)  # compile errors stop start-up, naming the line
    return PolicyBundle(
        digest=policy_digest(sources),
        entrypoint=entrypoint,
        modules=modules,
        data=data,
        register=register,
        sources=sources,
    )


def read_policy_set(policies_dir: Path, catalog: Catalog) -> tuple[tuple[str, str], ...]:
    """The (relative path, content) pairs of the policy set of ``policies_dir`` with
    ``catalog``, sorted by path, without compiling them: what the digest covers (see the
    module docstring). Raises ConfigurationError when a file cannot be read or there is
    no policy Rego at all."""
    rego_paths = sorted(
        (path for path in policies_dir.rglob("*.rego") if not path.name.endswith(TEST_SUFFIX)),
        key=lambda p: p.relative_to(policies_dir),
    )
    if not rego_paths:
        raise ConfigurationError(f"{policies_dir}: no .rego policy files")
    files = [(path.relative_to(policies_dir).as_posix(), _read(path)) for path in rego_paths]
    files.append((REGISTER_FILE, _read(policies_dir / REGISTER_FILE)))
    files.append((CATALOG_FILE, canonical_json(catalog.policy_document()).decode("utf-8")))
    return tuple(sorted(files))


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
