"""The development CA's issuance register: every certificate it issued, and which it revoked.

A signature of the partner CA's key is not enough for the gateway to admit a
certificate: it must be one the gateway knows (`gateway.transport.admission`), as X-Road
admits only registered authentication certificates. For the development CA, what the
gateway knows is this register; `doelpoort pki revoke <partner>` revokes every
certificate it lists for the partner. (A deployment with its own CA has no register and
pins its partners' certificates in the catalog instead.)

The register is ``issued.jsonl`` in the PKI directory: JSON Lines, UTF-8, one object per
line, every line ending in a newline. It only ever grows — each write keeps the file
before it byte for byte and adds lines, written whole beside it and renamed into place
(`gateway.atomic_files`) — so it is the history of the CA. There are three kinds of line:

    {"event": "issued", "serial": "5f0c…", "kind": "partner", "id": "politie",
     "sha256": "…", "spki_sha256": "…", "not_before": "2026-11-22T09:00:00Z",
     "not_after": "2028-11-21T10:00:00Z", "at": "2026-11-22T10:00:00Z"}
    {"event": "backfilled", …the same fields…}
    {"event": "revoked", "serial": "5f0c…", "kind": "partner", "id": "politie",
     "at": "2026-11-23T08:00:00Z"}

``serial`` is the certificate's serial number in lowercase hex without leading zeros;
``kind`` is ``partner``, ``dpo`` or ``server``; ``id`` the partner id or DPO name (for
the server, its first host name); ``sha256`` the SHA-256 of the certificate's DER (its
fingerprint) and ``spki_sha256`` that of its SubjectPublicKeyInfo, both lowercase hex;
times are RFC 3339 UTC. ``issued`` is written when the CA issues; ``backfilled`` by
`pki init` for a certificate it found on disk, signed by the CA, in a PKI made before
the register existed; ``revoked`` when a certificate is revoked. Every serial is issued
(or backfilled) once, and revoked at most once, after that. Read together, the lines are
one record per certificate — serial, kind, id, fingerprints, validity, revoked or not —
as in OpenSSL's ``index.txt``: `read_register` folds them so.

The development CA writes the register (`gateway.dev.issuance`); the gateway only reads
it, with `IssuanceRegister`, which re-reads the file whenever it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.errors import ConfigurationError
from gateway.ids import is_valid_id
from gateway.transport.watched_file import WatchedFile

logger = logging.getLogger(__name__)

CertificateKind: TypeAlias = Literal["partner", "dpo", "server"]

_HEX_SERIAL = r"^[1-9a-f][0-9a-f]{0,39}$"  # RFC 5280: positive, at most 20 octets
_SHA256 = r"^[0-9a-f]{64}$"


# --- the format ---------------------------------------------------------------------


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    serial: Annotated[str, Field(pattern=_HEX_SERIAL)]
    kind: CertificateKind
    id: Annotated[str, Field(min_length=1, max_length=253)]
    at: AwareDatetime


class _IssuedLine(_Line):
    event: Literal["issued", "backfilled"]
    sha256: Annotated[str, Field(pattern=_SHA256)]
    spki_sha256: Annotated[str, Field(pattern=_SHA256)]
    not_before: AwareDatetime
    not_after: AwareDatetime


class _RevokedLine(_Line):
    event: Literal["revoked"]


_LINE: TypeAdapter[_IssuedLine | _RevokedLine] = TypeAdapter(
    Annotated[_IssuedLine | _RevokedLine, Field(discriminator="event")]
)


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate of the register, with what later lines say of it."""

    serial: int
    kind: CertificateKind
    id: str
    sha256: str
    spki_sha256: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    backfilled: bool
    revoked_at: datetime | None


def read_register(data: bytes, where: str = "the issuance register") -> list[IssuedCertificate]:
    """The register's certificates in the order they were recorded, each with its
    revocation; `ConfigurationError` naming the line for anything out of form."""
    if data and not data.endswith(b"\n"):
        raise ConfigurationError(f"{where}: the last line is incomplete")
    records: dict[int, IssuedCertificate] = {}
    fingerprints: set[str] = set()
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            parsed = _LINE.validate_json(line)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            location = ".".join(str(part) for part in error["loc"])
            raise ConfigurationError(
                f"{where}: line {number}: {location + ': ' if location else ''}{error['msg']}"
            ) from None
        if parsed.kind != "server" and not is_valid_id(parsed.id):
            raise ConfigurationError(f"{where}: line {number}: id is not a valid {parsed.kind} id")
        serial = int(parsed.serial, 16)
        earlier = records.get(serial)
        if isinstance(parsed, _IssuedLine):
            if earlier is not None or parsed.sha256 in fingerprints:
                raise ConfigurationError(f"{where}: line {number}: certificate recorded twice")
            fingerprints.add(parsed.sha256)
            records[serial] = IssuedCertificate(
                serial=serial,
                kind=parsed.kind,
                id=parsed.id,
                sha256=parsed.sha256,
                spki_sha256=parsed.spki_sha256,
                not_before=parsed.not_before,
                not_after=parsed.not_after,
                issued_at=parsed.at,
                backfilled=parsed.event == "backfilled",
                revoked_at=None,
            )
        elif earlier is None or (earlier.kind, earlier.id) != (parsed.kind, parsed.id):
            raise ConfigurationError(
                f"{where}: line {number}: revokes a certificate the register does not hold"
            )
        elif earlier.revoked_at is not None:
            raise ConfigurationError(f"{where}: line {number}: certificate revoked twice")
        else:
            records[serial] = replace(earlier, revoked_at=parsed.at)
    return list(records.values())


# --- the gateway's reader -----------------------------------------------------------


@dataclass(frozen=True)
class RegisterView:
    """The register as last read: whether the file exists, its certificates by SHA-256
    fingerprint."""

    present: bool
    by_fingerprint: Mapping[str, IssuedCertificate]


_ABSENT = RegisterView(present=False, by_fingerprint=MappingProxyType({}))


class IssuanceRegister:
    """The issuance register, re-read whenever the file changes (`WatchedFile`).

    No file is an empty register: a deployment with its own CA has none, and admits only
    pinned certificates. A file that cannot be read or is out of form fails closed:
    `current` answers None (every certificate is refused) and says so once in the log;
    the constructor raises `ConfigurationError` instead, so start-up stops.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)  # before the first parse, which names it
        self._file = WatchedFile(self._path, self._parse, log=logger)
        current = self._file.current()
        self._present = current is not None and current.present

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> RegisterView | None:
        """The register as the file now holds it; None while it cannot be trusted."""
        view = self._file.current()
        if view is None:
            return None
        if self._present and not view.present:
            logger.warning(
                "the issuance register %s is gone: only certificates pinned in the "
                "catalog are admitted",
                self.path,
            )
        self._present = view.present
        return view

    def _parse(self, data: bytes | None) -> RegisterView:
        if data is None:
            return _ABSENT
        records = read_register(data, f"the issuance register {self.path}")
        by_fingerprint = MappingProxyType({record.sha256: record for record in records})
        return RegisterView(present=True, by_fingerprint=by_fingerprint)
