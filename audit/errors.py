"""Errors of the audit log's integrity checks.

    DoelpoortError                 (gateway.errors)
    ├── AuditError            503  the log could not be written or opened (gateway.errors)
    └── AuditIntegrityError        the log's evidence does not hold up
        ├── CheckpointError        a checkpoint note is malformed, unsigned or not ours
        └── AuditVerificationError the stored log is not intact; names the first bad seq

Messages carry sequence numbers, sizes and hashes, never entry contents.
"""

from __future__ import annotations

from gateway.errors import DoelpoortError


class AuditIntegrityError(DoelpoortError):
    code = "audit-integrity"
    status = 500
    title = "The audit log failed an integrity check"


class CheckpointError(AuditIntegrityError):
    code = "audit-checkpoint"
    title = "The checkpoint is not a valid signed checkpoint of this log"


class AuditVerificationError(AuditIntegrityError):
    """The log is not intact; `first_bad_seq` is the first entry that cannot be trusted."""

    code = "audit-verification"
    title = "The audit log is not intact"

    def __init__(self, first_bad_seq: int, reason: str) -> None:
        super().__init__(f"first bad entry is seq {first_bad_seq}: {reason}")
        self.first_bad_seq = first_bad_seq
        self.reason = reason
