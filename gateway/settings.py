"""Where a deployment keeps its files, and how it listens.

Deployment files (policies, connectors) live in the repository; runtime state (PKI,
keys, the master secret, the audit database, demo records) lives under ``var/`` and is
never committed. Every path can be overridden, so tests run against a temporary tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from gateway.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """One deployment's paths and listening address."""

    policies_dir: Path = PROJECT_ROOT / "policies"
    connectors_dir: Path = PROJECT_ROOT / "connectors"
    var_dir: Path = PROJECT_ROOT / "var"
    host: str = "127.0.0.1"
    port: int = 8443
    origin: str = "doelpoort.local/audit"
    policy_timeout_s: float = 1.0
    max_body_bytes: int = 64 * 1024
    proxy_socket: Path | None = None
    """Set: serve plain HTTP on this unix socket behind a TLS-terminating proxy, trusting
    the client certificate it forwards (gateway/transport/proxied.py); unset: mutual TLS."""

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
        return f"https://{self.host}:{self.port}"

    def with_var_dir(self, var_dir: Path) -> Settings:
        return replace(self, var_dir=var_dir)

    @classmethod
    def from_env(cls) -> Settings:
        """Defaults, overridden by ``DOELPOORT_*`` environment variables."""
        base = cls()
        env = os.environ
        if env.get("DOELPOORT_AUDIT_URL"):
            # Replicas sharing one log need the PostgreSQL store, which is not built yet;
            # ignoring the setting would give each replica its own SQLite log: a forked
            # audit trail. So refuse to start.
            raise ConfigurationError(
                "DOELPOORT_AUDIT_URL is set, but the audit log only supports its embedded "
                "SQLite store so far; unset it to use var/audit.sqlite3"
            )
        return replace(
            base,
            policies_dir=Path(env.get("DOELPOORT_POLICIES_DIR", base.policies_dir)),
            connectors_dir=Path(env.get("DOELPOORT_CONNECTORS_DIR", base.connectors_dir)),
            var_dir=Path(env.get("DOELPOORT_VAR_DIR", base.var_dir)),
            host=env.get("DOELPOORT_HOST", base.host),
            port=_port(env.get("DOELPOORT_PORT"), base.port),
            proxy_socket=Path(socket) if (socket := env.get("DOELPOORT_PROXY_SOCKET")) else None,
        )


def _port(value: str | None, default: int) -> int:
    """A TCP port from the environment (0: any free one)."""
    if value is None:
        return default
    if not value.isdigit() or int(value) > 65535:
        raise ConfigurationError("DOELPOORT_PORT must be a port number from 0 to 65535")
    return int(value)
