"""Subject access (AVG art. 15, *inzageverzoek*): every decision about one data subject.

The DPO answers a data subject's access request from the audit log: to whom what was
disclosed, when, for which purpose, under which legal basis and in which form. The log
holds no identifier, only the subject's references under the DPO subject key
(`gateway.subject_refs`): the caller derives them from the identifier (the console with
the gateway's key, ``doelpoort audit subject`` offline with the DPO's copies) and this
module finds the entries holding any of them through the log's index, groups them by
request and renders the report (HTML, or PDF through WeasyPrint). Nothing here sees an
identifier, and the report names only which kinds of identifier were searched for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from audit.clock import rfc3339, utc_now
from audit.entry import AuditRecord, ReidentificationRecord
from audit.query import EntryFilter, LoggedEntry, entries_with_subject_refs, iter_selection
from audit.reader import AuditReader
from gateway.api_models import Subject
from gateway.dpo.render import html_to_pdf, render_html
from gateway.errors import InvalidRequest
from gateway.subject_refs import COMPOUND

__all__ = [
    "IDENTITY_FIELDS",
    "Reidentification",
    "Release",
    "SubjectAccess",
    "SubjectDecision",
    "SubjectRequest",
    "identified_by",
    "release_form",
    "render_subject_report",
    "subject_decisions",
    "validated_identity",
]

IDENTITY_FIELDS = ("bsn", "v_number", "passport_no", "iban", "name", "date_of_birth")
"""What the DPO may look a subject up by (as the partner API identifies one)."""


@dataclass(frozen=True)
class Release:
    """One field of a dataset as it was released: the op, and what it means."""

    field: str
    op: str
    form: str


@dataclass(frozen=True)
class SubjectDecision:
    """One dataset decision of a request about the subject."""

    seq: int
    provider: str
    dataset: str
    decision: str
    legal_basis: str
    reasons: list[str]
    released: list[Release]
    """The fields released and in which form; empty unless the decision was to allow."""
    record_count: int
    error: str | None
    policy_digest: str


@dataclass(frozen=True)
class Reidentification:
    """A release of one of the request's escrows to the DPO: what a pseudonym stood for
    was looked up, by whom, when and why."""

    seq: int
    time: str
    dpo: str
    entry_seq: int
    reason: str


@dataclass(frozen=True)
class SubjectRequest:
    """One request (a disclosure) about the subject and its dataset decisions."""

    disclosure_id: str
    time: str
    requester: str
    purpose: str
    legal_basis: str
    case_ref: str
    decisions: list[SubjectDecision]
    reidentifications: list[Reidentification] = field(default_factory=list)

    @property
    def disclosed(self) -> bool:
        """Whether anything about the subject left the gateway in this request."""
        return any(d.decision == "allow" and d.record_count for d in self.decisions)


@dataclass(frozen=True)
class SubjectAccess:
    """Every request about a subject, oldest first."""

    requests: list[SubjectRequest]
    identified_by: list[str]
    """The kinds of identifier searched for (``bsn``, ``name+date_of_birth``): never one."""
    generated_at: str
    keys: int = 1
    """How many subject keys the references were derived with (the current and legacy)."""
    decisions: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decisions", sum(len(r.decisions) for r in self.requests))

    def as_json(self) -> dict[str, Any]:
        """The JSON twin's body: requests, counted as requests and as dataset decisions."""
        return {
            "generated_at": self.generated_at,
            "identified_by": self.identified_by,
            "counts": {"requests": len(self.requests), "dataset_decisions": self.decisions},
            "requests": [
                {**asdict(request), "disclosed": request.disclosed} for request in self.requests
            ],
        }


def validated_identity(fields: dict[str, str]) -> dict[str, str]:
    """The identifiers given, checked as the partner API checks a subject (formats, the
    BSN's eleven-test, a name only with a date of birth); `InvalidRequest` naming the
    field and rule, never the value."""
    given = {k: v.strip() for k, v in fields.items() if k in IDENTITY_FIELDS and v.strip()}
    if not given:
        raise InvalidRequest(
            "give a bsn, v_number, passport_no or iban, or a name with a date_of_birth"
        )
    try:
        return Subject.model_validate(given).keys()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, err['loc'])) or 'subject'}: {err['msg']}" for err in exc.errors()
        ]
        raise InvalidRequest("; ".join(problems)) from None


