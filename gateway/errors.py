"""Every error Doelpoort raises, in one tree.

Each class carries a stable ``code`` that becomes the ``type`` of the RFC 9457
problem document (``urn:doelpoort:problem:<code>``), the HTTP ``status`` it maps
to, and a short ``title``. Lower-level exceptions are mapped to the most specific
class here with ``raise ... from exc``. Messages never carry identifiers or record
values: they name fields, datasets and conditions only. The root and the branches
marked (audit) live in `audit.errors`, so that the audit package needs nothing of
the gateway; everything else is defined here. tests/test_errors.py holds this
drawing to the classes.

    DoelpoortError                    500  a bug in the gateway: nothing was disclosed (audit)
    ├── RequestError                  400  bytes that are not HTTP/1.1; below it, the caller's input
    │   ├── InvalidRequest            422  malformed or out-of-bounds input
    │   ├── UnknownDataset            422  a dataset the catalog does not hold
    │   ├── NotFound                  404  a path the gateway does not serve
    │   ├── MethodNotAllowed          405  a method the path does not allow; Allow lists its own
    │   ├── PayloadTooLarge           413  body over the limit
    │   ├── HeadersTooLarge           431  request line and headers over the limit
    │   ├── UnsupportedMediaType      415  body is not application/json
    │   └── NoEscrow                  422  an entry with no escrow to release (none, or erased)
    ├── AccessError                        401/403: who is calling
    │   ├── Unauthenticated           401  no usable client certificate (revoked)
    │   ├── UnknownPeer               403  a valid certificate of no configured partner
    │   ├── DpoOnly                   403  a partner on a route for the DPO only
    │   └── PurposeDenied             403  purpose not granted, or every dataset denied
    ├── PolicyError                   503  fail closed: nothing is disclosed
    │   ├── PolicyUnavailable              engine not loaded, not answering, or all busy
    │   ├── PolicyEvaluationError          the engine raised, timed out or gave no answer
    │   ├── InvalidDecision                decision does not follow the contract
    │   └── UnknownOperator                a field op no operator implements
    ├── ConnectorError                     per dataset: reported in the disclosure, never a 500
    │   ├── ConnectorUnavailable           provider unreachable or timed out
    │   ├── ConnectorAuthError             OAuth2 token could not be obtained
    │   └── ConnectorResponseError         provider answered badly (status, JSON, schema)
    ├── OperatorError                      per dataset: a record value an op cannot transform
    ├── AuditError                    503  the audit log could not be written durably (audit)
    ├── SigningError                  503  the receipt could not be signed
    ├── EscrowUnavailable             503  the escrow could not be sealed; dataset withheld
    ├── ConfigurationError                 bad deployment files or settings (audit)
    └── VerificationError                  evidence that does not hold up (audit)
        ├── CheckpointError                not a valid signed checkpoint of this log (audit)
        ├── AuditVerificationError         the stored log is not intact; first bad seq (audit)
        ├── ProofError                     a proof or cosignature that fails; a fork (audit)
        ├── PolicySetMismatch              an archived policy set unlike its digest (audit)
        ├── InvalidReceipt                 a receipt that does not verify (says nothing of why)
        └── EscrowError                    an escrow that does not open with the DPO's key
"""

from __future__ import annotations

from audit.errors import (
    PROBLEM_TYPE_PREFIX,
    AuditError,
    AuditVerificationError,
    CheckpointError,
    ConfigurationError,
    DoelpoortError,
    PolicySetMismatch,
    ProofError,
    VerificationError,
)

__all__ = [
    "PROBLEM_TYPE_PREFIX",
    "AccessError",
    "AuditError",
    "AuditVerificationError",
    "CheckpointError",
    "ConfigurationError",
    "ConnectorAuthError",
    "ConnectorError",
    "ConnectorResponseError",
    "ConnectorUnavailable",
    "DoelpoortError",
    "DpoOnly",
    "EscrowError",
    "EscrowUnavailable",
    "HeadersTooLarge",
    "InvalidDecision",
    "InvalidReceipt",
    "InvalidRequest",
    "MethodNotAllowed",
    "NoEscrow",
    "NotFound",
    "OperatorError",
    "PayloadTooLarge",
    "PolicyError",
    "PolicyEvaluationError",
    "PolicySetMismatch",
    "PolicyUnavailable",
    "ProofError",
    "PurposeDenied",
    "RequestError",
    "SigningError",
    "Unauthenticated",
    "UnknownDataset",
    "UnknownOperator",
    "UnknownPeer",
    "UnsupportedMediaType",
    "VerificationError",
]


