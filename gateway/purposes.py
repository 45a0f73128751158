"""What a partner may ask (``GET /v1/purposes``), derived from the register and the catalog.

A partner sees the purposes whose requester roles it holds and, within each, only the
datasets the register covers it for (`Register.covered_datasets`, the very choice a
request that names no datasets gets); a purpose where nothing remains is left out. Per
dataset it sees the identity keys the catalog finds records by and the field ops the
register grants, which a disclosure's ``field_ops`` would show it anyway.

Nothing about other partners: no purpose it is not granted, no dataset narrowed away from
it, no ``requesters`` lists and no roles. This is a guide, not a decision: the Rego policy
still decides every request, and may deny what is listed here.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.api_models import (
    CaseRefFormatInfo,
    GrantedDataset,
    GrantedPurpose,
    PurposeList,
)
from gateway.policy.register import DatasetGrant, Purpose, Register
from gateway.vocabulary import DatasetSpec, Partner

__all__ = ["granted_purposes"]


def granted_purposes(
    register: Register,
    datasets: Mapping[str, DatasetSpec],
    requester: Partner,
    *,
    policy_digest: str,
) -> PurposeList:
    """The purposes ``requester`` is granted, in register order, with what each covers."""
    purposes = [
        granted
        for purpose in register.purposes.values()
        if (granted := _granted_purpose(register, purpose, datasets, requester)) is not None
    ]
    return PurposeList(
        requester=requester.id,
        policy_digest=policy_digest,
        case_ref_formats=[
            CaseRefFormatInfo(name=f.name, pattern=f.pattern, example=f.example)
            for f in register.case_ref_formats
        ],
        purposes=purposes,
    )


def _granted_purpose(
    register: Register,
    purpose: Purpose,
    datasets: Mapping[str, DatasetSpec],
    requester: Partner,
) -> GrantedPurpose | None:
    """One purpose as ``requester`` may ask it; None when nothing of it is granted."""
    covered = [
        _granted_dataset(datasets[dataset_id], purpose.datasets[dataset_id], requester)
        for dataset_id in register.covered_datasets(purpose.name, requester.id, requester.roles)
        if dataset_id in datasets  # the register is checked against the catalog at start-up
    ]
    if not covered:
        return None
    return GrantedPurpose(
        name=purpose.name,
        title=purpose.title,
        legal_basis=purpose.legal_basis,
        retention_days=purpose.retention_days,
        requires_justification=purpose.requires_justification,
        requires_facts=list(purpose.requires_facts),
        datasets=covered,
    )


def _granted_dataset(spec: DatasetSpec, grant: DatasetGrant, requester: Partner) -> GrantedDataset:
    # Validated, not constructed: the catalog's identity keys are plain strings to the
    # type checker, and the model checks they are subject keys.
    return GrantedDataset.model_validate(
        {
            "id": spec.id,
            "provider": spec.provider,
            "description": spec.description,
            "identity_keys": [list(key) for key in spec.identity_keys],
            "field_ops": released_ops(grant, requester),
        }
    )


def released_ops(grant: DatasetGrant, requester: Partner) -> dict[str, str]:
    """The ops the register grants ``requester`` on a dataset's fields, field by field.

    The one place a grant turns into what this requester would be given: a rule the
    register makes per requester belongs here, so the guide cannot show a partner an op
    that is not its own.
    """
    # The requester's own ops (requester_field_ops) replace the grant's, as in the policy.
    return dict(grant.field_ops) | dict(grant.requester_field_ops.get(requester.id, {}))
