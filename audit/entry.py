"""What one audit entry holds, and the exact bytes that get hashed.

An `AuditRecord` is the content of one decision (one dataset of one request). A
`RefusalRecord` is one refused request of a known partner, and a `RefusalSummaryRecord`
counts a partner's refusals beyond the rate at which each gets its own entry; both carry
``kind`` (decisions, the first kind, carry none) and ``decision = "refused"``, so the
DPO's decision filter finds them. A `PolicyChangeRecord` is one attempt to swap the
running gateway's policy set (``kind`` and ``decision`` both ``policy-change``). A
`ReidentificationRecord` is one release of an entry's escrow to the DPO (``kind`` and
``decision`` both ``reidentification``), committed before the escrow leaves. A
record's `body()` is compact JSON with sorted keys, so the same record always yields the
same bytes; `record_from_body` reads any kind back.
A stored entry adds a sequence number and `prev`, the leaf hash of the entry before it;
the leaf of the Merkle tree is `leaf_bytes(seq, prev, body)`, and `entry_leaf_hash`
hashes it. See docs/data-model.md, "Audit log".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any, Literal, TypeAlias

from audit.hasher import HASH_SIZE, LEAF_PREFIX

# allow_nan=False: NaN and Infinity are not JSON; encoding them must fail, not pass.
_BODY_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

Decision = Literal["allow", "deny", "error"]
DECISIONS: frozenset[str] = frozenset({"allow", "deny", "error"})

GENESIS_PREV = bytes(HASH_SIZE)
"""The `prev` of the first entry (seq 1): 32 zero bytes."""

SEQ_SIZE = 8


@dataclass(frozen=True)
class AuditRecord:
    """The content of one decision. Holds names, digests and pseudonyms; never values."""

    time: str
    disclosure_id: str
    requester: str
    provider: str
    dataset: str
    purpose: str
    legal_basis: str
    case_ref: str
    decision: Decision
    reasons: list[str] = field(default_factory=list)
    field_ops: dict[str, str] = field(default_factory=dict)
    record_count: int = 0
    subject_refs: list[str] = field(default_factory=list)
    policy_digest: str = ""
    records_sha256: str | None = None
    retention_days: int | None = None
    error: str | None = None
    policy_input: dict[str, Any] = field(default_factory=dict)
    escrow_sha256: str | None = None
    """The digest of the entry's escrow (`escrow_digest`), which is kept beside the body
    rather than in it, so that it can be erased when its retention ends."""
    escrow_expires: int | None = None
    """When that escrow is to be erased (Unix seconds): an erasure before it is not the
    store's doing."""
    subject_ref_key: str | None = None
    """The key id of the DPO subject key ``subject_refs`` and ``pseudonym_refs`` are keyed
    under; None for entries logged before that key (the legacy derivation)."""
    pseudonym_refs: list[str] = field(default_factory=list)
    """The keyed references of the pseudonyms this entry released (never the pseudonyms),
    so the DPO finds the entries whose escrow holds one without opening any."""

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {sorted(DECISIONS)}")
        _check_time(self.time)
        if self.record_count < 0:
            raise ValueError("record_count must not be negative")

    def body(self) -> bytes:
        """The entry body that gets hashed: compact JSON with sorted keys, UTF-8.

        The body is stored byte for byte and verification hashes the stored bytes, so it
        needs to be well-formed JSON, not canonical: the standard library's C encoder
        makes it several times faster than RFC 8785 would (receipts do use RFC 8785).
        """
        # The instance's own dict holds exactly the fields (no slots, no extras); the
        # encoder sorts the keys, so its order does not matter.
        return _BODY_ENCODER.encode(self.__dict__).encode("utf-8")

    @classmethod
    def from_body(cls, body: bytes | str) -> AuditRecord:
        """Parse a stored body back into a record (for the DPO tools)."""
        content = json.loads(body)
        if not isinstance(content, dict):
            raise ValueError("an audit body is a JSON object")
        return cls(**content)


@dataclass(frozen=True)
class StoredEscrow:
    """A re-identification escrow as the store keeps it beside its entries' bodies.

    ``sealed`` is the justification and pseudonyms' values sealed to the DPO
    (gateway/escrow.py); the store erases it once ``expires`` (Unix seconds) has passed.
    Each entry body binds it by `escrow_digest`.
    """

    sealed: str
    expires: int


