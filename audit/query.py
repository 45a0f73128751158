"""The DPO's queries over the audit log (the subset subject access and re-identification
use): entries by subject or pseudonym reference, one entry, one request's entries.

These read the log by scanning it; the indexed version (side tables of references,
generated filter columns) replaces this module.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from audit.entry import AuditRecord, LogRecord, record_from_body
from audit.reader import AuditReader

__all__ = [
    "LoggedEntry",
    "entries_of_request",
    "entries_with_pseudonym_refs",
    "entries_with_subject_refs",
    "get_entry",
]


@dataclass(frozen=True)
class LoggedEntry:
    """One entry, parsed."""

    seq: int
    prev: bytes
    body: bytes
    record: LogRecord


def _parsed(reader: AuditReader, start: int = 1) -> Iterator[LoggedEntry]:
    for seq, prev, body in reader.iter_rows(start):
        yield LoggedEntry(seq, prev, body, record_from_body(body))


def get_entry(reader: AuditReader, seq: int) -> LoggedEntry | None:
    """Entry ``seq``, or None."""
    found = next(_parsed(reader, seq), None)
    return found if found is not None and found.seq == seq else None


def entries_of_request(reader: AuditReader, disclosure_id: str) -> list[LoggedEntry]:
    """Every entry of one disclosure, ascending seq."""
    return [
        e
        for e in _parsed(reader)
        if isinstance(e.record, AuditRecord) and e.record.disclosure_id == disclosure_id
    ]


def _with_refs(reader: AuditReader, member: str, refs: Collection[str]) -> list[LoggedEntry]:
    wanted = set(refs)
    found = []
    for seq, prev, body in reader.iter_rows():
        if wanted & set(json.loads(body).get(member) or ()):
            found.append(LoggedEntry(seq, prev, body, record_from_body(body)))
    return found


def entries_with_subject_refs(reader: AuditReader, refs: Collection[str]) -> list[LoggedEntry]:
    """The entries recording any of ``refs`` among their subject references."""
    return _with_refs(reader, "subject_refs", refs)


def entries_with_pseudonym_refs(reader: AuditReader, refs: Collection[str]) -> list[LoggedEntry]:
    """The entries recording any of ``refs`` among their pseudonym references."""
    return _with_refs(reader, "pseudonym_refs", refs)
