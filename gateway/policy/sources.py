"""Where a policy set comes from: the policies directory, or a signed OPA bundle.

A source offers its policy set as a *candidate*: a directory holding the set's files,
which vetting compiles, checks, tests and probes (`gateway.policy.vetting`). The
directory source offers the policies directory itself, so every message names the files
an author edits. The bundle source (``DOELPOORT_POLICY_BUNDLE``) verifies the bundle's
signature, unpacks its files into a private temporary directory for as long as it is
vetted, and says what digest its manifest claims, which the compiled set must match.

Each source also has a cheap *fingerprint*: the inode, times and size of every file it
reads, and nothing of their content, so that a running gateway can poll it every few
seconds (`gateway.policy_switch`). Polling, rather than a file-system watcher: it costs a
few ``stat`` calls, needs no dependency, and sees a change however it was made (an
editor's rename, a configuration management tool, a Kubernetes ConfigMap's symlink swap,
a network file system that sends no events); the CRL and the issuance register are
watched the same way (`gateway.transport.watched_file`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol, TypeAlias

from gateway.errors import ConfigurationError
from gateway.policy.opa_bundle import read_bundle
from gateway.settings import Settings

__all__ = [
    "BundleSource",
    "Candidate",
    "DirectorySource",
    "Fingerprint",
    "PolicySource",
    "SourceKind",
    "policy_source",
]

SourceKind = Literal["directory", "bundle"]
Fingerprint: TypeAlias = tuple[tuple[str, int, int, int, int], ...]
"""(path, inode, mtime ns, ctime ns, size) of every file a source reads, sorted."""


@dataclass(frozen=True)
class Candidate:
    """A policy set offered for vetting: the directory its files are in."""

    kind: SourceKind
    directory: Path
    #: The digest a bundle's manifest names (its ``revision``); None for a directory.
    revision: str | None = None
    #: Where the files really come from, when the directory is a bundle's unpacked copy.
    origin: Path | None = None

    def describe(self, message: str) -> str:
        """``message`` with the unpacked copy's paths named as the bundle's members."""
        if self.origin is None:
            return message
        return message.replace(f"{self.directory}{os.sep}", f"{self.origin}!")


class PolicySource(Protocol):
    """Offers a policy set, and tells cheaply whether it may have changed."""

    @property
    def kind(self) -> SourceKind: ...

    def fingerprint(self) -> Fingerprint:
        """A value that changes whenever a file of the set may have: compare, never read."""

    def open(self) -> AbstractContextManager[Candidate]:
        """The set as a candidate, for as long as the context lasts. Raises
        ConfigurationError when it cannot be offered at all (an unsigned bundle)."""


@dataclass(frozen=True)
class DirectorySource:
    """The policies directory (``DOELPOORT_POLICIES_DIR``), as it is."""

    directory: Path

    @property
    def kind(self) -> SourceKind:
        return "directory"

    def fingerprint(self) -> Fingerprint:
        return _fingerprint(self.directory, _files_under(self.directory))

    @contextlib.contextmanager
    def open(self) -> Iterator[Candidate]:
        yield Candidate("directory", self.directory)


@dataclass(frozen=True)
class BundleSource:
    """A signed OPA bundle (``DOELPOORT_POLICY_BUNDLE``), verified with the deployment's
    key (``DOELPOORT_POLICY_BUNDLE_KEY``); unsigned, foreign-signed or tampered bundles
    are refused by the reader."""

    bundle: Path
    key: Path

    @property
    def kind(self) -> SourceKind:
        return "bundle"

    def fingerprint(self) -> Fingerprint:
        return _fingerprint(self.bundle.parent, [self.bundle, self.key])

    @contextlib.contextmanager
    def open(self) -> Iterator[Candidate]:
        sources, revision = read_signed_bundle(self.bundle, self.key)
        with tempfile.TemporaryDirectory(prefix="doelpoort-policy-") as unpacked:
            directory = Path(unpacked)
            for name, content in sources.items():
                target = directory / _member_path(self.bundle, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            yield Candidate("bundle", directory, revision=revision, origin=self.bundle)


def read_signed_bundle(bundle: Path, key: Path) -> tuple[Mapping[str, str], str]:
    """The bundle's policy files (path → content) and its revision, once its signature
    verified with ``key`` (`gateway.policy.opa_bundle.read_bundle`: ConfigurationError
    for an unsigned, foreign-signed, tampered or malformed bundle)."""
    try:
        verify_key = key.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{key}: cannot read the bundle key ({exc.strerror})") from exc
    read = read_bundle(bundle, verify_key=verify_key, require_signature=True)
    return dict(read.sources), read.digest


def policy_source(settings: Settings) -> PolicySource:
    """The source the settings name: a signed bundle when ``policy_bundle`` is set (with
    its key, or ConfigurationError), else the policies directory."""
    if settings.policy_bundle is None:
        if settings.policy_bundle_key is not None:
            raise ConfigurationError(
                "DOELPOORT_POLICY_BUNDLE_KEY is set but DOELPOORT_POLICY_BUNDLE is not: "
                "name the signed bundle to serve, or unset the key"
            )
        return DirectorySource(settings.policies_dir)
    if settings.policy_bundle_key is None:
        raise ConfigurationError(
            "DOELPOORT_POLICY_BUNDLE is set but DOELPOORT_POLICY_BUNDLE_KEY is not: a "
            "policy bundle is only accepted signed, with the key it must verify with"
        )
    return BundleSource(settings.policy_bundle, settings.policy_bundle_key)


def _files_under(directory: Path) -> list[Path]:
    try:
        return [path for path in directory.rglob("*") if not path.is_dir()]
    except OSError:
        return []  # no directory: an empty fingerprint, and vetting says why


def _fingerprint(root: Path, paths: list[Path]) -> Fingerprint:
    keys = []
    for path in paths:
        try:
            st = path.stat()  # followed: a swapped symlink target is a change
        except OSError:
            st = None
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if st is None:
            keys.append((name, 0, 0, 0, -1))
        else:
            keys.append((name, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return tuple(sorted(keys))


def _member_path(bundle: Path, name: str) -> PurePosixPath:
    """A bundle member's path, when it is a plain relative one; a name that would land
    outside the unpacked directory is a ConfigurationError, not a file written there."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in name.split("/"))
    ):
        raise ConfigurationError(f"{bundle}: the bundle holds a file outside its root")
    return path
