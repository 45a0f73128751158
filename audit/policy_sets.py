"""Policy sets: the digest that names one, and the form the archive keeps it in.

A *policy set* is the (relative path, content) pairs of every file that decides (which
files those are is `gateway.policy.bundle`'s to say). Every audit entry names the set that
made its decision by its digest::

    digest = "sha256:" + hex(SHA-256 over the pairs, sorted by path, each as
             len(path) ":" path len(content) ":" content)

with paths POSIX and relative, and lengths decimal counts of UTF-8 bytes, so no two sets
share an encoding. It is defined here, not in the gateway, so that the DPO's tools
recompute it with the audit package alone.

The audit store archives each distinct set under its digest
(`AuditStore.archive_policy_set`), as the RFC 8785 canonical JSON of ``{path: content}``.
Reading one back recomputes the digest and refuses a set whose content does not match it:
the archive is content-addressed, so what it shows under a digest is exactly the text that
made every decision whose entry carries that digest, whoever could write the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import NamedTuple

import rfc8785

from audit.errors import PolicySetMismatch

__all__ = [
    "DIGEST_PATTERN",
    "ArchivedPolicySet",
    "decode_policy_set",
    "encode_policy_set",
    "policy_digest",
]

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
"""What a policy digest looks like (match it whole)."""


class ArchivedPolicySet(NamedTuple):
    """One set in the archive: its digest, and when the gateway first used it (RFC 3339)."""

    digest: str
    first_used: str


def policy_digest(sources: Iterable[tuple[str, str]]) -> str:
    """The digest of a policy set's (relative path, content) pairs (module docstring)."""
    h = hashlib.sha256()
    for path, content in sorted(sources):
        for part in (path.encode(), content.encode()):
            h.update(b"%d:" % len(part))
            h.update(part)
    return "sha256:" + h.hexdigest()


def encode_policy_set(sources: Iterable[tuple[str, str]]) -> bytes:
    """The archived form of a set: canonical JSON of ``{path: content}``.

    Raises `ValueError` when a path comes twice (the digest would cover both files, a
    mapping only one).
    """
    files: dict[str, str] = {}
    for path, content in sources:
        if path in files:
            raise ValueError("a policy set names a file twice")
        files[path] = content
    return bytes(rfc8785.dumps(files))


def decode_policy_set(digest: str, stored: bytes) -> dict[str, str]:
    """The files (path → content) of the set archived under `digest`.

    Raises `PolicySetMismatch` when `stored` is not an archived set, or is one whose digest
    is not `digest`: changed since it was archived, or stored under another name.
    """
    try:
        files = json.loads(stored)
    except (ValueError, UnicodeDecodeError):
        raise PolicySetMismatch(f"the archived policy set {digest} is not readable") from None
    if not isinstance(files, dict) or not all(
        isinstance(path, str) and isinstance(content, str) for path, content in files.items()
    ):
        raise PolicySetMismatch(f"the archived policy set {digest} is not a set of files")
    if policy_digest(files.items()) != digest:
        raise PolicySetMismatch(
            f"the archived policy set {digest} does not match its digest: it was changed "
            "after it was archived"
        )
    return files
