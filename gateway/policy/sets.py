"""Policy sets side by side: name one (an archived digest, or a policy directory), compare
two, and write one out — what ``doelpoort policy diff | show | list`` do.

A set is named either by its digest, and then read from the audit log's archive (which
refuses a set whose content no longer matches its digest), or by a policy directory, and
then read as the gateway would compile it with a connector catalog
(`gateway.policy.bundle.read_policy_set`), without compiling it: an author can compare a
draft that does not compile yet. A digest may be shortened to a prefix of at least
:data:`MIN_PREFIX` hex digits that names one archived set only.

A diff is of the files as they are, except that ``.json`` files (``catalog.json``, one
line of canonical JSON) are shown indented, one key per line, so that a changed role or
category is one changed line.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from audit.policy_sets import DIGEST_PATTERN, policy_digest
from audit.reader import AuditReader
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy.bundle import read_policy_set

__all__ = [
    "MIN_PREFIX",
    "NamedSet",
    "PolicySetDiff",
    "UnknownPolicySet",
    "diff_sets",
    "resolve",
    "write_set",
]

MIN_PREFIX = 8
"""The fewest hex digits of a digest that may name an archived set."""

_HEX_PREFIX = re.compile(rf"(?:sha256:)?([0-9a-f]{{{MIN_PREFIX},64}})")
_NO_FILE = "/dev/null"


class UnknownPolicySet(LookupError):
    """A digest the archive does not hold, or a name that is neither a digest nor a
    policy directory (the command line's usage error, not one of the gateway's)."""


@dataclass(frozen=True)
class NamedSet:
    """A policy set's files (relative path → content), its digest and where it came from."""

    digest: str
    files: Mapping[str, str]
    origin: str
    """``archive`` or the policy directory it was read from."""


def resolve(
    name: str,
    *,
    archive: Callable[[], AuditReader],
    catalog: Callable[[], Catalog],
    directories: bool = True,
) -> NamedSet:
    """The set `name` names: a digest (or a unique prefix of one) in the archive, or a
    policy directory read with the catalog. `archive` and `catalog` are called only when
    needed (a diff of two directories opens no audit log, a diff of two digests loads no
    catalog). Without `directories`, only the archive is asked.

    Raises `UnknownPolicySet` for a digest the archive does not hold (or a prefix it holds
    none or several of) and for a name that is neither; `PolicySetMismatch` for an
    archived set changed since; `AuditError` when there is no audit log; and
    `ConfigurationError` when a policy directory or the catalog cannot be read.
    """
    if DIGEST_PATTERN.fullmatch(name):
        return _archived(name, archive())
    path = Path(name)
    if directories and path.is_dir():
        files = read_policy_set(path, catalog())
        return NamedSet(policy_digest(files), dict(files), str(path))
    prefix = _HEX_PREFIX.fullmatch(name)
    if prefix is None:
        digest = f"a policy digest (sha256:<64 hex digits>, or at least {MIN_PREFIX} of them)"
        raise UnknownPolicySet(
            f"{name} is neither {digest} nor a policy directory"
            if directories
            else f"{name} is not {digest}"
        )
    reader = archive()
    wanted = "sha256:" + prefix.group(1)
    found = [s.digest for s in reader.policy_sets() if s.digest.startswith(wanted)]
    if len(found) != 1:
        some = "no archived policy set" if not found else f"{len(found)} archived policy sets"
        raise UnknownPolicySet(f"{some} in {reader.location} start with {wanted}")
    return _archived(found[0], reader)


def _archived(digest: str, reader: AuditReader) -> NamedSet:
    files = reader.policy_set(digest)
    if files is None:
        raise UnknownPolicySet(f"the archive in {reader.location} holds no policy set {digest}")
    return NamedSet(digest, files, "archive")


@dataclass(frozen=True)
class PolicySetDiff:
    """What changed from set `a` to set `b`, file by file."""

    a: NamedSet
    b: NamedSet
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.changed or self.added or self.removed)

    def unified(self) -> Iterator[str]:
        """A unified diff per changed, added and removed file (from or to /dev/null), in
        path order: lines, each ending in a newline."""
        for path in sorted([*self.changed, *self.added, *self.removed]):
            before, after = self.a.files.get(path), self.b.files.get(path)
            yield from difflib.unified_diff(
                _display(path, before),
                _display(path, after),
                fromfile=f"a/{path}" if before is not None else _NO_FILE,
                tofile=f"b/{path}" if after is not None else _NO_FILE,
                fromfiledate=self.a.digest,
                tofiledate=self.b.digest,
            )


def diff_sets(a: NamedSet, b: NamedSet) -> PolicySetDiff:
    """Compare two sets file by file (content exactly, not as displayed)."""
    return PolicySetDiff(
        a,
        b,
        changed=sorted(p for p in a.files.keys() & b.files.keys() if a.files[p] != b.files[p]),
        added=sorted(b.files.keys() - a.files.keys()),
        removed=sorted(a.files.keys() - b.files.keys()),
    )


def _display(path: str, content: str | None) -> list[str]:
    """The lines a diff shows of a file: JSON indented, and a last line without its
    newline marked as diff marks it."""
    if content is None:
        return []
    text = content
    if path.endswith(".json"):
        try:
            text = json.dumps(json.loads(content), indent=2, sort_keys=True, ensure_ascii=False)
        except ValueError:
            pass  # shown as it is
        else:
            text += "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def write_set(files: Mapping[str, str], target: Path) -> list[Path]:
    """Write a set's files under `target` (a new or empty directory), as they are.

    Raises `ConfigurationError` when `target` holds anything already (nothing is ever
    overwritten) or a path is not a plain relative one (an archive is read from a file
    that others can write: its paths are not trusted to stay inside `target`).
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"{target} exists and is not an empty directory")
    for path in files:
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or "\\" in path or {"..", "."} & set(parts):
            raise ConfigurationError(f"the policy set holds a file outside its directory: {path}")
    written = []
    for path, content in sorted(files.items()):
        out = target.joinpath(*PurePosixPath(path).parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("x", encoding="utf-8", newline="") as handle:
            handle.write(content)
        written.append(out)
    return written
