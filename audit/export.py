"""Exports of a selection of the audit log, streamed: JSONL, CSV and Logboek
Dataverwerkingen records.

Each exporter is a generator of bytes over entries in seq order (a selection from
`audit.query.iter_selection`), holding one chunk of output at a time, so a million
entries export in constant memory. An export holds only what the entries hold: their
fields as logged, the entry's sequence number and leaf hash, and for Logboek records
identifiers derived from them. See docs/dpo.md, "Exports".

**Logboek Dataverwerkingen.** The records follow the interface of the Logboek component
of the standard *Logboek Dataverwerkingen* version 1.0.0 (Logius; the normative text in
github.com/Logius-standaarden/logboek-dataverwerkingen, section "Component: Logboek"):
``trace_id`` (16 bytes, hex), ``span_id`` (8 bytes, hex), ``status`` (``Unset`` |
``Ok`` | ``Error``), ``name``, ``start_time``, ``end_time``, ``parent_span_id``,
``resource`` and ``attributes`` with ``dpl.core.processing_activity_id``,
``dpl.core.data_subject_id`` and ``dpl.core.data_subject_id_type``. How an entry maps
onto them is `logboek_records`' docstring.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from audit.entry import LogRecord, entry_leaf_hash

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "SUBJECT_ID_TYPE",
    "export_csv",
    "export_jsonl",
    "export_logboek",
    "logboek_records",
]

CHUNK_ENTRIES = 256
"""Entries per chunk of output: large enough to write efficiently, small enough that
memory does not depend on the selection."""

LOGBOEK_VERSION = "1.0.0"
"""The version of Logboek Dataverwerkingen whose field names the records follow."""

SUBJECT_ID_TYPE = "dpo-subject-ref"
"""``dpl.core.data_subject_id_type`` of the subject references: keyed pseudonyms in the
DPO's own domain (see docs/data-model.md), never an identifier."""

PURPOSE_REGISTER = "urn:doelpoort:purpose-register"
"""The purpose register's URI: ``…:sha256:<hex>#<purpose>`` names a purpose in the
register of one policy set (the digest covers register.yaml), so the reference points
at one version of the processing activity, as the standard's Register component asks."""
ACTIVITY = "urn:doelpoort:activity:"
"""Processing activities of the gateway itself, which are no purpose of the register."""

CSV_COLUMNS = (
    "seq",
    "leaf_hash",
    "kind",
    "time",
    "decision",
    "requester",
    "provider",
    "dataset",
    "purpose",
    "legal_basis",
    "case_ref",
    "disclosure_id",
    "reasons",
    "field_ops",
    "record_count",
    "subject_refs",
    "subject_ref_key",
    "pseudonym_refs",
    "policy_digest",
    "records_sha256",
    "retention_days",
    "error",
    "escrow_sha256",
    "escrow_expires",
    "problem",
    "status",
    "method",
    "route",
    "datasets",
    "unrecorded_names",
    "interval_start",
    "interval_end",
    "counts",
    "trigger",
    "source",
    "outcome",
    "old_digest",
    "new_digest",
    "dpo",
    "entry_seq",
    "reason",
    "policy_input",
    "other",
)
"""The CSV's columns: every field of every kind of record, one column each. A list is
joined with ``" | "``, a mapping of names to names or counts as ``key=value`` joined
the same way, the policy input is compact JSON, and ``other`` holds (as compact JSON)
any field a later version adds, so that nothing an entry holds is left out."""
LIST_SEPARATOR = " | "
_FLAT = frozenset(CSV_COLUMNS) - {"seq", "leaf_hash", "kind", "other"}


class EntryLike(Protocol):
    """What an exporter reads of an entry (`audit.query.LoggedEntry`): its place, its
    stored bytes and its record, parsed once by the query that found it."""

    @property
    def seq(self) -> int: ...

    @property
    def prev(self) -> bytes: ...

    @property
    def body(self) -> bytes: ...

    @property
    def record(self) -> LogRecord: ...


def _chunks(entries: Iterable[EntryLike], encode: Callable[[EntryLike], str]) -> Iterator[bytes]:
    """``encode(entry)`` of each entry, CHUNK_ENTRIES to a chunk of UTF-8 bytes."""
    batch: list[str] = []
    for entry in entries:
        batch.append(encode(entry))
        if len(batch) >= CHUNK_ENTRIES:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    if batch:
        yield "".join(batch).encode("utf-8")


