"""The purpose register (doelbindingsregister): ``policies/register.yaml``, validated.

The Rego policy reads the register as ``data.register`` (:meth:`Register.as_data`). The
loader is strict on purpose (`gateway.policy.register_schema`, pydantic models): an
unknown key (say ``excluded_domain`` for ``excluded_domains``) would otherwise be ignored
by the policy and quietly widen a purpose, so it is a ConfigurationError at start-up. Op
names are checked against the operator registry there. The vocabulary (domains and
categories), the datasets, field names and types, the subject facts and the partners
are the connector catalog's, so :meth:`Register.check_against` checks them against the
catalog at start-up: a domain or category the vocabulary lacks (``allowed_domains:
[imigration]`` would otherwise allow nothing, ``pseudonym_categories: [identifiers]``
would quietly drop the identifiers, and ``excluded_domains: [polices]`` would exclude
nothing), a dataset the catalog lacks, a misspelled field, an op that does not suit its
field's type, a role no partner holds, a requester that is no partner, a fact no dataset
declares, and a field of a sensitive category released in clear without a stated
reason. The engine checks every decision's ops again, since the policy makes them.

Besides the purposes, the register lists the formats of case references the deployment
accepts (``case_ref_formats``, `gateway.case_refs`): the partner API's check, not policy
data, so :meth:`Register.as_data` leaves them out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from gateway.case_refs import DEFAULT_FORMATS, CaseRefFormat
from gateway.config_yaml import load_yaml
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError, DoelpoortError
from gateway.operators import validate_op
from gateway.policy.register_schema import (
    MAX_RETENTION_DAYS,
    GrantModel,
    PurposeModel,
    RegisterModel,
    format_errors,
)

__all__ = ["MAX_RETENTION_DAYS", "REGISTER_FILE", "DatasetGrant", "Purpose", "Register"]

REGISTER_FILE = "register.yaml"


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class DatasetGrant:
    """What a purpose releases of one dataset."""

    field_ops: Mapping[str, str]
    #: Partners this dataset is narrowed to; None: every partner holding a purpose role.
    requesters: tuple[str, ...] | None = None
    #: partner → field → op: that partner's op replaces ``field_ops``' for the field.
    requester_field_ops: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=_empty)
    #: field → why it is released in clear (op keep).
    clear_reasons: Mapping[str, str] = dataclasses.field(default_factory=_empty)

    def ops_in_clear(self) -> dict[str, list[str]]:
        """Field → who gets it in clear (``"*"``: the grant's op; else partner ids)."""
        kept: dict[str, list[str]] = {}
        for field, op in self.field_ops.items():
            if op == "keep":
                kept.setdefault(field, []).append("*")
        for partner, ops in self.requester_field_ops.items():
            for field, op in ops.items():
                if op == "keep":
                    kept.setdefault(field, []).append(partner)
        return kept


@dataclass(frozen=True)
class Purpose:
    name: str
    title: str
    legal_basis: str
    retention_days: int
    requester_roles: tuple[str, ...]
    requires_justification: bool
    datasets: Mapping[str, DatasetGrant]
    #: Facts about the subject (`gateway.vocabulary.FactSpec`) that must all hold.
    requires_facts: tuple[str, ...] = ()
    #: None: no constraint; a tuple: the only domains whose datasets the purpose may cover.
    allowed_domains: tuple[str, ...] | None = None
    excluded_domains: tuple[str, ...] = ()
    excluded_categories: tuple[str, ...] = ()
    # The category allow-list. All None: no constraint. Any of them a tuple: a field of a
    # clear category may have any op, of a reduced category only pseudonymise, mask,
    # generalise or drop, of a pseudonym category only pseudonymise or drop, and of any
    # other category only drop.
    clear_categories: tuple[str, ...] | None = None
    reduced_categories: tuple[str, ...] | None = None
    pseudonym_categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Register:
    purposes: Mapping[str, Purpose]
    #: The formats a request's case_ref may take in this deployment (`gateway.case_refs`).
    #: Not policy data: the partner API checks them before a request is decided.
    case_ref_formats: tuple[CaseRefFormat, ...] = DEFAULT_FORMATS

    @classmethod
    def load(cls, path: Path) -> Register:
        """Read and validate a register file. Raises ConfigurationError on any problem."""
        raw = load_yaml(path)
        try:
            return cls.from_mapping(raw)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc.detail}") from exc

    @classmethod
    def from_mapping(cls, raw: object) -> Register:
        """Validate a register document (as YAML gives it). Raises ConfigurationError
        with one line naming every offending key."""
        try:
            model = RegisterModel.model_validate(raw)
        except ValidationError as exc:
            raise ConfigurationError(format_errors(exc)) from None
        return cls(
            purposes=MappingProxyType(
                {name: _purpose(name, spec) for name, spec in model.purposes.items()}
            ),
            case_ref_formats=tuple(f.as_format() for f in model.case_ref_formats),
        )

    def check_against(self, catalog: Catalog) -> None:
        """Check every purpose against the connector catalog (at start-up).

        Raises ConfigurationError naming purpose, dataset and field for a domain or
        category the catalog's vocabulary lacks, a fact no dataset declares, a dataset
        the catalog does not hold, a field the dataset does not declare (the policy
        would silently leave it out) or an op that does not suit the field's type (it
        would otherwise only surface as a 503 on a live request); for a requester role
        no partner holds or a named requester that is no partner (a misspelt one would
        silently grant nothing); for a requester's own ops given to a partner the grant
        does not cover; and for a field of a sensitive category released in clear
        without a reason in ``clear_reasons``.
        """
        roles = {role for partner in catalog.partners.values() for role in partner.roles}
        for name, purpose in self.purposes.items():
            for role in purpose.requester_roles:
                if role not in roles:
                    raise ConfigurationError(
                        f"purpose {name}: no partner of the connector catalog holds role"
                        f" {role} (roles: {', '.join(sorted(roles))})"
                    )
            _check_vocabulary(name, purpose, catalog)
            for fact in purpose.requires_facts:
                if fact not in catalog.facts:
                    raise ConfigurationError(
                        f"purpose {name}: requires_facts: fact {fact} is declared by no"
                        f" dataset of the connector catalog (facts:"
                        f" {', '.join(sorted(catalog.facts)) or 'none'})"
                    )
            for dataset_id, grant in purpose.datasets.items():
                _check_grant(
                    f"purpose {name}, dataset {dataset_id}", purpose, dataset_id, grant, catalog
                )

    def as_data(self) -> dict[str, Any]:
        """The register as Rego data (``data.register``), every default spelled out."""
        return {
            "purposes": {
                name: {
                    "title": p.title,
                    "legal_basis": p.legal_basis,
                    "retention_days": p.retention_days,
                    "requester_roles": list(p.requester_roles),
                    "requires_justification": p.requires_justification,
                    "requires_facts": list(p.requires_facts),
                    "allowed_domains": _optional_list(p.allowed_domains),
                    "excluded_domains": list(p.excluded_domains),
                    "excluded_categories": list(p.excluded_categories),
                    "clear_categories": _optional_list(p.clear_categories),
                    "reduced_categories": _optional_list(p.reduced_categories),
                    "pseudonym_categories": _optional_list(p.pseudonym_categories),
                    "datasets": {
                        dataset: _grant_data(grant) for dataset, grant in p.datasets.items()
                    },
                }
                for name, p in self.purposes.items()
            }
        }

    def covered_datasets(
        self, purpose: str, requester_id: str | None, roles: Iterable[str] | None
    ) -> list[str]:
        """The datasets a request for ``purpose`` asks for when it names none.

        Those the purpose names for this requester (by role and, where a dataset is
        narrowed, by partner), in register order. Unknown purpose or no matching role:
        []. ``None`` for both requester and roles lists every dataset the purpose names
        (used to log a refusal per dataset). The policy still decides each dataset; this
        only picks what to ask it about.
        """
        p = self.purposes.get(purpose)
        if p is None:
            return []
        if roles is not None and not set(roles) & set(p.requester_roles):
            return []
        return [
            dataset
            for dataset, grant in p.datasets.items()
            if requester_id is None or grant.requesters is None or requester_id in grant.requesters
        ]


