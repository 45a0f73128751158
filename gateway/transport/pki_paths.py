"""Where a deployment's PKI files live under ``var/pki/`` (or the operator's own).

The gateway reads the partner CA, its CRL and its own server certificate and key from
here; the development PKI (`gateway.dev.pki`) writes the same layout::

    ca.pem  ca.key  server.pem  server.key  crl.pem  issued.jsonl
    partners/<id>.pem  partners/<id>.key
    dpo/<name>.pem     dpo/<name>.key

``issued.jsonl`` is the development CA's issuance register (`gateway.transport.issuance`):
every certificate it issued. A deployment with its own CA has none and pins its
partners' certificates in the catalog instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.ids import validate_id


@dataclass(frozen=True)
class PkiPaths:
    """Where each piece of the PKI lives under ``pki_dir``."""

    pki_dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "pki_dir", Path(self.pki_dir))

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.pki_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.pki_dir / "server.key"

    @property
    def crl(self) -> Path:
        return self.pki_dir / "crl.pem"

    @property
    def issued(self) -> Path:
        return self.pki_dir / "issued.jsonl"

    @property
    def partners_dir(self) -> Path:
        return self.pki_dir / "partners"

    @property
    def dpo_dir(self) -> Path:
        return self.pki_dir / "dpo"

    # The id is validated here too, so no caller can turn it into a path elsewhere.
    def partner_cert(self, partner_id: str) -> Path:
        return self.partners_dir / f"{validate_id(partner_id)}.pem"

    def partner_key(self, partner_id: str) -> Path:
        return self.partners_dir / f"{validate_id(partner_id)}.key"

    def dpo_cert(self, name: str) -> Path:
        return self.dpo_dir / f"{validate_id(name, 'DPO name')}.pem"

    def dpo_key(self, name: str) -> Path:
        return self.dpo_dir / f"{validate_id(name, 'DPO name')}.key"
