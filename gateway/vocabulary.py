"""The words Doelpoort speaks, and the specs of what a deployment holds.

Field types and identity keys are closed vocabularies fixed here, because code gives them
their meaning (the operators, the connectors' value checks, the partner API's subject).
Domains and field categories are the deployment's own words: the catalog declares them
in ``connectors/vocabulary.yaml`` (:class:`Vocabulary`), and the partner files and the
purpose register are checked against that. The specs (partner, dataset, field, fact,
connector configuration) are what the catalog turns ``connectors/*.yaml`` into: frozen
and read-only, shared by the connectors, the pipeline, the operators and the policy
input alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Literal, get_args

__all__ = [
    "FIELD_TYPES",
    "SUBJECT_KEYS",
    "CertificatePin",
    "ConnectorConfig",
    "DatasetSpec",
    "FactSpec",
    "FactValue",
    "FieldSpec",
    "FieldType",
    "FileConnectorConfig",
    "HttpConnectorConfig",
    "OAuth2Config",
    "Partner",
    "SubjectKey",
    "Term",
    "Vocabulary",
]

FieldType = Literal["string", "date", "integer", "number", "boolean", "address"]
SubjectKey = Literal["bsn", "v_number", "passport_no", "iban", "name", "date_of_birth"]

FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
#: The identity keys a request's subject may carry; identity keys of datasets use these names.
SUBJECT_KEYS: tuple[str, ...] = get_args(SubjectKey)


@dataclass(frozen=True, slots=True)
class Term:
    """A domain or field category of the deployment's vocabulary.

    ``sensitive`` marks a category of special-category (GDPR art. 9) or criminal
    (art. 10) data: released in clear, it needs a stated reason in the register.
    """

    name: str
    description: str
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The domains and field categories a deployment's catalog and register may use."""

    domains: Mapping[str, Term]
    categories: Mapping[str, Term]

    @property
    def sensitive_categories(self) -> frozenset[str]:
        return frozenset(name for name, term in self.categories.items() if term.sensitive)


#: A value a fact compares a field's values with (the field's type decides which).
FactValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class FactSpec:
    """A fact about a subject, as a provider dataset declares it.

    True when some record of the subject in ``dataset`` has a value of ``field`` in
    ``true_if`` (compared as the field's type: ``True`` is not ``1``). It enters the
    policy input as that boolean, never as a value.
    """

    name: str
    dataset: str
    field: str
    true_if: tuple[FactValue, ...]

    def holds(self, records: Iterable[Mapping[str, object]]) -> bool:
        """Whether some record's value of the field is one ``true_if`` names."""
        wanted = {(type(v) is bool, v) for v in self.true_if}
        return any(
            (type(value) is bool, value) in wanted
            for record in records
            if (value := record.get(self.field)) is not None
        )


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a dataset: its name, value type and category."""

    name: str
    type: str
    category: str


@dataclass(frozen=True, slots=True)
class FileConnectorConfig:
    """A JSONL file of records, relative to the deployment's ``var/`` directory."""

    path: PurePosixPath
    kind: Literal["file"] = "file"


@dataclass(frozen=True, slots=True)
class OAuth2Config:
    """OAuth2 client credentials; the secret is read from ``client_secret_env``."""

    token_url: str
    client_id: str
    client_secret_env: str
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class HttpConnectorConfig:
    """The provider's REST API: ``POST url`` with ``{"subject": {...}}``.

    ``verify`` is ``True`` (the system trust store) or a CA bundle for the provider's TLS
    (a relative path is taken relative to ``var/``). ``url`` and the token URL are
    ``https`` unless ``allow_plain_http_loopback`` lets them be ``http`` to a loopback
    host (the catalog checks it).
    """

    url: str
    timeout_s: float = 2.0
    verify: bool | PurePosixPath = True
    oauth2: OAuth2Config | None = None
    allow_plain_http_loopback: bool = False
    kind: Literal["http"] = "http"


ConnectorConfig = FileConnectorConfig | HttpConnectorConfig


@dataclass(frozen=True, eq=False, slots=True)
class DatasetSpec:
    """A dataset a partner provides; ``id`` is ``<partner>/<dataset>``."""

    id: str
    provider: str
    name: str
    description: str
    domain: str
    fields: Mapping[str, FieldSpec]
    identity_keys: tuple[tuple[str, ...], ...]
    connector: ConnectorConfig
    #: The facts about a subject this dataset declares, by name.
    facts: Mapping[str, FactSpec] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def policy_view(self) -> dict[str, Any]:
        """Names and categories only: what the policy input may say about this dataset."""
        return {
            "id": self.id,
            "provider": self.provider,
            "domain": self.domain,
            "fields": {
                name: {"type": spec.type, "category": spec.category}
                for name, spec in self.fields.items()
            },
            "identity_keys": [list(key) for key in self.identity_keys],
        }

    def covered_keys(self, subject: Mapping[str, object]) -> tuple[tuple[str, ...], ...]:
        """The identity keys whose every part the subject gives (non-empty)."""
        return tuple(
            key
            for key in self.identity_keys
            if all(isinstance(subject.get(part), str) and subject[part] for part in key)
        )


@dataclass(frozen=True, slots=True)
class CertificatePin:
    """A client certificate admitted for a partner without the development CA's
    issuance register (a partner CA of the deployment's own): by the SHA-256 of its DER
    (``sha256``: that one certificate) or of its SubjectPublicKeyInfo (``spki_sha256``:
    any certificate for that key). ``digest`` is lowercase hex."""

    kind: Literal["sha256", "spki_sha256"]
    digest: str


@dataclass(frozen=True, eq=False, slots=True)
class Partner:
    """A partner of the deployment: requester, provider or both.

    ``certificates`` pins the partner's client certificates, for a partner CA that
    keeps no issuance register the gateway can read (an external CA).
    """

    id: str
    name: str
    roles: tuple[str, ...]
    datasets: Mapping[str, DatasetSpec]
    certificates: tuple[CertificatePin, ...] = ()
