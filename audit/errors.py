"""The root of Doelpoort's one error tree, and the branches the audit package raises.

The whole tree is drawn in `gateway.errors`. Its root and these branches live here so
that the audit package stands on its own: the DPO's offline `doelpoort audit verify`
loads nothing of the gateway. Each class carries a stable ``code`` that becomes the
``type`` of an RFC 9457 problem document (``urn:doelpoort:problem:<code>``), the HTTP
``status`` it maps to, and a short ``title``.

Messages carry sequence numbers, sizes, hashes, paths and names, never entry contents,
identifiers or record values.
"""

from __future__ import annotations

from typing import ClassVar

PROBLEM_TYPE_PREFIX = "urn:doelpoort:problem:"


class DoelpoortError(Exception):
    """Base of every Doelpoort error."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.code

    def problem(self) -> dict[str, object]:
        """The RFC 9457 problem document of this error."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class ConfigurationError(DoelpoortError):
    """Bad deployment files or settings (a key, a certificate, a YAML file), found at
    start-up or by the command that reads them."""

    code = "configuration"
    status = 500
    title = "Deployment configuration is invalid"


class AuditError(DoelpoortError):
    """The audit log could not be opened or written durably: nothing is disclosed."""

    code = "audit-unavailable"
    status = 503
    title = "The audit log could not be written; nothing was disclosed"


class VerificationError(DoelpoortError):
    """Evidence that does not hold up: a log, a checkpoint, a receipt or an escrow.

    Like a failed signature check, it says what failed, not how to make it pass.
    """

    code = "verification-failed"
    status = 500
    title = "Verification failed"


class CheckpointError(VerificationError):
    code = "audit-checkpoint"
    title = "The checkpoint is not a valid signed checkpoint of this log"


class ProofError(VerificationError):
    """A Merkle proof (inclusion or consistency, RFC 9162) or a cosignature that does not
    hold up, or a log that contradicts what a witness has seen; the message says which
    numbers or hashes disagree ("got X, want Y")."""

    code = "audit-proof"
    title = "The proof does not verify"


class AuditVerificationError(VerificationError):
    """The log is not intact; `first_bad_seq` is the first entry that cannot be trusted."""

    code = "audit-verification"
    title = "The audit log is not intact"

    def __init__(self, first_bad_seq: int, reason: str) -> None:
        super().__init__(f"first bad entry is seq {first_bad_seq}: {reason}")
        self.first_bad_seq = first_bad_seq
        self.reason = reason


class PolicySetMismatch(VerificationError):
    """An archived policy set whose content is not the one its digest names."""

    code = "audit-policy-set"
    title = "The archived policy set does not match its digest"
