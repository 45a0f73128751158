"""The connector catalog: every partner, dataset and field of a deployment.

``connectors/<partner>.yaml`` declares one partner: its id, name and roles, and the
datasets it provides with their fields (type and category), the identity keys a record
can be found by and the connector that fetches them (``file`` or ``http``); optionally
the partner's pinned client certificates (``certificates``). The YAML is
validated strictly (unknown keys, types, categories and domains are errors) and turned
into the frozen, read-only specs of `gateway.vocabulary`. Connectors are built on first
use and reused.
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
from gateway.connectors.base import Connector
from gateway.connectors.file import FileConnector
from gateway.connectors.http import HttpConnector
from gateway.errors import ConfigurationError, UnknownDataset
from gateway.ids import ID_PATTERN
from gateway.vocabulary import (
    Category,
    CertificatePin,
    ConnectorConfig,
    DatasetSpec,
    Domain,
    FieldSpec,
    FieldType,
    FileConnectorConfig,
    HttpConnectorConfig,
    OAuth2Config,
    Partner,
    SubjectKey,
)

__all__ = ["Catalog"]

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
    category: Category


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
    domain: Domain
    identity_keys: Annotated[
        list[Annotated[list[SubjectKey], Field(min_length=1)]], Field(min_length=1)
    ]
    connector: Annotated[_FileConnectorModel | _HttpConnectorModel, Field(discriminator="kind")]
    fields: Annotated[
        dict[Annotated[str, Field(pattern=_FIELD_PATTERN)], _FieldModel], Field(min_length=1)
    ]


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


def _build_dataset(partner_id: str, name: str, model: _DatasetModel, where: str) -> DatasetSpec:
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
    return DatasetSpec(
        id=f"{partner_id}/{name}",
        provider=partner_id,
        name=name,
        description=model.description,
        domain=model.domain,
        fields=MappingProxyType(fields),
        identity_keys=tuple(keys),
        connector=connector,
    )


def _load_partner(path: Path) -> Partner:
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
        name: _build_dataset(model.partner, name, dataset, where)
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
    """Every partner and dataset of a deployment, and one connector per dataset."""

    def __init__(
        self,
        partners: Mapping[str, Partner],
        datasets: Mapping[str, DatasetSpec],
        var_dir: Path,
    ) -> None:
        self.partners: Mapping[str, Partner] = MappingProxyType(dict(partners))
        self.datasets: Mapping[str, DatasetSpec] = MappingProxyType(dict(datasets))
        self.var_dir = var_dir
        self._connectors: dict[str, Connector] = {}

    @classmethod
    def load(cls, connectors_dir: Path, var_dir: Path) -> Catalog:
        """Read and validate every ``*.yaml`` (and ``*.yml``) file in ``connectors_dir``."""
        if not connectors_dir.is_dir():
            raise ConfigurationError(f"{connectors_dir}: connectors directory not found")
        files = sorted(
            [*connectors_dir.glob("*.yaml"), *connectors_dir.glob("*.yml")],
            key=lambda p: p.name,
        )
        if not files:
            raise ConfigurationError(f"{connectors_dir}: no partner files (*.yaml)")
        partners: dict[str, Partner] = {}
        where: dict[str, Path] = {}
        pinned: dict[CertificatePin, str] = {}
        for path in files:
            partner = _load_partner(path)
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
            partners[partner.id] = partner
            where[partner.id] = path
        return cls(partners, _index(partners.values()), var_dir)

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
        roles and the datasets' policy views (provider, domain, fields with type and
        category, identity keys). Its canonical JSON is ``catalog.json`` of the policy set
        (`gateway.policy.bundle`), so the policy digest changes whenever any of it does.

        Never connector URLs, paths, secrets or certificate pins: they decide nothing a
        policy sees, and the document is archived in the audit log. One key per line:
        whatever a policy comes to read from the catalog is added here.
        """
        return {
            "partners": {pid: {"roles": list(p.roles)} for pid, p in self.partners.items()},
            "datasets": {did: spec.policy_view() for did, spec in self.datasets.items()},
        }


def _index(partners: Iterable[Partner]) -> dict[str, DatasetSpec]:
    return {spec.id: spec for partner in partners for spec in partner.datasets.values()}


def _build_connector(spec: DatasetSpec, var_dir: Path) -> Connector:
    if isinstance(spec.connector, FileConnectorConfig):
        return FileConnector(spec, var_dir)
    return HttpConnector(spec, var_dir)