class RequestError(DoelpoortError):
    code = "bad-request"
    status = 400
    title = "Bad request"


class InvalidRequest(RequestError):
    code = "invalid-request"
    status = 422
    title = "The request is not valid"


class UnknownDataset(RequestError):
    code = "unknown-dataset"
    status = 422
    title = "Unknown dataset"


class NotFound(RequestError):
    code = "not-found"
    status = 404
    title = "Not found"


class MethodNotAllowed(RequestError):
    code = "method-not-allowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLarge(RequestError):
    code = "payload-too-large"
    status = 413
    title = "Request body too large"


class HeadersTooLarge(RequestError):
    code = "headers-too-large"
    status = 431
    title = "Request headers too large"


class UnsupportedMediaType(RequestError):
    code = "unsupported-media-type"
    status = 415
    title = "Request body must be application/json"


class NoEscrow(RequestError):
    """The DPO asked for the escrow of an entry that has none to release: it records no
    disclosure, the gateway ran without the DPO's escrow key, or it was erased."""

    code = "no-escrow"
    status = 422
    title = "The entry has no escrow to release"


class AccessError(DoelpoortError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class Unauthenticated(AccessError):
    code = "unauthenticated"
    status = 401
    title = "No valid client certificate"


class UnknownPeer(AccessError):
    code = "unknown-peer"
    status = 403
    title = "Certificate does not belong to a configured partner"


class DpoOnly(AccessError):
    code = "dpo-only"
    status = 403
    title = "Only the data protection officer may use this"


class PurposeDenied(AccessError):
    code = "purpose-denied"
    status = 403
    title = "Disclosure denied by purpose binding"

    def __init__(self, detail: str | None = None, reasons: list[str] | None = None) -> None:
        super().__init__(detail)
        self.reasons = list(reasons or [])


class PolicyError(DoelpoortError):
    code = "policy-error"
    status = 503
    title = "Policy decision unavailable; nothing was disclosed"

    def problem(self) -> dict[str, object]:
        """The problem document a partner gets: the cause (the engine's message, the rule
        that failed) is for the operator's log, not for a partner to probe the policy."""
        return {**super().problem(), "detail": self.title}


class PolicyUnavailable(PolicyError):
    code = "policy-unavailable"


class PolicyEvaluationError(PolicyError):
    code = "policy-evaluation-error"


class InvalidDecision(PolicyError):
    code = "invalid-decision"


class UnknownOperator(PolicyError):
    code = "unknown-operator"


class ConnectorError(DoelpoortError):
    code = "connector-error"
    status = 502
    title = "The provider's connector failed"


class ConnectorUnavailable(ConnectorError):
    code = "connector-unavailable"
    title = "The provider could not be reached"


class ConnectorAuthError(ConnectorError):
    code = "connector-auth"
    title = "The provider's authorisation server refused the gateway"


class ConnectorResponseError(ConnectorError):
    code = "connector-response"
    title = "The provider's answer could not be used"


class OperatorError(DoelpoortError):
    code = "operator-error"
    status = 502
    title = "A record value could not be minimised; the dataset was withheld"


class SigningError(DoelpoortError):
    code = "signing-unavailable"
    status = 503
    title = "The receipt could not be signed; nothing was disclosed"


class EscrowUnavailable(DoelpoortError):
    code = "escrow-unavailable"
    status = 503
    title = "The re-identification escrow could not be sealed; the dataset was withheld"


class InvalidReceipt(VerificationError):
    """A receipt that does not verify; deliberately says nothing about why."""

    code = "invalid-receipt"
    title = "The receipt does not verify"


class EscrowError(VerificationError):
    """An escrow that does not open with the DPO's key, or is not one Doelpoort seals."""

    code = "escrow-invalid"
    title = "The escrow cannot be opened"
