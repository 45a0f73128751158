"""Where a deployment keeps its files, how it listens, and what its audit log is called.

Deployment files (policies, connectors) live in the repository; runtime state (PKI,
keys, the master secret, the audit database, demo records) lives under ``var/`` and is
never committed. Every setting has a default for development and is set from the
environment as ``DOELPOORT_<NAME>`` (``DOELPOORT_PORT``, ``DOELPOORT_ORIGIN`` …); an
empty variable counts as unset. No dotenv or secrets file is read: what a gateway runs
with is what its service manager passes it, nothing from files lying beside it.

`Settings.from_env` is the one way to make settings; a bad value ends as a
`ConfigurationError` of one line naming the variable (the CLI prints it, exit status 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "DOELPOORT_"

DEVELOPMENT_ORIGIN = "doelpoort.local/audit"
"""The demo's checkpoint origin. A deployment names its own log (`serve` warns)."""

ORIGIN_MAX_CHARS = 255
POLICY_TIMEOUT_MAX_S = 60.0
BODY_BYTES_MIN = 1024  # a disclosure request with a justification needs a few hundred
BODY_BYTES_MAX = 1024 * 1024  # bodies are buffered whole; a request is one subject
REFUSALS_PER_MINUTE_MAX = 100_000
POLICY_WATCH_MAX_S = 3600.0


def _checkpoint_origin(value: str) -> str:
    """A C2SP checkpoint origin that is also a signed-note key name (the log's key is
    named by it): one non-empty line of printable characters, no whitespace, no '+'."""
    if not value.isprintable() or any(char.isspace() or char == "+" for char in value):
        raise ValueError("not a checkpoint origin")  # worded by _MUST_BE below
    return value


def _public_url(value: str) -> str:
    """An https URL with a host and at most a path: where partners send their requests."""
    parts = urlsplit(value)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not value.isprintable()
        or any(char.isspace() for char in value)
    ):
        raise ValueError("not a public URL")  # worded by _MUST_BE below
    parts.port  # noqa: B018 - raises ValueError for a port out of range
    return value.rstrip("/")


def _opa_url(value: str) -> str:
    """http(s)://host[:port] of an OPA server: its API is at the root (the client takes no
    path), and credentials in a URL would end up in logs."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or not value.isprintable()
        or any(char.isspace() for char in value)
    ):
        raise ValueError("not an OPA URL")  # worded by _MUST_BE below
    parts.port  # noqa: B018 - raises ValueError for a port out of range
    return value.rstrip("/")


Seconds = Annotated[float, Field(allow_inf_nan=False)]


class Settings(BaseSettings):
    """One deployment's paths, listening address, log name and limits."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # `DOELPOORT_PROXY_SOCKET=` means unset, as in a shell
        frozen=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
    )

    policies_dir: Path = PROJECT_ROOT / "policies"
    """Rego policies and the purpose register (register.yaml)."""

    connectors_dir: Path = PROJECT_ROOT / "connectors"
    """One YAML file per partner: its datasets and their connectors."""

    var_dir: Path = PROJECT_ROOT / "var"
    """Runtime state: PKI, keys, the master secret, the audit database, demo records."""

    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^\S+$")] = "127.0.0.1"
    """Address the mutual-TLS listener binds."""

    port: Annotated[int, Field(ge=0, le=65535)] = 8443
    """Port of the mutual-TLS listener; 0: any free port (`serve` prints the one bound)."""

    ops_host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^\S+$")] = "127.0.0.1"
    """Address of the operations listener: plain HTTP, no client certificate, serving
    /healthz, /readyz and the public JWKS to anyone who reaches it, and /metrics only to
    clients on this host (loopback). Give a load balancer's address to health-check it."""

    ops_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    """Port of the operations listener; 0: any free port (`serve` prints the one bound)."""

    proxy_socket: Path | None = None
    """Set: serve plain HTTP on this unix socket behind a TLS-terminating proxy, trusting
    the client certificate it forwards (gateway/transport/proxied.py); unset: mutual TLS."""

    public_url: Annotated[str, AfterValidator(_public_url)] | None = None
    """The https URL partners reach the gateway at (behind a proxy: the proxy's), named
    as the server in the OpenAPI document; unset: the listener's own address."""

    origin: Annotated[
        str,
        Field(min_length=1, max_length=ORIGIN_MAX_CHARS),
        AfterValidator(_checkpoint_origin),
    ] = DEVELOPMENT_ORIGIN
    """The audit log's name in its signed checkpoints (C2SP tlog-checkpoint origin) and
    the name of the key that signs them: each deployment's own, fixed before the log's
    first entry (a log signed under one origin does not open under another)."""

    policy_timeout_s: Annotated[Seconds, Field(gt=0, le=POLICY_TIMEOUT_MAX_S)] = 1.0
    """How long one policy evaluation may take before the request fails closed (503); with
    the OPA engine, the whole exchange with the OPA server."""

    policy_engine: Literal["embedded", "opa"] = "embedded"
    """Which engine decides: ``embedded`` (regopy, in-process) or ``opa`` (the OPA server
    at ``opa_url``, serving the bundle ``doelpoort policy bundle`` writes of the same
    policies; the gateway refuses to start unless its revision is their digest)."""

    opa_url: Annotated[str, AfterValidator(_opa_url)] | None = None
    """The OPA server's address, ``http(s)://host[:port]``, for ``policy_engine=opa``."""

    max_body_bytes: Annotated[int, Field(ge=BODY_BYTES_MIN, le=BODY_BYTES_MAX)] = 64 * 1024
    """The largest request body accepted (413 beyond)."""

    refusals_per_minute: Annotated[int, Field(ge=0, le=REFUSALS_PER_MINUTE_MAX)] = 60
    """Refusals of one partner that get an audit entry each per minute; beyond, they are
    counted into one summary entry per partner per minute (gateway/refusals.py)."""

    policy_digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    """Set: the digest of the only policy set this gateway serves; start-up and every
    reload refuse any other (gateway/policy/vetting.py)."""

    policy_bundle: Path | None = None
    """Set: the policy set comes from this signed OPA bundle (.tar.gz, `doelpoort policy
    bundle`) instead of the policies directory, and needs DOELPOORT_POLICY_BUNDLE_KEY."""

    policy_bundle_key: Path | None = None
    """The public key a policy bundle's signature must verify with; an unsigned bundle,
    or one signed by any other key, is refused."""

    policy_watch_s: Annotated[Seconds, Field(ge=0, le=POLICY_WATCH_MAX_S)] = 2.0
    """How often the policy files (or the bundle) are looked at for a change, which is
    then vetted and swapped in (gateway/policy_switch.py); 0: only on SIGHUP."""

    policy_reload_tests: bool = True
    """Whether a reload also runs the new set's Rego tests (``*_test.rego``) and refuses
    it when one fails; start-up runs `doelpoort policy check` only."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values given in code, then the environment; never a dotenv or secrets file.
        return (init_settings, env_settings)

    @classmethod
    def from_env(cls) -> Settings:
        """Defaults, overridden by ``DOELPOORT_*`` environment variables."""
        if _audit_url_set():
            # Replicas sharing one log need the PostgreSQL store, which is not built yet;
            # ignoring the setting would give each replica its own SQLite log: a forked
            # audit trail. So refuse to start.
            raise ConfigurationError(
                "DOELPOORT_AUDIT_URL is set, but the audit log only supports its embedded "
                "SQLite store so far; unset it to use var/audit.sqlite3"
            )
        try:
            return cls()
        except ValidationError as exc:
            # Not chained: pydantic's own message quotes the value.
            raise ConfigurationError(_one_line(exc, _env_name)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like the environment's values."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigurationError(_one_line(exc, str)) from None

    def with_var_dir(self, var_dir: Path) -> Settings:
        return self.replace(var_dir=var_dir)

    @property
    def uses_development_origin(self) -> bool:
        return self.origin == DEVELOPMENT_ORIGIN

    @property
    def pki_dir(self) -> Path:
        return self.var_dir / "pki"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def dpo_dir(self) -> Path:
        """Development only: the DPO's private escrow key (in production it stays offline)."""
        return self.var_dir / "dpo"

    @property
    def demo_data_dir(self) -> Path:
        return self.var_dir / "demo"

    @property
    def audit_db_path(self) -> Path:
        return self.var_dir / "audit.sqlite3"

    @property
    def base_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://{_url_host(self.ops_host)}:{self.ops_port}"