def identified_by(identity: dict[str, str]) -> list[str]:
    """The kinds of identifier given, for the report (``name+date_of_birth`` as one)."""
    kinds = [k for k in identity if k not in COMPOUND]
    return kinds + (["+".join(COMPOUND)] if all(p in identity for p in COMPOUND) else [])


_FORMS = {
    "keep": "in clear",
    "pseudonymise": "pseudonymised (a pseudonym of the requester and purpose only)",
    "generalise:year": "year only",
    "generalise:month": "year and month only",
    "generalise:municipality": "municipality only",
    "exists": "only whether it is known",
}


def release_form(op: str) -> str:
    """What a field op released, in words for the report."""
    if op in _FORMS:
        return _FORMS[op]
    if op == "mask" or op.startswith("mask:"):
        last = op.partition(":")[2] or "4"
        return f"masked (at most the last {last} characters)"
    return op


def subject_decisions(
    reader: AuditReader,
    refs: Collection[str],
    *,
    identified_by: Sequence[str] = (),
    keys: int = 1,
    now: datetime | None = None,
) -> SubjectAccess:
    """Every decision the log holds about the subject whose references are ``refs``,
    grouped by request (oldest first); found through the log's index of references."""
    requests: dict[str, list[tuple[LoggedEntry, AuditRecord]]] = {}
    for entry in entries_with_subject_refs(reader, refs) if refs else []:
        if isinstance(entry.record, AuditRecord):
            requests.setdefault(entry.record.disclosure_id, []).append((entry, entry.record))
    releases = _reidentifications(reader, {e.seq for found in requests.values() for e, _ in found})
    return SubjectAccess(
        requests=[_request(key, found, releases.get(key, [])) for key, found in requests.items()],
        identified_by=list(identified_by),
        generated_at=rfc3339(now or utc_now()),
        keys=keys,
    )


def _reidentifications(reader: AuditReader, seqs: set[int]) -> dict[str, list[Reidentification]]:
    """The re-identifications of any of the entries ``seqs``, by request."""
    found: dict[str, list[Reidentification]] = {}
    if not seqs:
        return found
    for entry in iter_selection(reader, EntryFilter(decision="reidentification")):
        record = entry.record
        if isinstance(record, ReidentificationRecord) and record.entry_seq in seqs:
            found.setdefault(record.disclosure_id, []).append(
                Reidentification(
                    entry.seq, record.time, record.dpo, record.entry_seq, record.reason
                )
            )
    return found


def _request(
    key: str,
    found: list[tuple[LoggedEntry, AuditRecord]],
    reidentifications: list[Reidentification],
) -> SubjectRequest:
    first = found[0][1]
    bases = list(dict.fromkeys(r.legal_basis for _, r in found if r.legal_basis))
    return SubjectRequest(
        disclosure_id=key,
        time=first.time,
        requester=first.requester,
        purpose=first.purpose,
        legal_basis="; ".join(bases),
        case_ref=first.case_ref,
        decisions=[_decision(entry.seq, record) for entry, record in found],
        reidentifications=reidentifications,
    )


def _decision(seq: int, record: AuditRecord) -> SubjectDecision:
    released = [
        Release(name, op, release_form(op))
        for name, op in sorted(record.field_ops.items())
        if op != "drop"
    ]
    return SubjectDecision(
        seq=seq,
        provider=record.provider,
        dataset=record.dataset,
        decision=record.decision,
        legal_basis=record.legal_basis,
        reasons=list(record.reasons),
        released=released if record.decision == "allow" and record.record_count else [],
        record_count=record.record_count,
        error=record.error,
        policy_digest=record.policy_digest,
    )


def render_subject_report(access: SubjectAccess, fmt: Literal["html", "pdf"] = "html") -> bytes:
    """The access-request report: a standalone HTML document (styles inline, to print or
    keep as a file), or that document as PDF."""
    html = render_html("subject_report.html", access=access, css=_report_css())
    if fmt == "pdf":
        return html_to_pdf(html)
    return html.encode("utf-8")


def _report_css() -> str:
    from importlib.resources import files

    return (files("gateway.dpo") / "static" / "console.css").read_text(encoding="utf-8")
