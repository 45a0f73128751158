"""Request and response shapes of the partner API (v1).

Validation is strict and bounded: unknown fields, wrong types, over-long strings and
oversized lists are rejected with 422 before anything else happens. Messages name the
field and the rule, never the value that broke it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from gateway import ijson
from gateway.errors import InvalidRequest
from gateway.ids import DATASET_ID_PATTERN, ID_PATTERN

Slug = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN}$")]
DatasetId = Annotated[str, StringConstraints(pattern=f"^{DATASET_ID_PATTERN}$")]
# A case reference names a case, never a person: a registry prefix, a year and a number
# of at most six digits (so a BSN or another identifier cannot pass for one).
CaseRef = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,11}-[0-9]{4}-[0-9]{1,6}$")]


def _calendar_date(value: str) -> str:
    date.fromisoformat(value)  # ValueError for a day the calendar lacks (2026-02-31)
    return value


# [0-9], not \d: \d also matches other scripts' digits, which would dodge DPO look-ups.
IsoDate = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"),
    AfterValidator(_calendar_date),
]


def bsn_is_valid(bsn: str) -> bool:
    """The BSN eleven-test: 9 digits, weights 9..2 and -1, sum divisible by 11."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit():
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    total = sum(int(d) * w for d, w in zip(bsn, weights, strict=True))
    return total % 11 == 0 and bsn != "000000000"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Subject(_Strict):
    """Identity keys of one subject: at least one; ``name`` only with ``date_of_birth``."""

    bsn: Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")] | None = None
    v_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,12}$")] | None = None
    passport_no: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{6,12}$")] | None = None
    iban: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")] | None = (
        None
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    date_of_birth: IsoDate | None = None

    @model_validator(mode="after")
    def _check(self) -> Subject:
        given = self.keys()
        if not given:
            raise ValueError("subject needs at least one identity key")
        if ("name" in given) != ("date_of_birth" in given):
            raise ValueError("name and date_of_birth identify a subject only together")
        if self.bsn is not None and not bsn_is_valid(self.bsn):
            raise ValueError("bsn fails the eleven-test")
        return self

    def keys(self) -> dict[str, str]:
        """The identity keys that were given, by name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DisclosureRequest(_Strict):
    """``POST /v1/disclosures``: information about one subject for one purpose."""

    purpose: Slug
    case_ref: CaseRef
    justification: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    subject: Subject
    datasets: Annotated[list[DatasetId], Field(min_length=1, max_length=32)] | None = None

    @classmethod
    def from_body(cls, body: bytes) -> DisclosureRequest:
        """Parse and validate a request body in one pass; refuse repeated member names.

        JSON parsers disagree about ``{"purpose": "vertrek", "purpose": "ct-assessment"}``
        (first wins, last wins, error), and a proxy that logged or checked one reading
        while the gateway acted on the other would be fooled: `gateway.ijson` refuses
        them, for partners and providers alike. Raises InvalidRequest for them and
        pydantic's ValidationError for everything else that is wrong.
        """
        try:
            ijson.loads(body)
        except ijson.RepeatedMemberName:
            raise InvalidRequest("a JSON object in the body repeats a member name") from None
        except (ValueError, RecursionError):
            pass  # not JSON at all: pydantic says where, below
        return cls.model_validate_json(body)


class DatasetResult(BaseModel):
    """One dataset's outcome inside a disclosure."""

    dataset: str
    decision: Literal["allow", "deny", "error"]
    field_ops: dict[str, str] | None = None
    records: list[dict[str, Any]] | None = None
    reasons: list[str] | None = None
    error: dict[str, str] | None = None
    audit_seq: int


class Disclosure(BaseModel):
    id: str
    issued_at: str
    requester: str
    purpose: str
    case_ref: str
    policy_digest: str
    results: list[DatasetResult]


class DisclosureResponse(BaseModel):
    """The disclosure and a compact JWS over its RFC 8785 canonical JSON."""

    disclosure: Disclosure
    jws: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    reasons: list[str] | None = None
    errors: list[dict[str, Any]] | None = None
