"""Request and response shapes of the partner API (v1).

Validation is strict and bounded: unknown fields, wrong types, over-long strings and
oversized lists are rejected with 422 before anything else happens. Messages name the
field and the rule, never the value that broke it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from gateway import case_refs, ijson
from gateway.case_refs import CaseRefFormat
from gateway.errors import InvalidRequest
from gateway.ids import DATASET_ID_PATTERN, ID_PATTERN
from gateway.vocabulary import SubjectKey

Slug = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN}$")]
DatasetId = Annotated[str, StringConstraints(pattern=f"^{DATASET_ID_PATTERN}$")]
# A case reference names a case, never a person (`gateway.case_refs`). These are the
# default formats; a deployment's own are in its register (`request_model`).
CaseRef = Annotated[
    str,
    case_refs.case_ref_field(case_refs.DEFAULT_FORMATS),
    AfterValidator(case_refs.check_rule),
]


def _calendar_date(value: str) -> str:
    date.fromisoformat(value)  # ValueError for a day the calendar lacks (2026-02-31)
    return value


# [0-9], not \d: \d also matches other scripts' digits, which would dodge DPO look-ups.
# The year spelled out so the pattern refuses 0000, as the calendar does; "format: date"
# tells a schema-driven client the rest (no 2026-02-31).
IsoDate = Annotated[
    str,
    StringConstraints(
        pattern=(
            r"^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
            r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
        )
    ),
    AfterValidator(_calendar_date),
    Field(json_schema_extra={"format": "date"}),
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


#: What identifies a subject: one of these, every part of it. ``name`` alone is too
#: common, so it counts only together with ``date_of_birth``.
IDENTIFYING_KEYS: tuple[tuple[str, ...], ...] = (
    ("bsn",),
    ("v_number",),
    ("passport_no",),
    ("iban",),
    ("name", "date_of_birth"),
)

BSN_DESCRIPTION = (
    "Burgerservicenummer: nine digits d1..d9 that pass the eleven-test: 9·d1 + 8·d2 + 7·d3"
    " + 6·d4 + 5·d5 + 4·d6 + 3·d7 + 2·d8 - d9 is divisible by 11 (and not 000000000)."
    " JSON Schema cannot state the test: format `bsn` names it, and a BSN that fails it"
    " is refused with 422."
)


def _subject_schema(schema: dict[str, Any]) -> None:
    """Say in JSON Schema what :meth:`Subject._check` says in code.

    Each key is a string when given (an explicit null is refused, see ``_no_nulls``); at
    least one identifying key; ``name`` and ``date_of_birth`` only together. The
    eleven-test is format ``bsn`` and the description. tests/test_openapi.py holds the
    schema and the validation to the same answers.
    """
    for prop in schema["properties"].values():
        branches = prop.pop("anyOf", None)
        if branches is not None:
            (given,) = [b for b in branches if b.get("type") != "null"]
            prop.update(given)
        prop.pop("default", None)
    schema["minProperties"] = 1
    schema["anyOf"] = [{"required": list(keys)} for keys in IDENTIFYING_KEYS]
    schema["dependentRequired"] = {"name": ["date_of_birth"], "date_of_birth": ["name"]}


class Subject(_Strict):
    """Identity keys of one subject: at least one; ``name`` only with ``date_of_birth``."""

    model_config = ConfigDict(json_schema_extra=_subject_schema)

    bsn: (
        Annotated[
            str,
            StringConstraints(pattern=r"^[0-9]{9}$"),
            Field(description=BSN_DESCRIPTION, json_schema_extra={"format": "bsn"}),
        ]
        | None
    ) = None
    v_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,12}$")] | None = None
    passport_no: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{6,12}$")] | None = None
    iban: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")] | None = (
        None
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    date_of_birth: IsoDate | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # A key is given or left out; null is neither, and the schema says so.
        if isinstance(data, dict) and any(value is None for value in data.values()):
            raise ValueError("an identity key is a string: leave out a key that is not given")
        return data

    @model_validator(mode="after")
    def _check(self) -> Subject:
        given = self.keys()
        if ("name" in given) != ("date_of_birth" in given):
            raise ValueError("name and date_of_birth identify a subject only together")
        if not any(all(part in given for part in key) for key in IDENTIFYING_KEYS):
            raise ValueError("subject needs at least one identity key")
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
    # Optional here: whether a purpose requires one is the register's to say
    # (requires_justification), and the policy refuses a request that lacks it.
    justification: Annotated[
        str,
        StringConstraints(max_length=2000),
        Field(
            description=(
                "Why this request is necessary and proportionate in this case. A purpose"
                " that requires a justification (most do) refuses a request without one"
                " (absent, empty or blank) with 403."
            )
        ),
    ] = ""
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


def request_model(case_ref_formats: Sequence[CaseRefFormat]) -> type[DisclosureRequest]:
    """The request model of a deployment whose case references take these formats.

    The deployment's formats are its register's; the same model validates requests and
    gives the OpenAPI document its schema, so the two cannot say different things.
    """
    return create_model(
        DisclosureRequest.__name__,
        __base__=DisclosureRequest,
        __module__=__name__,
        __doc__=DisclosureRequest.__doc__,
        case_ref=(case_refs.case_ref_type(case_ref_formats), ...),
    )


# Response shapes. The gateway writes its responses itself (the hot path serialises
# once); these models only describe them in the OpenAPI document, and the schemathesis
# test (tests/test_contract_fuzzing.py) holds the gateway's answers to them.


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


_SHA256_DIGEST = r"^sha256:[0-9a-f]{64}$"


class DatasetError(_Answer):
    """Why one dataset was withheld: a problem type of the table, its title, a detail."""

    type: str
    title: str
    detail: str


class DatasetResult(_Answer):
    """One dataset's outcome inside a disclosure: ``field_ops`` and ``records`` for an
    allow, ``reasons`` for a deny, ``error`` for a dataset withheld."""

    dataset: str
    decision: Literal["allow", "deny", "error"]
    field_ops: dict[str, str] | None = None
    records: list[dict[str, Any]] | None = None
    reasons: list[str] | None = None
    error: DatasetError | None = None
    audit_seq: Annotated[int, Field(ge=0)]


class Disclosure(_Answer):
    id: Annotated[str, Field(pattern=r"^urn:uuid:[0-9a-f-]{36}$")]
    issued_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    requester: str
    purpose: str
    case_ref: str
    policy_digest: Annotated[str, Field(pattern=_SHA256_DIGEST)]
    results: Annotated[list[DatasetResult], Field(min_length=1)]


class DisclosureResponse(_Answer):
    """The disclosure and a compact JWS (EdDSA) over its RFC 8785 canonical JSON."""

    disclosure: Disclosure
    jws: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]


class Jwk(_Answer):
    """An Ed25519 public key (RFC 8037); ``kid`` is its RFC 7638 thumbprint."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JwkSet(_Answer):
    """The receipt verification keys, current and retired."""

    keys: Annotated[list[Jwk], Field(min_length=1)]