def _optional_list(names: tuple[str, ...] | None) -> list[str] | None:
    # null (not []) when the register does not give the key: the policy tells "no
    # constraint" from "an empty allow-list" by it.
    return None if names is None else list(names)


def _check_vocabulary(name: str, purpose: Purpose, catalog: Catalog) -> None:
    vocabulary = catalog.vocabulary
    lists = {
        "allowed_domains": (purpose.allowed_domains, vocabulary.domains, "domain"),
        "excluded_domains": (purpose.excluded_domains, vocabulary.domains, "domain"),
        "excluded_categories": (purpose.excluded_categories, vocabulary.categories, "category"),
        "clear_categories": (purpose.clear_categories, vocabulary.categories, "category"),
        "reduced_categories": (purpose.reduced_categories, vocabulary.categories, "category"),
        "pseudonym_categories": (purpose.pseudonym_categories, vocabulary.categories, "category"),
    }
    for key, (names, known, kind) in lists.items():
        for i, word in enumerate(names or ()):
            if word not in known:
                raise ConfigurationError(
                    f"purpose {name}: {key}.{i}: unknown {kind} {word!r} (known:"
                    f" {', '.join(known)}; connectors/vocabulary.yaml)"
                )


def _check_grant(
    where: str, purpose: Purpose, dataset_id: str, grant: DatasetGrant, catalog: Catalog
) -> None:
    for requester in grant.requesters or ():
        if requester not in catalog.partners:
            raise ConfigurationError(
                f"{where}: requester {requester} is not a partner of the connector catalog"
            )
    spec = catalog.datasets.get(dataset_id)
    if spec is None:
        raise ConfigurationError(f"{where}: the connector catalog has no such dataset")

    def check_op(key: str, field: str, op: str) -> None:
        declared = spec.fields.get(field)
        if declared is None:
            raise ConfigurationError(
                f"{where}: {key}field {field} is not a field of the dataset"
                f" (fields: {', '.join(spec.fields)})"
            )
        try:
            validate_op(op, declared.type)
        except DoelpoortError as exc:
            raise ConfigurationError(f"{where}: {key}field {field}: {exc.detail}") from exc

    for field, op in grant.field_ops.items():
        check_op("", field, op)
    for partner, ops in grant.requester_field_ops.items():
        key = f"requester_field_ops.{partner}: "
        holder = catalog.partners.get(partner)
        if holder is None:
            raise ConfigurationError(
                f"{where}: {key}{partner} is not a partner of the connector catalog"
            )
        # A rule for a partner that can never ask for the dataset is dead, and most
        # likely meant for someone else.
        if not set(holder.roles) & set(purpose.requester_roles) or (
            grant.requesters is not None and partner not in grant.requesters
        ):
            raise ConfigurationError(
                f"{where}: {key}the grant does not cover {partner} (it holds none of the"
                " purpose's roles or is not among the grant's requesters)"
            )
        for field, op in ops.items():
            check_op(key, field, op)
    kept = grant.ops_in_clear()
    for field in grant.clear_reasons:
        if field not in kept:
            raise ConfigurationError(
                f"{where}: clear_reasons.{field}: the grant does not release {field} in"
                " clear (op keep), so there is nothing to give a reason for"
            )
    sensitive = catalog.vocabulary.sensitive_categories
    for field in kept:
        category = spec.fields[field].category
        if category in sensitive and field not in grant.clear_reasons:
            raise ConfigurationError(
                f"{where}: field {field} is {category} data (a sensitive category) released"
                f" in clear (keep): state why in clear_reasons.{field}, or reduce its op"
            )