def _url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


_MUST_BE = {
    "policies_dir": "a directory path",
    "connectors_dir": "a directory path",
    "var_dir": "a directory path",
    "host": "a host name or IP address without spaces",
    "port": "a port number from 0 to 65535",
    "ops_host": "a host name or IP address without spaces",
    "ops_port": "a port number from 0 to 65535",
    "proxy_socket": "a file path",
    "public_url": (
        "an https URL without user, query or fragment, such as https://gateway.example.nl"
    ),
    "origin": (
        f"a checkpoint origin: at most {ORIGIN_MAX_CHARS} printable characters without "
        "spaces or '+', best the log's own URL without scheme, such as "
        "gateway.example.nl/doelpoort/audit"
    ),
    "policy_timeout_s": f"a number of seconds above 0 and at most {POLICY_TIMEOUT_MAX_S:g}",
    "policy_engine": "embedded or opa",
    "opa_url": "an http(s) URL of host and port only, such as http://127.0.0.1:8181",
    "max_body_bytes": f"a number of bytes from {BODY_BYTES_MIN} to {BODY_BYTES_MAX}",
    "refusals_per_minute": f"a number of refusals from 0 to {REFUSALS_PER_MINUTE_MAX}",
    "policy_digest": "a policy digest: sha256: and 64 lowercase hexadecimal digits",
    "policy_bundle": "a file path",
    "policy_bundle_key": "a file path",
    "policy_watch_s": f"a number of seconds from 0 (off) to {POLICY_WATCH_MAX_S:g}",
}
"""What each setting must be, for messages: pydantic's own words are about its types."""


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _one_line(exc: ValidationError, name: Callable[[str], str]) -> str:
    """One problem per setting, each naming it (by ``name``), never quoting its value."""
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in _MUST_BE:
            problems.setdefault(field, f"{name(field)} must be {_MUST_BE[field]}")
        else:  # a name that is no setting (a typo in code), or the settings as a whole
            problems.setdefault(field, f"{name(field) if field else 'settings'}: {error['msg']}")
    return "; ".join(problems.values())


def _audit_url_set() -> bool:
    # Matched without regard to case, as pydantic-settings reads the other variables.
    wanted = f"{ENV_PREFIX}AUDIT_URL"
    return any(key.upper() == wanted and value for key, value in os.environ.items())
