"""Which verified client certificates the gateway admits, and as whom (SPEC §4).

The handshake (or, behind a proxy, the gateway's own check of the forwarded certificate)
has established that the certificate chains to the partner CA. That is not enough: a
CA key signs whatever it is given, so a second certificate for a partner, with another
key, would otherwise be that partner too — and survive the partner's revocation. The
gateway admits, per request, only a certificate that

1. is a client certificate: no CA, clientAuth (`client_leaf_problem`) — else 401;
2. names one peer by its SAN URI (`identity_from_der`) — else 403;
3. is not on the partner CA's CRL — else 401;
4. is *known*: listed, unrevoked, in the development CA's issuance register
   (`gateway.transport.issuance`), or pinned for the partner it names in the catalog
   by its fingerprint or its key's (an external CA) — else 401, as an invalid
   credential like a revoked one, and before the partner's configuration is looked at,
   so an unknown certificate learns nothing of which partners are configured;
5. names a partner this deployment configures, or a DPO — else 403.

Every refusal is a security log line (`gateway.transport.security_log`). A register
that cannot be read refuses every certificate (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

from gateway.errors import AccessError, Unauthenticated, UnknownPeer
from gateway.transport import security_log
from gateway.transport.identity import (
    PeerIdentity,
    RevocationList,
    client_leaf_problem,
    identity_from_der,
)
from gateway.transport.issuance import IssuanceRegister, RegisterView
from gateway.vocabulary import CertificatePin


class Admission:
    """The gateway's decision on a verified client certificate: a peer, or a refusal."""

    def __init__(
        self,
        revocations: RevocationList,
        issued: IssuanceRegister,
        partners: Mapping[str, Iterable[CertificatePin]],
    ) -> None:
        """``partners``: every configured partner, with the certificates pinned for it."""
        self.revocations = revocations
        self.issued = issued
        self._pins = {
            partner: frozenset((pin.kind, pin.digest) for pin in pins)
            for partner, pins in partners.items()
        }

    @property
    def pins_any(self) -> bool:
        """Whether the catalog pins any certificate at all."""
        return any(self._pins.values())

    def admit(self, der: bytes, peer: object = None) -> PeerIdentity:
        """The peer ``der`` names, if it is admitted; else `Unauthenticated` (401) or
        `UnknownPeer` (403), each a security log line naming ``peer`` (the client's
        address, when there is one)."""
        refused = security_log.certificate_refused
        problem = client_leaf_problem(der)
        if problem is not None:
            _refuse(refused, peer, der, f"not a client certificate: {problem}", Unauthenticated())
        identity = identity_from_der(der)
        if identity is None:
            unknown = security_log.certificate_unknown_peer
            _refuse(unknown, peer, der, "it names no partner or DPO", UnknownPeer())
        # The register is read once per request (a stat of its file, like the CRL's).
        register = self.issued.current()
        if self.revocations.is_revoked(identity.serial) or _revoked_in(register, identity):
            _refuse(
                security_log.certificate_revoked,
                peer,
                der,
                # The CRL also answers "revoked" while it cannot be trusted (fail closed).
                "revoked, or the revocation list is unusable",
                Unauthenticated("the client certificate has been revoked"),
            )
        if register is None:
            reason = "the issuance register is unusable"
            _refuse(refused, peer, der, reason, Unauthenticated())
        if not (_registered_in(register, identity) or self._pinned(identity)):
            _refuse(
                refused,
                peer,
                der,
                "unknown: neither in the issuance register nor pinned in the catalog",
                Unauthenticated("the client certificate is not registered with this gateway"),
            )
        if identity.kind == "partner" and identity.id not in self._pins:
            unknown = security_log.certificate_unknown_peer
            _refuse(unknown, peer, der, "no configured partner", UnknownPeer())
        return identity

    def revoked(self, identity: PeerIdentity) -> bool:
        """Whether the certificate ``identity`` came from is revoked: on the CRL (or the
        CRL cannot be trusted), or marked so in the issuance register."""
        return self.revocations.is_revoked(identity.serial) or _revoked_in(
            self.issued.current(), identity
        )

    def known(self, identity: PeerIdentity) -> bool:
        """Whether the certificate ``identity`` came from is in the issuance register as
        that peer's, or pinned for it in the catalog (revoked or not)."""
        return _registered_in(self.issued.current(), identity) or self._pinned(identity)

    def _pinned(self, identity: PeerIdentity) -> bool:
        if identity.kind != "partner":
            return False  # the catalog pins partners only
        pins = self._pins.get(identity.id, frozenset())
        return ("sha256", identity.fingerprint) in pins or (
            identity.spki_sha256 is not None and ("spki_sha256", identity.spki_sha256) in pins
        )


def _registered_in(register: RegisterView | None, identity: PeerIdentity) -> bool:
    """Whether the issuance register lists the certificate as this very peer's."""
    record = register.by_fingerprint.get(identity.fingerprint) if register else None
    return record is not None and (record.kind, record.id) == (identity.kind, identity.id)


def _revoked_in(register: RegisterView | None, identity: PeerIdentity) -> bool:
    """Whether the issuance register marks the certificate revoked."""
    record = register.by_fingerprint.get(identity.fingerprint) if register else None
    return record is not None and record.revoked_at is not None


def _refuse(
    log_line: Callable[[object, bytes, str], None],
    peer: object,
    der: bytes,
    reason: str,
    error: AccessError,
) -> NoReturn:
    log_line(peer, der, reason)
    raise error
