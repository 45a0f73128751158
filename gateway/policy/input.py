"""Build the policy input for one dataset of one request.

The input holds names and categories only — who asks, for which purpose, which dataset
with its field names, types and categories, *which* identity keys were given, and
whether each fact about the subject the purpose requires holds (a boolean per fact) —
never an identifier or a record value. It is also what the audit log keeps for replay, so the
builder copies exactly the keys below out of what it is given and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from audit.clock import rfc3339
from gateway.errors import ConfigurationError, InvalidRequest

# Subject key names (bsn, v_number, date_of_birth). The pattern is also the guard that a
# caller cannot pass identifier *values* where names belong: "123456782" or "J. Fictief"
# do not match it.
_KEY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def build_policy_input(
    *,
    requester_id: str,
    roles: Sequence[str],
    purpose: str,
    case_ref: str,
    has_justification: bool,
    dataset: Mapping[str, Any],
    subject_keys: Iterable[str],
    now: datetime,
    subject_facts: Mapping[str, bool] | None = None,
    action: str = "disclose",
) -> dict[str, Any]:
    """The policy input document (docs/data-model.md, "Policy input and decision").

    ``dataset`` is the dataset's section as :func:`dataset_input` prepared it (once per
    dataset, not per request). ``subject_keys`` are the *names* of the identity keys the
    requester gave. ``subject_facts`` says, for each fact about the subject the purpose
    requires, whether it holds (none: ``{}``, which no required fact passes).
    Raises InvalidRequest for bad request-derived arguments and ConfigurationError for a
    malformed dataset view.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    for value, what in ((requester_id, "requester"), (purpose, "purpose"), (action, "action")):
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{what} must be a non-empty string")
    if not isinstance(case_ref, str):
        raise InvalidRequest("case_ref must be a string")
    if not isinstance(has_justification, bool):
        raise InvalidRequest("has_justification must be true or false")
    keys = sorted(set(subject_keys))
    if not all(isinstance(k, str) and _KEY_NAME.fullmatch(k) for k in keys):
        raise InvalidRequest("subject keys must be identity key names such as bsn")
    if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
        raise InvalidRequest("roles must be a list of strings")
    if subject_facts is not None and not isinstance(subject_facts, Mapping):
        raise InvalidRequest("subject facts must map fact names to true or false")
    facts = dict(subject_facts or {})
    # Booleans under fact names only: a value (a nationality, a date) has no place here.
    if not all(
        isinstance(name, str) and _KEY_NAME.fullmatch(name) and isinstance(holds, bool)
        for name, holds in facts.items()
    ):
        raise InvalidRequest("subject facts must map fact names to true or false")
    return {
        "action": action,
        "time": rfc3339(now),
        "requester": {"id": requester_id, "roles": sorted(set(roles))},
        "purpose": purpose,
        "case_ref": case_ref,
        "has_justification": has_justification,
        "dataset": dataset,
        "subject_keys": keys,
        "subject_facts": facts,
    }


def dataset_input(view: Mapping[str, Any]) -> dict[str, Any]:
    """Check a dataset's policy view and turn it into the input's ``dataset`` section.

    The view holds ``id``, ``provider``, ``domain``, ``fields`` (name → ``{"type",
    "category"}``) and ``identity_keys`` (lists of field names). Raises
    ConfigurationError for a malformed view.
    """
    try:
        dataset_id, provider, domain = view["id"], view["provider"], view["domain"]
        fields = view["fields"]
        identity_keys = view["identity_keys"]
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(f"dataset view lacks {exc}") from None
    # Empty strings are allowed: the pipeline asks about "no dataset" when a purpose
    # covers none, so that the refusal is still decided and logged.
    if not all(isinstance(v, str) for v in (dataset_id, provider, domain)):
        raise ConfigurationError("dataset view: id, provider and domain must be strings")
    if not isinstance(fields, Mapping) or not isinstance(identity_keys, Sequence):
        raise ConfigurationError(f"dataset {dataset_id}: fields or identity_keys malformed")
    return {
        "id": dataset_id,
        "provider": provider,
        "domain": domain,
        "fields": {name: _field(dataset_id, name, spec) for name, spec in fields.items()},
        "identity_keys": [_identity_key(dataset_id, key, fields) for key in identity_keys],
    }


def _field(dataset_id: str, name: object, spec: object) -> dict[str, str]:
    field_type = spec.get("type") if isinstance(spec, Mapping) else None
    category = spec.get("category") if isinstance(spec, Mapping) else None
    if (
        not isinstance(name, str)
        or not isinstance(field_type, str)
        or not isinstance(category, str)
    ):
        raise ConfigurationError(f"dataset {dataset_id}: a field lacks its type or category")
    return {"type": field_type, "category": category}


def _identity_key(dataset_id: str, key: object, fields: Mapping[str, Any]) -> list[str]:
    if isinstance(key, str) or not isinstance(key, Sequence) or not key:
        raise ConfigurationError(f"dataset {dataset_id}: an identity key is not a list of fields")
    if not all(isinstance(part, str) and part in fields for part in key):
        raise ConfigurationError(f"dataset {dataset_id}: an identity key names an unknown field")
    return list(key)
