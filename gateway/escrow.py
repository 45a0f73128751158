"""Re-identification escrow (SPEC §7): what only the DPO may read, sealed to the DPO.

A pseudonym cannot be reversed, and the gateway keeps no table that reverses it. When a
supervisor or a data subject asks who ``psn:…`` in some disclosure was, only the DPO
(functionaris gegevensbescherming) can answer: offline, with a private key the gateway
never holds. Likewise the requester's justification ("why this is necessary and
proportionate", free text that may name people) is for the DPO's review, not for the log
in clear. So each disclosure gets an *escrow*: both, in a PyNaCl sealed box to the DPO's
X25519 public key::

    escrow = "v1." + base64url(SealedBox(DPO public key).encrypt(canonical JSON of
             {"justification": …, "pseudonyms": {dataset: {pseudonym: value}}}))

Each sealed box has its own ephemeral key, so the gateway cannot open an escrow once it
has made it, nor can anyone who later reads its memory. One box per disclosure (not per
dataset): each costs an X25519 key agreement (about 60 µs on the reference machine).
The DPO is shown the pseudonyms of the entry they open only. Every audit entry of the
disclosure keeps the escrow beside its body, and the body holds the escrow's SHA-256 —
so the Merkle tree covers the escrow, yet its ciphertext can be erased when the
purpose's retention ends (audit/retention.py). That matters: anyone with the public key
can seal a false escrow, and only the signed log vouches for a real one; ``doelpoort
audit reidentify`` verifies the log, checks the escrow against its entry's digest and
opens only entries under a signed checkpoint.

Keys: the DPO makes the pair offline (``doelpoort keys escrow --private-dir DIR``) and
the operator installs only the public half as ``<keys_dir>/escrow.pub``. Without that
file the gateway runs without escrow and says so at start-up: a deployment may decide
that no one should be able to re-identify. ``doelpoort setup`` (development only) makes a
pair and keeps the private half in ``var/dpo/``.

Two spellings of one value that normalise alike (``"123"`` and ``123``) share a
pseudonym; the escrow keeps the first spelling it saw.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
from nacl.encoding import URLSafeBase64Encoder
from nacl.public import PrivateKey, PublicKey, SealedBox

from gateway.canonical import canonical_json
from gateway.errors import ConfigurationError, EscrowError
from gateway.keys import ESCROW_PUBLIC_KEY_FILE, load_escrow_public_key
from gateway.operators.base import Pseudonymiser

_PREFIX = "v1."
_FORM = re.compile(r"v1\.[A-Za-z0-9_-]+={0,2}")  # what `seal` writes, and nothing else


class EscrowSealer:
    """Seals pseudonym → value pairs to the DPO's public key."""

    def __init__(self, dpo_public_key: PublicKey) -> None:
        self._box = SealedBox(dpo_public_key)

    def seal(self, justification: str, pseudonyms: Mapping[str, Mapping[str, object]]) -> str:
        """Seal a disclosure's justification and ``{dataset: {pseudonym: value}}``."""
        content = {"justification": justification, "pseudonyms": pseudonyms}
        sealed = self._box.encrypt(canonical_json(content), URLSafeBase64Encoder)
        return _PREFIX + sealed.decode("ascii")


class RecordingPseudonymiser:
    """A domain's pseudonymiser that remembers what each pseudonym it gave stood for."""

    __slots__ = ("_domain", "pairs")

    def __init__(self, domain: Pseudonymiser) -> None:
        self._domain = domain
        self.pairs: dict[str, object] = {}

    def pseudonym(self, value: object) -> str:
        pseudonym = self._domain.pseudonym(value)
        self.pairs.setdefault(pseudonym, value)
        return pseudonym


@dataclass(frozen=True)
class EscrowContent:
    justification: str
    pseudonyms: dict[str, dict[str, object]]  # dataset → pseudonym → value


def open_escrow(escrow: str, dpo_private_key: PrivateKey) -> EscrowContent:
    """What an escrow holds; raises :class:`EscrowError`."""
    if not _FORM.fullmatch(escrow):
        raise EscrowError("not an escrow this version of Doelpoort knows")
    try:
        sealed = escrow.removeprefix(_PREFIX).encode("ascii")
        content = json.loads(SealedBox(dpo_private_key).decrypt(sealed, URLSafeBase64Encoder))
    except (ValueError, nacl.exceptions.CryptoError) as exc:
        raise EscrowError("the escrow does not open with this key") from exc
    match content:
        case {"justification": str(justification), "pseudonyms": dict(pseudonyms)} if all(
            isinstance(pairs, dict) for pairs in pseudonyms.values()
        ):
            return EscrowContent(justification, pseudonyms)
    raise EscrowError("the escrow does not hold what this version of Doelpoort seals")


def load_escrow_sealer(keys_dir: Path) -> EscrowSealer | None:
    """A sealer for the DPO's public key (``keys_dir/escrow.pub``); None without one.

    Raises ConfigurationError when the file (or a dangling link in its place) does not
    hold a usable X25519 public key.
    """
    public_key = load_escrow_public_key(keys_dir)
    if public_key is None:
        return None
    sealer = EscrowSealer(public_key)
    try:
        sealer.seal("", {})  # a low-order point fails here, not at the first disclosure
    except nacl.exceptions.CryptoError as exc:
        path = keys_dir / ESCROW_PUBLIC_KEY_FILE
        raise ConfigurationError(f"{path} is not a usable X25519 public key") from exc
    return sealer
