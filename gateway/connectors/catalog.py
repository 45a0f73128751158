"""The connector catalog: every partner, dataset and field of a deployment.

``connectors/vocabulary.yaml`` declares the deployment's vocabulary: the domains
datasets belong to and the categories of their fields, each with a description, and
which categories are sensitive (special-category and criminal data).
``connectors/<partner>.yaml`` declares one partner: its id, name and roles, and the
datasets it provides with their fields (type and category), the identity keys a record
can be found by, the facts about a subject it can tell (``facts``) and the connector that
fetches them (``file`` or ``http``); optionally the partner's pinned client certificates
(``certificates``). The YAML is validated strictly (unknown keys, types, and categories
and domains outside the vocabulary are errors) and turned into the frozen, read-only
specs of `gateway.vocabulary`. Connectors are built on first use and reused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.config_yaml import load_yaml
from gateway.connectors.base import Connector, is_valid_value
from gateway.connectors.file import FileConnector
from gateway.connectors.http import HttpConnector
from gateway.errors import ConfigurationError, UnknownDataset
from gateway.ids import ID_PATTERN
from gateway.vocabulary import (
    CertificatePin,
    ConnectorConfig,
    DatasetSpec,
    FactSpec,
    FactValue,
    FieldSpec,
    FieldType,
    FileConnectorConfig,
    HttpConnectorConfig,
    OAuth2Config,
    Partner,
    SubjectKey,
    Term,
    Vocabulary,
)

__all__ = ["VOCABULARY_FILE", "Catalog"]

#: The file of the connectors directory that declares the vocabulary; every other
#: ``*.yaml`` there is a partner.
VOCABULARY_FILE = "vocabulary.yaml"

#: Field types an identity key may have (they are matched as normalised strings).
_KEY_TYPES = frozenset({"string", "date"})
_ID_PATTERN = f"^{ID_PATTERN}$"
_FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


# ---------------------------------------------------------------------------
# YAML schema (validation only)
# ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _FieldModel(_Model):
    type: FieldType
    # A name of the vocabulary: checked against it once the vocabulary is read.
    category: Annotated[str, Field(pattern=_ID_PATTERN)]


class _FactModel(_Model):
    field: Annotated[str, Field(pattern=_FIELD_PATTERN)]
    # Checked against the field's type once the fields are known.
    true_if: Annotated[list[Any], Field(min_length=1)]


class _TermModel(_Model):
    description: Annotated[str, Field(min_length=1)]


class _CategoryModel(_TermModel):
    sensitive: bool = False


class _VocabularyModel(_Model):
    domains: Annotated[
        dict[Annotated[str, Field(pattern=_ID_PATTERN)], _TermModel], Field(min_length=1)
    ]
    categories: Annotated[
        dict[Annotated[str, Field(pattern=_ID_PATTERN)], _CategoryModel], Field(min_length=1)
    ]


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError("must be a relative path inside var/ without '..'")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    return value


def _check_plain_http(name: str, url: str, *, allowed: bool) -> None:
    """Refuse ``http://`` unless the host is this machine's loopback and the catalog
    says so in as many words.

    Over plain HTTP anyone on the path reads the subject's identity keys the gateway
    sends, the records that come back and an OAuth2 client secret, and can change the
    records. Only a provider on the same host (a sidecar, a local adapter) is off
    every network path, and even then the catalog must say it means it.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        return
    if not _is_loopback(parts.hostname or ""):
        raise ValueError(
            f"{name}: plain http:// is refused: use https:// (only a loopback host may "
            "be reached over http://, with allow_plain_http_loopback: true)"
        )
    if not allowed:
        raise ValueError(
            f"{name}: plain http:// to a loopback host needs allow_plain_http_loopback: true"
        )


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: not a name that merely starts like it
    (``localhost.example``), nor a loopback address in another spelling."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False  # newer Pythons call ::ffff:127.0.0.1 loopback; it is spelt oddly
    return address.is_loopback