def _grant_data(grant: DatasetGrant) -> dict[str, Any]:
    # No "requesters" key at all (rather than null) when the grant is not narrowed: the
    # policy tests for its absence.
    data: dict[str, Any] = {
        "field_ops": dict(grant.field_ops),
        "requester_field_ops": {
            partner: dict(ops) for partner, ops in grant.requester_field_ops.items()
        },
        "clear_reasons": dict(grant.clear_reasons),
    }
    if grant.requesters is not None:
        data["requesters"] = list(grant.requesters)
    return data


def _purpose(name: str, spec: PurposeModel) -> Purpose:
    return Purpose(
        name=name,
        title=spec.title if spec.title is not None else name,
        legal_basis=spec.legal_basis,
        retention_days=spec.retention_days,
        requester_roles=tuple(spec.requester_roles),
        requires_justification=spec.requires_justification,
        requires_facts=tuple(spec.requires_facts),
        datasets=MappingProxyType(
            {dataset: _grant(grant) for dataset, grant in spec.datasets.items()}
        ),
        allowed_domains=_optional_tuple(spec.allowed_domains),
        excluded_domains=tuple(spec.excluded_domains),
        excluded_categories=tuple(spec.excluded_categories),
        clear_categories=_optional_tuple(spec.clear_categories),
        reduced_categories=_optional_tuple(spec.reduced_categories),
        pseudonym_categories=_optional_tuple(spec.pseudonym_categories),
    )


def _grant(spec: GrantModel) -> DatasetGrant:
    return DatasetGrant(
        field_ops=MappingProxyType(dict(spec.field_ops)),
        requesters=_optional_tuple(spec.requesters),
        requester_field_ops=MappingProxyType(
            {
                partner: MappingProxyType(dict(ops))
                for partner, ops in spec.requester_field_ops.items()
            }
        ),
        clear_reasons=MappingProxyType(dict(spec.clear_reasons)),
    )


def _optional_tuple(names: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(names)