def _fields(entry: EntryLike) -> tuple[str, dict[str, Any]]:
    """The entry's leaf hash (hex) and its record's fields (exactly its body's: a
    record's body is the JSON of its fields)."""
    return entry_leaf_hash(entry.seq, entry.prev, entry.body).hex(), vars(entry.record)


# -- JSONL ------------------------------------------------------------------------------

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def export_jsonl(entries: Iterable[EntryLike]) -> Iterator[bytes]:
    """One JSON object per line and entry: ``seq``, ``leaf_hash`` (hex, RFC 9162: what
    an inclusion proof proves) and the record's fields as logged."""

    def encode(entry: EntryLike) -> bytes:
        # The body is a JSON object already, as stored: the line is it with two members
        # put in front, byte for byte what the entry holds (no parse, no re-encoding).
        leaf = entry_leaf_hash(entry.seq, entry.prev, entry.body).hex()
        if not entry.body.startswith(b"{"):
            raise ValueError(f"entry {entry.seq} is not a JSON object")
        head = f'{{"seq":{entry.seq},"leaf_hash":"{leaf}",'.encode()
        return head + entry.body[1:] + b"\n"  # a record always has fields

    batch: list[bytes] = []
    for entry in entries:
        batch.append(encode(entry))
        if len(batch) >= CHUNK_ENTRIES:
            yield b"".join(batch)
            batch.clear()
    if batch:
        yield b"".join(batch)


# -- CSV --------------------------------------------------------------------------------