class _FileConnectorModel(_Model):
    kind: Literal["file"]
    path: str

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _relative_path(value)


class _OAuth2Model(_Model):
    token_url: str
    client_id: Annotated[str, Field(min_length=1, max_length=256)]
    client_secret_env: Annotated[str, Field(pattern=_ENV_PATTERN)]
    scope: Annotated[str, Field(min_length=1, max_length=1024)] | None = None

    @field_validator("token_url")
    @classmethod
    def _check_token_url(cls, value: str) -> str:
        return _http_url(value)


class _HttpConnectorModel(_Model):
    kind: Literal["http"]
    url: str
    timeout_s: Annotated[float, Field(gt=0, le=60, strict=False)] = 2.0
    verify: bool | str = True
    oauth2: _OAuth2Model | None = None
    allow_plain_http_loopback: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _check_plain_http(self) -> _HttpConnectorModel:
        urls = {"url": self.url}
        if self.oauth2 is not None:
            urls["oauth2.token_url"] = self.oauth2.token_url
        for name, url in urls.items():
            _check_plain_http(name, url, allowed=self.allow_plain_http_loopback)
        return self

    @field_validator("verify")
    @classmethod
    def _check_verify(cls, value: bool | str) -> bool | str:
        if value is False:
            raise ValueError(
                "TLS verification cannot be switched off; give a CA bundle path instead"
            )
        if isinstance(value, str) and not value:
            raise ValueError("must be true or a CA bundle path")
        return value


class _DatasetModel(_Model):
    description: Annotated[str, Field(min_length=1)]
    domain: Annotated[str, Field(pattern=_ID_PATTERN)]
    identity_keys: Annotated[
        list[Annotated[list[SubjectKey], Field(min_length=1)]], Field(min_length=1)
    ]
    connector: Annotated[_FileConnectorModel | _HttpConnectorModel, Field(discriminator="kind")]
    fields: Annotated[
        dict[Annotated[str, Field(pattern=_FIELD_PATTERN)], _FieldModel], Field(min_length=1)
    ]
    facts: dict[Annotated[str, Field(pattern=_FIELD_PATTERN)], _FactModel] = {}


def _sha256_hex(value: str) -> str:
    """A SHA-256 digest as lowercase hex; colons (as ``openssl x509 -fingerprint``
    prints them) and capitals are accepted."""
    digits = value.replace(":", "").lower()
    if len(digits) != 64 or digits.strip("0123456789abcdef"):
        raise ValueError("must be a SHA-256 digest: 64 hex digits (colons allowed)")
    return digits


class _PinModel(_Model):
    sha256: str | None = None
    spki_sha256: str | None = None

    @field_validator("sha256", "spki_sha256")
    @classmethod
    def _check_digest(cls, value: str | None) -> str | None:
        return None if value is None else _sha256_hex(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.sha256 is None) == (self.spki_sha256 is None):
            raise ValueError("give exactly one of sha256 and spki_sha256")
        return self

    def pin(self) -> CertificatePin:
        if self.sha256 is not None:
            return CertificatePin("sha256", self.sha256)
        assert self.spki_sha256 is not None
        return CertificatePin("spki_sha256", self.spki_sha256)


class _PartnerModel(_Model):
    partner: Annotated[str, Field(pattern=_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1)]
    roles: list[Annotated[str, Field(pattern=_ID_PATTERN)]]
    datasets: dict[Annotated[str, Field(pattern=_ID_PATTERN)], _DatasetModel]
    certificates: list[_PinModel] = []


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


_SECRET_KEY = re.compile(r"(secret|password|token)$", re.IGNORECASE)


