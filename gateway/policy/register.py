"""The purpose register (doelbindingsregister): ``policies/register.yaml``, validated.

The Rego policy reads the register as ``data.register`` (:meth:`Register.as_data`). The
loader is strict on purpose: an unknown key (say ``excluded_domain`` for
``excluded_domains``) would otherwise be ignored by the policy and quietly widen a
purpose, so it is a ConfigurationError at start-up. So is a domain or category name the
connector catalog does not know (``allowed_domains: [imigration]`` would otherwise allow
nothing, ``pseudonym_categories: [identifiers]`` would quietly drop the identifiers, and
``excluded_domains: [polices]`` would exclude nothing). Op names are checked against the
operator registry here. The datasets, field names and field types are the connector
catalog's, so :meth:`Register.check_against` checks them against the catalog at start-up
(a dataset the catalog lacks, a misspelled field, an op that does not suit its field's
type, a role no partner holds, a requester that is no partner); the engine checks every
decision's ops again, since the policy makes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.config_yaml import load_yaml
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError, DoelpoortError
from gateway.ids import validate_id
from gateway.operators import parse_op, validate_op
from gateway.vocabulary import CATEGORIES, DOMAINS

REGISTER_FILE = "register.yaml"
MAX_RETENTION_DAYS = 36_500
"""A century: any longer is a mistake, and the audit store counts it in 64-bit seconds."""

_PURPOSE_KEYS = {
    "title",
    "legal_basis",
    "retention_days",
    "requester_roles",
    "requires_justification",
    "datasets",
    "allowed_domains",
    "excluded_domains",
    "excluded_categories",
    "clear_categories",
    "reduced_categories",
    "pseudonym_categories",
}
#: The category lists of a purpose's category allow-list, from the most to the least
#: released (see the Purpose fields below and policies/doelpoort/deny.rego).
_TIER_KEYS = ("clear_categories", "reduced_categories", "pseudonym_categories")
_GRANT_KEYS = {"field_ops", "requesters"}


@dataclass(frozen=True)
class DatasetGrant:
    """What a purpose releases of one dataset."""

    field_ops: Mapping[str, str]
    #: Partners this dataset is narrowed to; None: every partner holding a purpose role.
    requesters: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Purpose:
    name: str
    title: str
    legal_basis: str
    retention_days: int
    requester_roles: tuple[str, ...]
    requires_justification: bool
    datasets: Mapping[str, DatasetGrant]
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
        top = _mapping(raw, "the register", {"purposes"})
        purposes = _mapping(top.get("purposes"), "purposes")
        return cls(
            purposes=MappingProxyType(
                {
                    name: _purpose(validate_id(name, "purpose"), spec)
                    for name, spec in purposes.items()
                }
            )
        )

    def check_against(self, catalog: Catalog) -> None:
        """Check every purpose against the connector catalog (at start-up).

        Raises ConfigurationError naming purpose, dataset and field for a dataset the
        catalog does not hold, a field the dataset does not declare (the policy would
        silently leave it out) or an op that does not suit the field's type (it would
        otherwise only surface as a 503 on a live request); and for a requester role no
        partner holds or a named requester that is no partner (a misspelt one would
        silently grant nothing).
        """
        roles = {role for partner in catalog.partners.values() for role in partner.roles}
        for name, purpose in self.purposes.items():
            for role in purpose.requester_roles:
                if role not in roles:
                    raise ConfigurationError(
                        f"purpose {name}: no partner of the connector catalog holds role"
                        f" {role} (roles: {', '.join(sorted(roles))})"
                    )
            for dataset_id, grant in purpose.datasets.items():
                where = f"purpose {name}, dataset {dataset_id}"
                for requester in grant.requesters or ():
                    if requester not in catalog.partners:
                        raise ConfigurationError(
                            f"{where}: requester {requester} is not a partner of the"
                            " connector catalog"
                        )
                spec = catalog.datasets.get(dataset_id)
                if spec is None:
                    raise ConfigurationError(f"{where}: the connector catalog has no such dataset")
                for field, op in grant.field_ops.items():
                    declared = spec.fields.get(field)
                    if declared is None:
                        raise ConfigurationError(
                            f"{where}: field {field} is not a field of the dataset"
                            f" (fields: {', '.join(spec.fields)})"
                        )
                    try:
                        validate_op(op, declared.type)
                    except DoelpoortError as exc:
                        raise ConfigurationError(f"{where}: field {field}: {exc.detail}") from exc

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


def _grant_data(grant: DatasetGrant) -> dict[str, Any]:
    # No "requesters" key at all (rather than null) when the grant is not narrowed: the
    # policy tests for its absence.
    data: dict[str, Any] = {"field_ops": dict(grant.field_ops)}
    if grant.requesters is not None:
        data["requesters"] = list(grant.requesters)
    return data


def _purpose(name: str, raw: object) -> Purpose:
    where = f"purpose {name}"
    spec = _mapping(raw, where, _PURPOSE_KEYS)
    for key in ("legal_basis", "retention_days", "requester_roles", "datasets"):
        if key not in spec:
            raise ConfigurationError(f"{where}: {key} is required")
    retention = spec["retention_days"]
    if not isinstance(retention, int) or isinstance(retention, bool) or retention <= 0:
        raise ConfigurationError(f"{where}: retention_days must be a positive integer")
    if retention > MAX_RETENTION_DAYS:
        raise ConfigurationError(
            f"{where}: retention_days must be at most {MAX_RETENTION_DAYS} (a century)"
        )
    justification = spec.get("requires_justification", True)
    if not isinstance(justification, bool):
        raise ConfigurationError(f"{where}: requires_justification must be true or false")
    roles = _ids(spec["requester_roles"], f"{where}: requester_roles")
    if not roles:
        raise ConfigurationError(f"{where}: requester_roles must name at least one role")
    allowed_domains = _optional_known(spec, "allowed_domains", DOMAINS, where)
    if allowed_domains == ():
        # An empty allow-list would refuse every dataset: surely a mistake, so say so.
        raise ConfigurationError(f"{where}: allowed_domains must name at least one domain")
    tiers = {key: _optional_known(spec, key, CATEGORIES, where) for key in _TIER_KEYS}
    _check_disjoint(tiers, where)
    datasets = _mapping(spec["datasets"], f"{where}: datasets")
    return Purpose(
        name=name,
        title=_text(spec.get("title", name), f"{where}: title"),
        legal_basis=_text(spec["legal_basis"], f"{where}: legal_basis"),
        retention_days=retention,
        requester_roles=roles,
        # Absent means required: forgetting the key must not drop the safeguard.
        requires_justification=justification,
        datasets=MappingProxyType(
            {
                _name(dataset, f"{where}: dataset"): _grant(f"{where}, dataset {dataset}", g)
                for dataset, g in datasets.items()
            }
        ),
        allowed_domains=allowed_domains,
        excluded_domains=_known(spec, "excluded_domains", DOMAINS, where),
        excluded_categories=_known(spec, "excluded_categories", CATEGORIES, where),
        clear_categories=tiers["clear_categories"],
        reduced_categories=tiers["reduced_categories"],
        pseudonym_categories=tiers["pseudonym_categories"],
    )


def _optional_known(
    spec: Mapping[str, Any], key: str, known: tuple[str, ...], where: str
) -> tuple[str, ...] | None:
    """``spec[key]`` as a list of names from ``known``; None when the key is absent.

    A key given without a list (``allowed_domains:`` with the list deleted) is an error,
    not "no constraint".
    """
    if key not in spec:
        return None
    return _known(spec, key, known, where)


def _known(
    spec: Mapping[str, Any], key: str, known: tuple[str, ...], where: str
) -> tuple[str, ...]:
    """``spec[key]`` (default []) as a list of names from ``known``, without repeats."""
    names = _names(spec.get(key, []), f"{where}: {key}")
    if unknown := sorted(set(names) - set(known)):
        raise ConfigurationError(
            f"{where}: {key}: unknown name(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{where}: {key} names a value twice")
    return names


def _check_disjoint(tiers: Mapping[str, tuple[str, ...] | None], where: str) -> None:
    # A category in two tiers would be ambiguous to a reader (the policy applies the
    # stricter one), so the register must put each category in one tier at most.
    seen: dict[str, str] = {}
    for key, names in tiers.items():
        for name in names or ():
            if name in seen:
                raise ConfigurationError(
                    f"{where}: category {name} is in both {seen[name]} and {key}"
                )
            seen[name] = key


def _grant(where: str, raw: object) -> DatasetGrant:
    spec = _mapping(raw, where, _GRANT_KEYS)
    ops = _mapping(spec.get("field_ops"), f"{where}: field_ops")
    for field, op in ops.items():
        _name(field, f"{where}: field")
        if not isinstance(op, str):
            raise ConfigurationError(f"{where}: the op of field {field} must be a string")
        try:
            parse_op(op)
        except DoelpoortError as exc:
            raise ConfigurationError(f"{where}: field {field}: {exc.detail}") from exc
    requesters = spec.get("requesters")
    return DatasetGrant(
        field_ops=MappingProxyType(dict(ops)),
        requesters=None if requesters is None else _ids(requesters, f"{where}: requester"),
    )


def _mapping(raw: object, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a mapping")
    if allowed is not None and (unknown := set(map(str, raw)) - allowed):
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return raw


def _names(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where} must be a list")
    return tuple(_name(item, where) for item in raw)


def _ids(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where} must be a list")
    return tuple(validate_id(item, where) for item in raw)


def _name(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigurationError(f"{where}: every name must be a non-empty string")
    return raw


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigurationError(f"{where} must be non-empty text")
    return raw