def escrow_digest(sealed: str) -> str:
    """What an entry body records of its escrow: ``sha256:`` and the hex digest."""
    return "sha256:" + sha256(sealed.encode("utf-8")).hexdigest()


REFUSED = "refused"
"""The ``decision`` of refusal entries: the DPO filters them like decisions."""


@dataclass(frozen=True)
class RefusalRecord:
    """One refused request of a known partner: who, which problem, and the purpose and
    dataset names it gave, if they were well-formed names. Never a value of the body.

    The gateway decides which names are safe to record (`gateway/refusals.py`); this
    record only holds them.
    """

    time: str
    requester: str
    problem: str
    """The problem type's code (``urn:doelpoort:problem:<code>``), e.g. ``invalid-request``."""
    status: int
    method: str
    route: str | None
    """The route template the request matched (never the raw path); None for none."""
    purpose: str | None = None
    datasets: list[str] = field(default_factory=list)
    unrecorded_names: int = 0
    """Purpose and dataset names the request gave that are not recorded: not well-formed
    names, or possibly an identifier (see docs/data-model.md)."""
    kind: Literal["refusal"] = "refusal"
    decision: Literal["refused"] = "refused"

    def __post_init__(self) -> None:
        _check_kind(self.kind, "refusal", self.decision)
        _check_time(self.time)
        if not 400 <= self.status <= 499:
            raise ValueError("status must be a 4xx HTTP status")
        if self.unrecorded_names < 0:
            raise ValueError("unrecorded_names must not be negative")

    def body(self) -> bytes:
        return _BODY_ENCODER.encode(self.__dict__).encode("utf-8")


@dataclass(frozen=True)
class RefusalSummaryRecord:
    """A partner's refusals in one interval that have no entry of their own (beyond the
    rate, or their entry could not be written), counted by problem code."""

    time: str
    requester: str
    interval_start: str
    interval_end: str
    counts: dict[str, int]
    kind: Literal["refusal-summary"] = "refusal-summary"
    decision: Literal["refused"] = "refused"

    def __post_init__(self) -> None:
        _check_kind(self.kind, "refusal-summary", self.decision)
        _check_time(self.time)
        _check_time(self.interval_start, "interval_start")
        _check_time(self.interval_end, "interval_end")
        if not self.counts or any(n < 1 for n in self.counts.values()):
            raise ValueError("counts must hold at least one positive count")

    def body(self) -> bytes:
        return _BODY_ENCODER.encode(self.__dict__).encode("utf-8")


POLICY_CHANGE = "policy-change"
"""The ``kind`` and ``decision`` of policy change entries."""

PolicyChangeOutcome = Literal["swapped", "refused"]


@dataclass(frozen=True)
class PolicyChangeRecord:
    """One attempt to swap the running policy set (`gateway.policy_switch`): the digest
    that served, the candidate's, what set it off, and whether it now serves or why not.

    ``reasons`` name policy files, rules, purposes and datasets, as the vetting steps
    word them: never a request's content.
    """

    time: str
    trigger: str
    """What asked for it: ``sighup`` or ``file-change``."""
    source: str
    """Where the candidate came from: ``directory`` or ``bundle``."""
    outcome: PolicyChangeOutcome
    old_digest: str
    new_digest: str | None
    """The candidate's digest; None when it never compiled into a policy set."""
    reasons: list[str] = field(default_factory=list)
    """Why it was refused; empty when it was swapped in."""
    kind: Literal["policy-change"] = "policy-change"
    decision: Literal["policy-change"] = "policy-change"

    def __post_init__(self) -> None:
        if self.kind != POLICY_CHANGE or self.decision != POLICY_CHANGE:
            raise ValueError(f"a policy change record has kind and decision {POLICY_CHANGE!r}")
        _check_time(self.time)
        if not self.trigger or not self.source or not self.old_digest:
            raise ValueError("a policy change names its trigger, source and old digest")
        if self.outcome == "swapped":
            if self.new_digest is None or self.reasons:
                raise ValueError("a swap names the new digest and gives no reasons")
        elif self.outcome == "refused":
            if not self.reasons:
                raise ValueError("a refused policy change gives its reasons")
        else:
            raise ValueError("outcome must be 'swapped' or 'refused'")

    def body(self) -> bytes:
        return _BODY_ENCODER.encode(self.__dict__).encode("utf-8")