def _format_errors(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "<document>"
        message = error["msg"]
        if error["type"] == "extra_forbidden" and _SECRET_KEY.search(str(error["loc"][-1])):
            message = "secrets never go in YAML; name an environment variable in client_secret_env"
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


def _known(kind: str, name: str, known: Mapping[str, Term]) -> str | None:
    """None when ``known`` holds ``name``, else the problem, naming what it does hold."""
    if name in known:
        return None
    return f"unknown {kind} {name!r} (known: {', '.join(known)})"


def _check_vocabulary(name: str, model: _DatasetModel, vocabulary: Vocabulary) -> str | None:
    """The first name of the dataset outside the vocabulary, as a located problem."""
    if problem := _known("domain", model.domain, vocabulary.domains):
        return f"datasets.{name}.domain: {problem}"
    for field_name, spec in model.fields.items():
        if problem := _known("category", spec.category, vocabulary.categories):
            return f"datasets.{name}.fields.{field_name}.category: {problem}"
    return None


def _build_facts(
    dataset_id: str, name: str, model: _DatasetModel, fields: Mapping[str, FieldSpec], where: str
) -> dict[str, FactSpec]:
    facts = {}
    for fact_name, fact in model.facts.items():
        here = f"{where}: datasets.{name}.facts.{fact_name}"
        declared = fields.get(fact.field)
        if declared is None:
            raise ConfigurationError(
                f"{here}: field {fact.field!r} is not a field of the dataset"
                f" (fields: {', '.join(fields)})"
            )
        if declared.type == "address":
            raise ConfigurationError(f"{here}: a fact cannot compare address values")
        values: list[FactValue] = []
        for i, value in enumerate(fact.true_if):
            # The values are the catalog's, not a subject's, but a message needs no value.
            if value is None or not is_valid_value(declared.type, value):
                # YAML reads an unquoted 2026-01-01 as a date, not as the text it is here.
                hint = " (quote dates: '2026-01-01')" if declared.type == "date" else ""
                raise ConfigurationError(
                    f"{here}: true_if.{i} is not a {declared.type}, as field"
                    f" {fact.field!r} is{hint}"
                )
            values.append(value)
        if len({(type(v) is bool, v) for v in values}) != len(values):
            raise ConfigurationError(f"{here}: true_if repeats a value")
        facts[fact_name] = FactSpec(fact_name, dataset_id, fact.field, tuple(values))
    return facts


def _build_dataset(
    partner_id: str, name: str, model: _DatasetModel, where: str, vocabulary: Vocabulary
) -> DatasetSpec:
    if problem := _check_vocabulary(name, model, vocabulary):
        raise ConfigurationError(f"{where}: {problem}")
    fields = {
        field_name: FieldSpec(field_name, spec.type, spec.category)
        for field_name, spec in model.fields.items()
    }
    keys: list[tuple[str, ...]] = []
    for key in model.identity_keys:
        key_tuple = tuple(key)
        for part in key_tuple:
            if part not in fields:
                raise ConfigurationError(
                    f"{where}: dataset {name}: identity key {list(key_tuple)} names "
                    f"undeclared field {part!r}"
                )
            if fields[part].type not in _KEY_TYPES:
                raise ConfigurationError(
                    f"{where}: dataset {name}: identity key field {part!r} must be of type "
                    f"string or date, not {fields[part].type}"
                )
        if len(set(key_tuple)) != len(key_tuple):
            raise ConfigurationError(
                f"{where}: dataset {name}: identity key {list(key_tuple)} repeats a field"
            )
        if key_tuple in keys:
            raise ConfigurationError(
                f"{where}: dataset {name}: identity key {list(key_tuple)} is declared twice"
            )
        keys.append(key_tuple)

    connector: ConnectorConfig
    raw = model.connector
    if isinstance(raw, _FileConnectorModel):
        connector = FileConnectorConfig(path=PurePosixPath(raw.path))
    else:
        oauth2 = None
        if raw.oauth2 is not None:
            oauth2 = OAuth2Config(
                token_url=raw.oauth2.token_url,
                client_id=raw.oauth2.client_id,
                client_secret_env=raw.oauth2.client_secret_env,
                scope=raw.oauth2.scope,
            )
        verify: bool | PurePosixPath = (
            PurePosixPath(raw.verify) if isinstance(raw.verify, str) else raw.verify
        )
        connector = HttpConnectorConfig(
            url=raw.url,
            timeout_s=float(raw.timeout_s),
            verify=verify,
            oauth2=oauth2,
            allow_plain_http_loopback=raw.allow_plain_http_loopback,
        )
    dataset_id = f"{partner_id}/{name}"
    return DatasetSpec(
        id=dataset_id,
        provider=partner_id,
        name=name,
        description=model.description,
        domain=model.domain,
        fields=MappingProxyType(fields),
        identity_keys=tuple(keys),
        connector=connector,
        facts=MappingProxyType(_build_facts(dataset_id, name, model, fields, where)),
    )


def _load_vocabulary(path: Path) -> Vocabulary:
    where = str(path)
    if not path.is_file():
        raise ConfigurationError(
            f"{where}: not found: the catalog declares its domains and categories there"
            " (connectors/README.md)"
        )
    document = load_yaml(path)
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where}: must be a mapping with domains and categories")
    try:
        model = _VocabularyModel.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {_format_errors(exc)}") from exc
    return Vocabulary(
        domains=MappingProxyType(
            {name: Term(name, term.description) for name, term in model.domains.items()}
        ),
        categories=MappingProxyType(
            {
                name: Term(name, term.description, term.sensitive)
                for name, term in model.categories.items()
            }
        ),
    )


