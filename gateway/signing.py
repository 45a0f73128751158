"""Receipt signing: the one place that signs with the gateway's receipt keys.

A receipt is a compact JWS (RFC 7515) with ``alg: EdDSA`` (RFC 8037, Ed25519) and a
``kid`` (the key's RFC 7638 thumbprint) over the RFC 8785 canonical JSON of the
disclosure. The keys are `gateway.keys`'s: ``var/keys/receipts/<kid>.key`` (PKCS#8 PEM,
mode 0600), and the file ``current`` names the key that signs. Every other key there is
retired: it no longer signs but stays in the JWKS so that old receipts still verify.

The safe API is two verbs: :func:`ReceiptSigner.sign_disclosure` and
:func:`verify_receipt` (which raises :class:`InvalidReceipt` and says nothing about why).
A :class:`Receipt` keeps the signed bytes, so the response carries the very bytes that
were signed and the disclosure is encoded once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import KeySet, OKPKey
from joserfc.jws import JWSRegistry

from gateway.canonical import CanonicalizationError, canonical_json
from gateway.errors import InvalidReceipt, SigningError

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Receipt:
    """A signed disclosure: its RFC 8785 canonical JSON and the compact JWS over it."""

    payload: bytes
    jws: str

    def response_body(self) -> bytes:
        """``{"disclosure": …, "jws": …}`` with the disclosure as the signed bytes.

        A compact JWS is base64url and dots only, so it needs no JSON escaping.
        """
        return b'{"disclosure":' + self.payload + b',"jws":"' + self.jws.encode("ascii") + b'"}'


class _EdDSAOnly(JWSRegistry):
    """A registry that accepts exactly ``EdDSA`` over Ed25519 keys.

    joserfc warns that RFC 9864 supersedes ``EdDSA`` with the fully specified
    ``Ed25519``. The contract (SPEC §5) names EdDSA because every deployed JOSE library
    verifies it, and our keys are always Ed25519 — the pinning RFC 9864 asks for — so
    the warning is answered here rather than silenced globally.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != ALGORITHM:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRY = _EdDSAOnly(algorithms=[ALGORITHM])


class ReceiptSigner:
    """Signs disclosures with the current key; publishes current and retired keys."""

    def __init__(self, current: OKPKey, retired: list[OKPKey]) -> None:
        self._current = current
        self._kid = current.thumbprint()
        self._public = KeySet([_public(current), *(_public(k) for k in retired)])

    @property
    def kid(self) -> str:
        return self._kid

    def sign_disclosure(self, disclosure: Mapping[str, Any]) -> Receipt:
        """The canonical JSON of ``disclosure`` and a compact JWS over it."""
        try:
            payload = canonical_json(dict(disclosure))
            token = jws.serialize_compact(
                {"alg": ALGORITHM, "kid": self._kid}, payload, self._current, registry=_REGISTRY
            )
        except (JoseError, CanonicalizationError) as exc:
            raise SigningError() from exc
        return Receipt(payload, token)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set for ``/.well-known/jwks.json``: public halves only."""
        keys = []
        for key in self._public.keys:
            entry = dict(key.as_dict(private=False))
            entry.update({"kid": key.thumbprint(), "alg": ALGORITHM, "use": "sig"})
            keys.append(entry)
        return {"keys": keys}


def verify_receipt(receipt: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """Return the signed disclosure, or raise :class:`InvalidReceipt`."""
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        token = jws.deserialize_compact(receipt, keys, registry=_REGISTRY)
        value = json.loads(token.payload)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise InvalidReceipt() from exc
    if not isinstance(value, dict):
        raise InvalidReceipt()
    return value


def _public(key: OKPKey) -> OKPKey:
    return OKPKey.import_key(key.as_dict(private=False))