class Health(_Answer):
    status: Literal["ok"]


class PolicyReload(_Answer):
    """The last attempt to swap in a new policy set (deploy/README.md)."""

    time: str
    trigger: str
    outcome: Literal["swapped", "refused"]
    candidate_digest: str | None


class ServingPolicySet(_Answer):
    """The policy set that serves, and the last attempt to swap in another."""

    digest: str
    last_reload: PolicyReload | None


class Readiness(_Answer):
    """Whether the policy engine and the audit store can serve (503 when not), and which
    policy set serves; a refused reload leaves the gateway ready on the set before."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, bool]
    policy: ServingPolicySet


class FieldError(_Answer):
    """Where a request broke the schema and which rule it broke; never the value."""

    loc: list[str]
    msg: str


# ``GET /v1/purposes``: what the asking partner may ask (`gateway.purposes`). Built through
# these models, so the answer is checked against its own schema as it is made.


class CaseRefFormatInfo(_Answer):
    """A format a request's ``case_ref`` may take: ``pattern`` must match it whole."""

    name: str
    pattern: str
    example: str


class GrantedDataset(_Answer):
    """A dataset a purpose covers for the asking partner.

    ``identity_keys``: the ways the provider finds a subject's records (each key's every
    part in ``subject``). ``field_ops``: the op the register grants on each field, as a
    disclosure's ``field_ops`` would show it; a field it does not name is never released.
    """

    id: Annotated[str, Field(pattern=f"^{DATASET_ID_PATTERN}$")]
    provider: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    description: str
    identity_keys: Annotated[
        list[Annotated[list[SubjectKey], Field(min_length=1)]], Field(min_length=1)
    ]
    field_ops: dict[str, str]


class GrantedPurpose(_Answer):
    """A purpose granted to the asking partner, with the datasets it covers for it."""

    name: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    title: str
    legal_basis: str
    retention_days: Annotated[int, Field(ge=1)]
    requires_justification: bool
    #: The facts about the subject the purpose requires (names only, SPEC §6): a request
    #: for a subject they do not hold for is refused, as for an unknown subject.
    requires_facts: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]]
    datasets: Annotated[list[GrantedDataset], Field(min_length=1)]


_PURPOSE_LIST_EXAMPLE: dict[str, Any] = {
    "requester": "politie",
    "policy_digest": "sha256:" + "0f" * 32,
    "case_ref_formats": [
        {
            "name": "registry-year-number",
            "pattern": "[A-Z][A-Z0-9]{1,11}-[0-9]{4}-[0-9]{1,6}",
            "example": "CTI-2026-0042",
        }
    ],
    "purposes": [
        {
            "name": "ct-assessment",
            "title": "Multidisciplinary assessment of persons involved in terrorism",
            "legal_basis": "Convenant CT Infobox; each partner within its own statutory framework",
            "retention_days": 365,
            "requires_justification": True,
            "requires_facts": [],
            "datasets": [
                {
                    "id": "ind/residence",
                    "provider": "ind",
                    "description": "Residence status of foreign nationals (synthetic)",
                    "identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
                    "field_ops": {
                        "bsn": "pseudonymise",
                        "name": "pseudonymise",
                        "date_of_birth": "generalise:year",
                        "residence_status": "keep",
                    },
                }
            ],
        }
    ],
}


class PurposeList(_Answer):
    """The purposes granted to the asking partner (the certificate's), in register order.

    A guide to what it may ask, derived from the purpose register and the connector
    catalog: the policy still decides each request. Nothing in it is about another
    partner; an empty ``purposes`` means this partner is granted none.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_PURPOSE_LIST_EXAMPLE]})

    requester: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    policy_digest: Annotated[str, Field(pattern=_SHA256_DIGEST)]
    case_ref_formats: Annotated[list[CaseRefFormatInfo], Field(min_length=1)]
    purposes: list[GrantedPurpose]