def _load_partner(path: Path, vocabulary: Vocabulary) -> Partner:
    where = str(path)
    document = load_yaml(path)
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where}: must be a mapping with partner, name, roles, datasets")
    try:
        model = _PartnerModel.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {_format_errors(exc)}") from exc
    if model.partner != path.stem:
        raise ConfigurationError(
            f"{where}: partner id {model.partner!r} does not match the file name {path.stem!r}"
        )
    if len(set(model.roles)) != len(model.roles):
        raise ConfigurationError(f"{where}: roles repeat a role")
    datasets = {
        name: _build_dataset(model.partner, name, dataset, where, vocabulary)
        for name, dataset in model.datasets.items()
    }
    pins = tuple(pin.pin() for pin in model.certificates)
    if len(set(pins)) != len(pins):
        raise ConfigurationError(f"{where}: certificates pin a certificate twice")
    return Partner(
        id=model.partner,
        name=model.name,
        roles=tuple(model.roles),
        datasets=MappingProxyType(datasets),
        certificates=pins,
    )


class Catalog:
    """Every partner, dataset and subject fact of a deployment, its vocabulary, and one
    connector per dataset."""

    def __init__(
        self,
        partners: Mapping[str, Partner],
        datasets: Mapping[str, DatasetSpec],
        var_dir: Path,
        vocabulary: Vocabulary,
    ) -> None:
        self.partners: Mapping[str, Partner] = MappingProxyType(dict(partners))
        self.datasets: Mapping[str, DatasetSpec] = MappingProxyType(dict(datasets))
        self.var_dir = var_dir
        self.vocabulary = vocabulary
        #: Every fact any dataset declares, by its (catalog-wide unique) name.
        self.facts: Mapping[str, FactSpec] = MappingProxyType(
            {name: fact for spec in self.datasets.values() for name, fact in spec.facts.items()}
        )
        self._connectors: dict[str, Connector] = {}

    @classmethod
    def load(cls, connectors_dir: Path, var_dir: Path) -> Catalog:
        """Read and validate ``vocabulary.yaml`` and every other ``*.yaml`` (and
        ``*.yml``) file in ``connectors_dir``, one partner each."""
        if not connectors_dir.is_dir():
            raise ConfigurationError(f"{connectors_dir}: connectors directory not found")
        vocabulary = _load_vocabulary(connectors_dir / VOCABULARY_FILE)
        files = sorted(
            [
                path
                for path in [*connectors_dir.glob("*.yaml"), *connectors_dir.glob("*.yml")]
                if path.name != VOCABULARY_FILE
            ],
            key=lambda p: p.name,
        )
        if not files:
            raise ConfigurationError(f"{connectors_dir}: no partner files (*.yaml)")
        partners: dict[str, Partner] = {}
        where: dict[str, Path] = {}
        pinned: dict[CertificatePin, str] = {}
        facts: dict[str, str] = {}
        for path in files:
            partner = _load_partner(path, vocabulary)
            if partner.id in partners:
                raise ConfigurationError(
                    f"{path}: duplicate partner {partner.id!r} (also in {where[partner.id].name})"
                )
            for pin in partner.certificates:
                # One certificate (or key) speaks for one partner only.
                if (other := pinned.setdefault(pin, partner.id)) != partner.id:
                    raise ConfigurationError(
                        f"{path}: {pin.kind} {pin.digest} is pinned for {other!r} as well"
                    )
            for spec in partner.datasets.values():
                for name in spec.facts:
                    # A purpose requires a fact by name: one name, one derivation.
                    if (other := facts.setdefault(name, spec.id)) != spec.id:
                        raise ConfigurationError(
                            f"{path}: datasets.{spec.name}.facts.{name}: fact {name!r} is"
                            f" declared by {other} as well"
                        )
            partners[partner.id] = partner
            where[partner.id] = path
        return cls(partners, _index(partners.values()), var_dir, vocabulary)

    def dataset(self, dataset_id: str) -> DatasetSpec:
        """The dataset's spec; :class:`UnknownDataset` if the catalog does not hold it."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise UnknownDataset(f"unknown dataset {dataset_id!r}") from None

    def connector(self, dataset_id: str) -> Connector:
        """The dataset's connector, built on first use and reused afterwards."""
        connector = self._connectors.get(dataset_id)
        if connector is None:
            connector = _build_connector(self.dataset(dataset_id), self.var_dir)
            self._connectors[dataset_id] = connector
        return connector

    async def aclose(self) -> None:
        """Close every connector built so far (HTTP clients, pools)."""
        connectors, self._connectors = list(self._connectors.values()), {}
        for connector in connectors:
            await connector.aclose()

    def policy_document(self) -> dict[str, Any]:
        """Everything of the catalog that policies read, and nothing else: the partners'
        roles, the datasets' policy views (provider, domain, fields with type and
        category, identity keys) with the subject facts they declare, and the vocabulary
        (domain names, categories and which are sensitive; not their descriptions). Its
        canonical JSON is ``catalog.json`` of the policy set (`gateway.policy.bundle`), so
        the policy digest changes whenever any of it does.

        Never connector URLs, paths, secrets or certificate pins: they decide nothing a
        policy sees, and the document is archived in the audit log. One key per line:
        whatever a policy comes to read from the catalog is added here.
        """
        return {
            "partners": {pid: {"roles": list(p.roles)} for pid, p in self.partners.items()},
            "datasets": {
                did: spec.policy_view() | {"facts": _facts_document(spec)}
                for did, spec in self.datasets.items()
            },
            "vocabulary": {
                "domains": sorted(self.vocabulary.domains),
                "categories": {
                    name: {"sensitive": term.sensitive}
                    for name, term in sorted(self.vocabulary.categories.items())
                },
            },
        }


def _facts_document(spec: DatasetSpec) -> dict[str, Any]:
    return {
        name: {"field": fact.field, "true_if": list(fact.true_if)}
        for name, fact in sorted(spec.facts.items())
    }


def _index(partners: Iterable[Partner]) -> dict[str, DatasetSpec]:
    return {spec.id: spec for partner in partners for spec in partner.datasets.values()}


def _build_connector(spec: DatasetSpec, var_dir: Path) -> Connector:
    if isinstance(spec.connector, FileConnectorConfig):
        return FileConnector(spec, var_dir)
    return HttpConnector(spec, var_dir)
