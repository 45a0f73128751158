"""Who is calling: the peer its TLS certificate names, as a FastAPI dependency.

`peer` admits a verified, known, unrevoked certificate (SPEC §4); `partner` then requires
a configured partner, `require_dpo` a DPO (the console, the DPO API and the cosignature
route). The partner API and the DPO's routes share them, so they live apart from the app.
"""

from __future__ import annotations

from fastapi import Request

from gateway.errors import AccessError, DoelpoortError, DpoOnly, Unauthenticated, UnknownPeer
from gateway.runtime import Runtime
from gateway.transport import security_log
from gateway.transport.identity import PeerIdentity, identity_from_der
from gateway.transport.tls import peer_certificate_der
from gateway.vocabulary import Partner

__all__ = ["identify", "partner", "peer", "require_dpo", "rt"]


def rt(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# The dependencies are coroutines on purpose: FastAPI runs plain functions in a worker
# thread, a hop that costs more than the work they do.
async def peer(request: Request) -> PeerIdentity:
    """The peer as its TLS certificate names it — never what the request says.

    401 without a certificate, or for one that is no client certificate, revoked, or
    unknown to the gateway; 403 for a certificate that names no one, or a partner this
    deployment does not configure (SPEC §4; `gateway.transport.admission`).
    """
    identity = identify(request)
    if isinstance(identity, DoelpoortError):
        raise identity
    return identity


def identify(request: Request) -> PeerIdentity | DoelpoortError:
    """`peer`'s answer, or its refusal. Each unknown or revoked certificate is a security
    log line; a configured partner is noted on the request even when refused (revoked),
    so that its refusals become audit entries (`gateway.app._log_refusal`)."""
    der = peer_certificate_der(request.scope)
    if der is None:
        return Unauthenticated()
    runtime = rt(request)
    try:
        identity = runtime.admission.admit(der, request.scope.get("client"))
    except AccessError as exc:
        named = identity_from_der(der)  # only a refusal needs it a second time
        # A configured partner whose certificate was revoked is still that partner: its
        # refusals become audit entries. An unknown certificate is no one's, even while
        # the CRL cannot be trusted (then every serial counts as revoked).
        if (
            named is not None
            and named.kind == "partner"
            and named.id in runtime.catalog.partners
            and runtime.admission.known(named)
            and runtime.admission.revoked(named)
        ):
            request.state.partner_id = named.id
        return exc
    if identity.kind == "partner":
        request.state.partner_id = identity.id
    return identity


def partner(request: Request, identity: PeerIdentity) -> Partner:
    """The configured partner a known peer is; 403 for a DPO."""
    if identity.kind != "partner":
        der = peer_certificate_der(request.scope) or b""
        reason = "a DPO certificate on the partner API"
        security_log.certificate_unknown_peer(request.scope.get("client"), der, reason)
        raise UnknownPeer()
    return rt(request).catalog.partners[identity.id]


async def require_dpo(request: Request) -> PeerIdentity:
    """The DPO a known peer is; 403 (`DpoOnly`) for a partner, which is also one of that
    partner's refusals in the audit log."""
    identity = await peer(request)
    if identity.kind != "dpo":
        raise DpoOnly()
    return identity
