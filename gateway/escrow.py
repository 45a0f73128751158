"""Re-identification escrow (SPEC §7): what each pseudonym stood for, sealed to the DPO.

A pseudonym cannot be reversed, and the gateway keeps no table that reverses it. When a
supervisor or a data subject asks who ``psn:…`` in some disclosure was, only the DPO
(functionaris gegevensbescherming) can answer: offline, with a private key the gateway
never holds. For that, each audit entry that released pseudonyms carries an *escrow*:
that entry's pseudonym → value pairs, encrypted to the DPO's X25519 public key.

Construction (PyNaCl)::

    data key = 32 random bytes, made when the gateway starts (one per process)
    escrow   = "v1." + base64url(SealedBox(DPO public key).encrypt(data key))
                     + "." + base64url(SecretBox(data key).encrypt(canonical JSON of pairs))

(base64url with padding, as PyNaCl's ``URLSafeBase64Encoder`` writes it; key files hold
the 32-byte key in the same encoding.)

A sealed box per entry would cost an X25519 key agreement per entry (about 60 µs on the
reference machine); the data key is sealed once and each entry costs one XSalsa20-Poly1305
encryption (a few µs). The data key lives only in the memory of the gateway, which sees
every clear value anyway. Each escrow carries its sealed data key, so any one entry opens
on its own.

The escrow is part of the entry body, so the Merkle tree covers it: it cannot be swapped
or removed without ``doelpoort audit verify`` noticing. The DPO opens it with
``doelpoort audit reidentify``.

Keys: the DPO makes the pair (``doelpoort keys escrow``, offline in production) and the
operator installs only the public half as ``<keys_dir>/escrow.pub``. Without that file
the gateway runs without escrow and says so at start-up: a deployment may decide that no
one should be able to re-identify. ``doelpoort setup`` (development) makes a pair and
keeps the private half in ``var/dpo/``, outside the gateway's keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.utils
from nacl.encoding import URLSafeBase64Encoder
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox

from gateway.atomic_files import PUBLIC, create_file
from gateway.canonical import canonical_json
from gateway.errors import ConfigurationError
from gateway.operators.base import Pseudonymiser

PUBLIC_KEY_FILE = "escrow.pub"
PRIVATE_KEY_FILE = "escrow.key"
_VERSION = "v1"


class EscrowError(Exception):
    """An escrow that does not open with this key (wrong key, damaged or not an escrow)."""


class EscrowSealer:
    """Seals pseudonym → value pairs to the DPO's public key (see the module docstring)."""

    def __init__(self, dpo_public_key: PublicKey) -> None:
        data_key = nacl.utils.random(SecretBox.KEY_SIZE)
        self._box = SecretBox(data_key)
        sealed_key = (
            SealedBox(dpo_public_key).encrypt(data_key, URLSafeBase64Encoder).decode("ascii")
        )
        self._prefix = f"{_VERSION}.{sealed_key}."

    def seal(self, pairs: dict[str, object]) -> str:
        return (
            self._prefix
            + self._box.encrypt(canonical_json(pairs), encoder=URLSafeBase64Encoder).decode()
        )

    def __repr__(self) -> str:
        return "EscrowSealer(<data key hidden>)"


class RecordingPseudonymiser:
    """A domain's pseudonymiser that remembers what each pseudonym it gave stood for.

    One per audit entry: its ``pairs`` are what that entry's escrow seals.
    """

    __slots__ = ("_domain", "pairs")

    def __init__(self, domain: Pseudonymiser) -> None:
        self._domain = domain
        self.pairs: dict[str, object] = {}

    def pseudonym(self, value: object) -> str:
        pseudonym = self._domain.pseudonym(value)
        self.pairs.setdefault(pseudonym, value)
        return pseudonym


def open_escrow(escrow: str, dpo_private_key: PrivateKey) -> dict[str, object]:
    """The pseudonym → value pairs of an escrow; raises :class:`EscrowError`."""
    try:
        version, sealed_key, ciphertext = escrow.split(".")
        if version != _VERSION:
            raise EscrowError(f"unknown escrow version {version!r}")
        data_key = SealedBox(dpo_private_key).decrypt(sealed_key.encode(), URLSafeBase64Encoder)
        pairs = json.loads(
            SecretBox(data_key).decrypt(ciphertext.encode(), encoder=URLSafeBase64Encoder)
        )
    except (ValueError, TypeError, nacl.exceptions.CryptoError) as exc:
        raise EscrowError("the escrow does not open with this key") from exc
    if not isinstance(pairs, dict):
        raise EscrowError("the escrow does not hold pseudonym pairs")
    return pairs


@dataclass(frozen=True)
class EscrowKeyFiles:
    private: Path
    public: Path


def create_escrow_keys(private_dir: Path, keys_dir: Path) -> EscrowKeyFiles | None:
    """Make the DPO's pair: the private half in ``private_dir`` (0600), the public half
    in ``keys_dir``. Returns None, writing nothing, when either file exists already."""
    files = EscrowKeyFiles(private_dir / PRIVATE_KEY_FILE, keys_dir / PUBLIC_KEY_FILE)
    if files.private.exists() or files.public.exists():
        return None
    private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = PrivateKey.generate()
    create_file(files.private, key.encode(URLSafeBase64Encoder) + b"\n")
    create_file(files.public, key.public_key.encode(URLSafeBase64Encoder) + b"\n", PUBLIC)
    return files


def load_escrow_sealer(keys_dir: Path) -> EscrowSealer | None:
    """A sealer for ``keys_dir/escrow.pub``; None when there is no such file.

    Raises ConfigurationError when the file is there but holds no X25519 public key.
    """
    path = keys_dir / PUBLIC_KEY_FILE
    if not path.exists():
        return None
    return EscrowSealer(PublicKey(_read_key(path), URLSafeBase64Encoder))


def read_private_key(path: Path) -> PrivateKey:
    """The DPO's private escrow key from ``path``; raises ConfigurationError."""
    if not path.is_file():
        raise ConfigurationError(f"there is no escrow private key at {path}")
    return PrivateKey(_read_key(path), URLSafeBase64Encoder)


def _read_key(path: Path) -> bytes:
    """The key's base64url text; checked to decode to an X25519 key's 32 bytes."""
    try:
        text = path.read_bytes().strip()
        size = len(URLSafeBase64Encoder.decode(text))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} does not hold a base64url escrow key") from exc
    if size != PublicKey.SIZE:
        raise ConfigurationError(f"{path} must hold a {PublicKey.SIZE}-byte X25519 key")
    return text
