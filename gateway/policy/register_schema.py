"""The schema of ``policies/register.yaml``: pydantic models (validation only).

Strict like the connector catalog's (`gateway.connectors.catalog`): unknown keys are
refused, types are never coerced (``retention_days: "30"`` or ``requires_justification:
yes``-as-a-string are errors), names follow `gateway.ids` (purposes, roles, requesters,
dataset ids, domains, categories), and ops come from the operator registry. Whether a
domain, category, fact, field or partner exists is the connector catalog's to say:
`gateway.policy.register.Register.check_against` checks that at start-up.
:func:`format_errors` turns a ValidationError into one line that names each
offending key in the register's own terms (``purpose vertrek, dataset dji/detention:
field_ops.name: …``). `gateway.policy.register` turns a valid document into its frozen
dataclasses.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.case_refs import DEFAULT_FORMATS, CaseRefFormat, check_format
from gateway.errors import DoelpoortError
from gateway.ids import DATASET_ID_PATTERN, validate_id
from gateway.operators import parse_op

__all__ = [
    "MAX_RETENTION_DAYS",
    "TIER_KEYS",
    "CaseRefFormatModel",
    "GrantModel",
    "PurposeModel",
    "RegisterModel",
]

MAX_RETENTION_DAYS = 36_500
"""A century: any longer is a mistake, and the audit store counts it in 64-bit seconds."""

#: The category lists of a purpose's category allow-list, from the most to the least
#: released (see `gateway.policy.register.Purpose` and policies/doelpoort/deny.rego).
TIER_KEYS = ("clear_categories", "reduced_categories", "pseudonym_categories")


def _id_of(what: str) -> AfterValidator:
    def check(value: str) -> str:
        try:
            return validate_id(value, what)
        except DoelpoortError as exc:  # pydantic reports ValueErrors, and only those
            raise ValueError(exc.detail) from None

    return AfterValidator(check)


def _op(value: str) -> str:
    try:
        parse_op(value)
    except DoelpoortError as exc:
        raise ValueError(exc.detail) from None
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must be non-empty text")
    return value


def _no_repeats(names: list[str]) -> list[str]:
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"names {', '.join(repeated)} twice")
    return names


PurposeName = Annotated[str, _id_of("purpose")]
Role = Annotated[str, _id_of("role")]
Requester = Annotated[str, _id_of("requester")]
DatasetId = Annotated[str, Field(pattern=f"^{DATASET_ID_PATTERN}$")]
FieldName = Annotated[str, Field(min_length=1)]
FactName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Op = Annotated[str, AfterValidator(_op)]
Text = Annotated[str, AfterValidator(_text)]
Domains = Annotated[list[Annotated[str, _id_of("domain")]], AfterValidator(_no_repeats)]
Categories = Annotated[list[Annotated[str, _id_of("category")]], AfterValidator(_no_repeats)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GrantModel(_Model):
    """What a purpose releases of one dataset: an op per field, optionally to named
    partners only, with a partner's own op for some fields, and why a field is released
    in clear."""

    field_ops: dict[FieldName, Op]
    #: Absent (or null): every partner holding one of the purpose's roles.
    requesters: list[Requester] | None = None
    #: A partner's op for a field replaces the grant's, for that partner only.
    requester_field_ops: dict[Requester, dict[FieldName, Op]] = {}
    #: Why a field is released in clear (op keep); required for a sensitive category.
    clear_reasons: dict[FieldName, Text] = {}


class PurposeModel(_Model):
    title: Text | None = None
    legal_basis: Text
    retention_days: Annotated[int, Field(gt=0, le=MAX_RETENTION_DAYS)]
    requester_roles: Annotated[list[Role], Field(min_length=1)]
    # Absent means required: forgetting the key must not drop the safeguard.
    requires_justification: bool = True
    #: Facts about the subject (the catalog's) that must hold for the purpose to apply.
    requires_facts: Annotated[list[FactName], AfterValidator(_no_repeats)] = []
    datasets: dict[DatasetId, GrantModel]
    # An empty allow-list would refuse every dataset: surely a mistake, so say so.
    allowed_domains: Annotated[Domains, Field(min_length=1)] | None = None
    excluded_domains: Domains = []
    excluded_categories: Categories = []
    clear_categories: Categories | None = None
    reduced_categories: Categories | None = None
    pseudonym_categories: Categories | None = None

    @field_validator("allowed_domains", *TIER_KEYS, mode="before")
    @classmethod
    def _given_means_a_list(cls, value: object) -> object:
        # Only called for a key that is present: ``allowed_domains:`` with its list
        # deleted is an error, not "no constraint".
        if value is None:
            raise ValueError("must be a list (leave the key out for no constraint)")
        return value

    @field_validator("title", mode="before")
    @classmethod
    def _given_means_text(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be non-empty text (leave the key out for the name)")
        return value

    @model_validator(mode="after")
    def _tiers_are_disjoint(self) -> PurposeModel:
        # A category in two tiers would be ambiguous to a reader (the policy applies the
        # stricter one), so the register must put each category in one tier at most.
        seen: dict[str, str] = {}
        for key in TIER_KEYS:
            for name in getattr(self, key) or ():
                if name in seen:
                    raise ValueError(f"category {name} is in both {seen[name]} and {key}")
                seen[name] = key
        return self


class CaseRefFormatModel(_Model):
    """A format partners write case references in (`gateway.case_refs`)."""

    name: Annotated[str, _id_of("case_ref format name")]
    pattern: Annotated[str, Field(min_length=1)]
    #: A case reference of this format: checked against the pattern when the register
    #: loads, and the OpenAPI document's example.
    example: str

    @model_validator(mode="after")
    def _compiles_and_accepts_its_example(self) -> CaseRefFormatModel:
        check_format(self.as_format())
        return self

    def as_format(self) -> CaseRefFormat:
        return CaseRefFormat(name=self.name, pattern=self.pattern, example=self.example)


def _distinct_names(formats: list[CaseRefFormatModel]) -> list[CaseRefFormatModel]:
    _no_repeats([f.name for f in formats])
    return formats


_DEFAULT_CASE_REF_FORMATS = [
    CaseRefFormatModel(name=f.name, pattern=f.pattern, example=f.example) for f in DEFAULT_FORMATS
]


class RegisterModel(_Model):
    # Absent: `gateway.case_refs.DEFAULT_FORMATS`. Empty would refuse every request.
    case_ref_formats: Annotated[
        list[CaseRefFormatModel], Field(min_length=1), AfterValidator(_distinct_names)
    ] = _DEFAULT_CASE_REF_FORMATS
    purposes: dict[PurposeName, PurposeModel]


def format_errors(exc: ValidationError) -> str:
    """One line naming every problem: ``purpose P[, dataset D]: key.path: message``."""
    return "; ".join(
        _describe(error) for error in exc.errors(include_url=False, include_input=False)
    )


def _describe(error: Any) -> str:
    parts = [str(part) for part in error["loc"] if part != "[key]"]
    where: list[str] = []
    if parts[:1] == ["purposes"] and len(parts) > 1:
        where.append(f"purpose {parts[1]}")
        parts = parts[2:]
        if parts[:1] == ["datasets"] and len(parts) > 1:
            where.append(f"dataset {parts[1]}")
            parts = parts[2:]
    key = ".".join(parts)
    kind = error["type"]
    if kind == "missing":
        message = f"{key} is required"
    else:
        if kind == "extra_forbidden":
            problem = "unknown key"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            problem = "must be a mapping"
        elif kind == "value_error":
            problem = str(error["ctx"]["error"])
        else:
            problem = error["msg"]
        message = f"{key}: {problem}" if key else problem
    if not where:
        return message if parts else f"the register {message}"
    return f"{', '.join(where)}: {message}"