REIDENTIFICATION = "reidentification"
"""The ``kind`` and ``decision`` of re-identification entries."""

REASON_MAX_CHARS = 500
"""The longest reason a re-identification may state."""


@dataclass(frozen=True)
class ReidentificationRecord:
    """One release of an entry's escrow to the DPO: who, which entry, and why.

    ``reason`` is the DPO's own stated reason, recorded in clear so that a supervisor
    can judge it; the DPO is told (docs/dpo.md) to write a case or complaint reference
    there, never an identifier.
    """

    time: str
    dpo: str
    """The DPO's name, as their certificate gives it."""
    entry_seq: int
    disclosure_id: str
    reason: str
    kind: Literal["reidentification"] = "reidentification"
    decision: Literal["reidentification"] = "reidentification"

    def __post_init__(self) -> None:
        if self.kind != REIDENTIFICATION or self.decision != REIDENTIFICATION:
            raise ValueError(
                f"a re-identification record has kind and decision {REIDENTIFICATION!r}"
            )
        _check_time(self.time)
        if not self.dpo or self.entry_seq < 1 or not self.disclosure_id:
            raise ValueError("a re-identification names the DPO, the entry and its disclosure")
        if not self.reason.strip() or len(self.reason) > REASON_MAX_CHARS:
            raise ValueError(
                f"a re-identification states a reason of 1 to {REASON_MAX_CHARS} characters"
            )

    def body(self) -> bytes:
        return _BODY_ENCODER.encode(self.__dict__).encode("utf-8")


LogRecord: TypeAlias = (
    AuditRecord | RefusalRecord | RefusalSummaryRecord | PolicyChangeRecord | ReidentificationRecord
)
"""Any record an entry can hold."""

_KINDS: dict[
    str,
    type[RefusalRecord]
    | type[RefusalSummaryRecord]
    | type[PolicyChangeRecord]
    | type[ReidentificationRecord],
] = {
    "refusal": RefusalRecord,
    "refusal-summary": RefusalSummaryRecord,
    POLICY_CHANGE: PolicyChangeRecord,
    REIDENTIFICATION: ReidentificationRecord,
}


def record_from_body(body: bytes | str) -> LogRecord:
    """Parse a stored body of any kind back into its record (for the DPO tools).

    Raises ValueError (or TypeError, for fields a kind does not have) for a body that is
    no record this version knows.
    """
    content = json.loads(body)
    if not isinstance(content, dict):
        raise ValueError("an audit body is a JSON object")
    kind = content.get("kind")
    if kind is None:
        return AuditRecord(**content)
    if kind not in _KINDS:
        raise ValueError("an audit body of an unknown kind")
    return _KINDS[kind](**content)


def _check_kind(kind: str, expected: str, decision: str) -> None:
    if kind != expected or decision != REFUSED:
        raise ValueError(f"a {expected} record has kind {expected!r} and decision {REFUSED!r}")


def _check_time(text: str, name: str = "time") -> None:
    if not text.endswith("Z") or not _is_timestamp(text):
        raise ValueError(f"{name} must be RFC 3339 UTC ending in 'Z'")


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def leaf_bytes(seq: int, prev: bytes, body: bytes) -> bytes:
    """seq as 8 bytes big-endian || prev (32 bytes) || body: the Merkle leaf of an entry."""
    if seq < 1:
        raise ValueError("sequence numbers start at 1")
    if len(prev) != HASH_SIZE:
        raise ValueError(f"prev must be {HASH_SIZE} bytes, got {len(prev)}")
    return seq.to_bytes(SEQ_SIZE, "big") + prev + body


def entry_leaf_hash(seq: int, prev: bytes, body: bytes) -> bytes:
    """The leaf hash of a stored entry: SHA-256(0x00 || leaf_bytes(seq, prev, body)).

    Built in one concatenation (the body is copied once) and without `leaf_bytes`'s
    checks: it runs once per entry in verify, which checks seq and prev itself.
    """
    return sha256(b"".join((LEAF_PREFIX, seq.to_bytes(SEQ_SIZE, "big"), prev, body))).digest()