def export_csv(entries: Iterable[EntryLike]) -> Iterator[bytes]:
    """A header row, then one row per entry in `CSV_COLUMNS` (RFC 4180: the csv module's
    quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def encode(entry: EntryLike) -> str:
        leaf, fields = _fields(entry)
        extra = {k: v for k, v in fields.items() if k not in _FLAT and k != "kind"}
        row = [
            entry.seq,
            leaf,
            fields.get("kind") or "decision",
            *(_cell(fields.get(name)) for name in CSV_COLUMNS[3:-2]),
            _JSON.encode(fields["policy_input"]) if "policy_input" in fields else "",
            _JSON.encode(extra) if extra else "",
        ]
        writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    header = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    yield header.encode("utf-8")
    yield from _chunks(entries, encode)


def _cell(value: Any) -> str | int:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return LIST_SEPARATOR.join(value)
    if isinstance(value, dict) and all(isinstance(v, str | int) for v in value.values()):
        return LIST_SEPARATOR.join(f"{k}={v}" for k, v in value.items())
    return _JSON.encode(value)  # the policy input, and anything nested


# -- Logboek Dataverwerkingen -------------------------------------------------------------

_NAMES = {
    None: "dataset-decision",
    "refusal": "refused-request",
    "refusal-summary": "refused-requests-counted",
    "policy-change": "policy-change",
    "reidentification": "reidentification",
}


def logboek_records(
    entries: Iterable[EntryLike], *, origin: str | None = None
) -> Iterator[dict[str, Any]]:
    """Logboek Dataverwerkingen 1.0.0 records (the Logboek interface) for ``entries``.

    * ``trace_id``: the Dataverwerking is the partner's request. For a disclosure
      request, the 16 bytes of its ``disclosure_id`` (a UUID), so every dataset decision
      of one request shares its trace; for an entry that is a request of its own
      (a refusal) or no request (a policy change, a re-identification), 16 bytes of
      its leaf hash.
    * ``span_id``: the entry is the Actie: the first 8 bytes of its leaf hash, so a
      record leads back to exactly one entry (the JSONL export gives each entry's leaf
      hash; `audit verify` recomputes them).
    * ``status``: ``Ok`` for an allow, a swapped policy set and a re-identification;
      ``Error`` for a decision that failed inside the gateway (with ``exception.type``,
      its error code); ``Unset`` for a deny and a refusal, handled without fault.
    * ``start_time`` = ``end_time``: the entry's time, RFC 3339 UTC in milliseconds.
    * ``dpl.core.processing_activity_id``: the purpose in the purpose register of the
      policy set that decided (`PURPOSE_REGISTER`), or one of the gateway's own
      activities (`ACTIVITY`: refusal, policy-change, reidentification).
    * ``dpl.core.data_subject_id`` and ``…_type``: the entry's subject reference, a keyed
      pseudonym in the DPO's domain (`SUBJECT_ID_TYPE`), never an identifier. A log line
      names at most one, so when the subject has several (one per identity key) the
      first is on the entry's record and each further one on a child record
      (``parent_span_id`` = the entry's span), as the standard does for one action
      with several log lines. An entry without subject has neither attribute.
    * ``resource``: ``service.name`` ``doelpoort`` and the log's origin.
    """
    resource: dict[str, Any] = {"attributes": {"service.name": "doelpoort"}}
    if origin is not None:
        resource["attributes"]["doelpoort.log.origin"] = origin
    for entry in entries:
        leaf = entry_leaf_hash(entry.seq, entry.prev, entry.body)
        fields = vars(entry.record)
        kind = fields.get("kind")
        time = _milliseconds(fields["time"])
        attributes: dict[str, Any] = {
            "dpl.core.processing_activity_id": _activity(kind, fields),
        }
        refs = [ref for ref in fields.get("subject_refs") or [] if isinstance(ref, str)]
        if refs:
            attributes["dpl.core.data_subject_id"] = refs[0]
            attributes["dpl.core.data_subject_id_type"] = SUBJECT_ID_TYPE
        status = _status(kind, fields)
        if status == "Error" and fields.get("error"):
            attributes["exception.type"] = fields["error"]
        span = leaf[:8].hex()
        record = {
            "trace_id": _trace_id(kind, fields, leaf),
            "span_id": span,
            "status": status,
            "name": _NAMES.get(kind, str(kind)),
            "start_time": time,
            "end_time": time,
            "resource": resource,
            "attributes": attributes,
        }
        yield record
        for i, ref in enumerate(refs[1:], start=1):
            yield {
                **record,
                "span_id": hashlib.sha256(leaf + i.to_bytes(4, "big")).digest()[:8].hex(),
                "parent_span_id": span,
                "attributes": {
                    **attributes,
                    "dpl.core.data_subject_id": ref,
                },
            }


def export_logboek(entries: Iterable[EntryLike], *, origin: str | None = None) -> Iterator[bytes]:
    """`logboek_records` as JSON Lines, one record a line."""
    batch: list[str] = []
    for record in logboek_records(entries, origin=origin):
        batch.append(_JSON.encode(record) + "\n")
        if len(batch) >= CHUNK_ENTRIES:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    if batch:
        yield "".join(batch).encode("utf-8")


def _milliseconds(time: str) -> str:
    moment = datetime.fromisoformat(time)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _trace_id(kind: str | None, fields: dict[str, Any], leaf: bytes) -> str:
    disclosure_id = fields.get("disclosure_id") if kind is None else None
    if isinstance(disclosure_id, str) and disclosure_id.startswith("urn:uuid:"):
        try:
            return uuid.UUID(disclosure_id.removeprefix("urn:uuid:")).hex
        except ValueError:
            pass
    return leaf[8:24].hex()


def _activity(kind: str | None, fields: dict[str, Any]) -> str:
    purpose = fields.get("purpose")
    if kind is None and isinstance(purpose, str):
        digest = fields.get("policy_digest") or ""
        version = f":{digest}" if isinstance(digest, str) and digest else ""
        return f"{PURPOSE_REGISTER}{version}#{purpose}"
    if kind == "refusal" and isinstance(purpose, str):
        return f"{PURPOSE_REGISTER}#{purpose}"
    return ACTIVITY + ("refusal" if kind in {"refusal", "refusal-summary"} else str(kind))


def _status(kind: str | None, fields: dict[str, Any]) -> str:
    decision = fields.get("decision")
    if kind is None:
        return {"allow": "Ok", "error": "Error"}.get(str(decision), "Unset")
    if kind == "policy-change":
        return "Ok" if fields.get("outcome") == "swapped" else "Unset"
    if kind == "reidentification":
        return "Ok"
    return "Unset"


EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "logboek": ("application/x-ndjson", "logboek.jsonl"),
}
"""Each format's media type and file extension."""
