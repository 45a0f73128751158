"""Probe inputs: requests a gateway will see, decided once at start-up before it serves.

A policy set without a ``decision`` rule, or one whose decision errors or is undefined
for an ordinary request, compiles — and would then fail every request closed with a 503.
`gateway.runtime` asks the engine to decide these inputs first
(:meth:`~gateway.policy.engine.EmbeddedEngine.probe`), so such a policy stops start-up
with its cause instead.

The inputs are built as the pipeline builds them, from the register and the catalog: for
each purpose, the first of its datasets that some partner may ask for, asked by the
first such partner (by id) with the dataset's first identity key, about a subject every
fact the purpose requires holds for (so the allowing path is the one probed); and one
request for a purpose the register does not hold, which the pipeline asks about with no
dataset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.connectors.catalog import Catalog
from gateway.policy.input import build_policy_input, dataset_input
from gateway.policy.register import Register
from gateway.vocabulary import SUBJECT_KEYS, Partner

__all__ = ["probe_inputs"]

_CASE_REF = "PROBE-0000"
_NO_DATASET = {"id": "", "provider": "", "domain": "", "fields": {}, "identity_keys": []}


def probe_inputs(
    register: Register, catalog: Catalog, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(label, policy input) pairs; labels name requester, purpose and dataset."""
    partners = sorted(catalog.partners.values(), key=lambda partner: partner.id)
    inputs: list[tuple[str, dict[str, Any]]] = []
    for name, purpose in register.purposes.items():
        for dataset_id, grant in purpose.datasets.items():
            spec = catalog.datasets.get(dataset_id)
            requester = next(
                (
                    partner
                    for partner in partners
                    if set(partner.roles) & set(purpose.requester_roles)
                    and (grant.requesters is None or partner.id in grant.requesters)
                ),
                None,
            )
            if spec is None or requester is None:
                continue
            facts = dict.fromkeys(purpose.requires_facts, True)
            policy_input = _input(
                requester, name, spec.policy_view(), spec.identity_keys[0], now, facts
            )
            inputs.append((f"{requester.id} asking {name} for {dataset_id}", policy_input))
            break
    if partners:
        unregistered = "no-such-purpose"
        while unregistered in register.purposes:
            unregistered += "-x"
        requester = partners[0]
        policy_input = _input(requester, unregistered, _NO_DATASET, SUBJECT_KEYS[:1], now, {})
        inputs.append((f"{requester.id} asking {unregistered}, not in the register", policy_input))
    return inputs


def _input(
    requester: Partner,
    purpose: str,
    view: dict[str, Any],
    subject_keys: tuple[str, ...],
    now: datetime,
    subject_facts: dict[str, bool],
) -> dict[str, Any]:
    return build_policy_input(
        requester_id=requester.id,
        roles=requester.roles,
        purpose=purpose,
        case_ref=_CASE_REF,
        has_justification=True,
        dataset=dataset_input(view),
        subject_keys=subject_keys,
        now=now,
        subject_facts=subject_facts,
    )
