"""Keyed pseudonyms: stable within one domain (requester x purpose), unlinkable across.

Construction (see docs/data-model.md, "Pseudonyms")::

    master     = 32 random bytes in <keys_dir>/master.key (mode 0600, never overwritten)
    domain key = HKDF-SHA256(ikm=master, salt=none, length=32,
                             info="doelpoort/pseudonym/v1" 0x00 requester 0x00 purpose)
    pseudonym  = "psn:" + hex(HMAC-SHA256(domain key, normalise(value))[:16])
                 (128 bits, 32 lowercase hex characters)

``normalise`` makes trivially different spellings of one identifier agree: for a string,
:func:`normalise_text` (Unicode NFC, strip, collapse runs of whitespace to one space,
casefold — the connectors compare identity keys in the same form); any other value is its
canonical JSON (RFC 8785), so ``123`` and ``"123"`` give the same pseudonym.

The master secret is created only by ``doelpoort keys init`` or ``setup``; the running
gateway only loads it (`gateway.keys`), so a lost key stops start-up instead of being
replaced by one that changes every pseudonym.

No table reversing pseudonyms is kept anywhere. A subject can only be found again by
someone who already holds the identifier: the audit log stores subject references keyed
under the DPO's own key instead of identifiers (:mod:`gateway.subject_refs`), never
derived from this master secret.

Re-identification escrow (SPEC §7) is :mod:`gateway.escrow`: what a disclosure's
pseudonyms stood for, sealed to the DPO's public key and opened only offline by the DPO.
"""

from __future__ import annotations

import hmac
import threading
import unicodedata

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.canonical import canonical_json
from gateway.errors import ConfigurationError
from gateway.keys import MASTER_KEY_BYTES

PREFIX = "psn:"
INFO_PREFIX = b"doelpoort/pseudonym/v1\x00"
TRUNCATE_BYTES = 16  # 128 bits: SPEC §7's floor for pseudonyms


def normalise_text(value: str) -> str:
    """Unicode NFC, stripped, runs of whitespace collapsed to one space, casefolded."""
    # ASCII is already NFC; str.split() splits on exactly what \s matches.
    text = value if value.isascii() else unicodedata.normalize("NFC", value)
    return " ".join(text.split()).casefold()


def normalise(value: object) -> bytes:
    """The bytes a pseudonym is computed over (see the module docstring)."""
    if isinstance(value, str):
        return normalise_text(value).encode()
    try:
        return canonical_json(value)
    except Exception:
        # The library's message may quote the value.
        raise TypeError("value cannot be pseudonymised: not JSON") from None


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """RFC 5869 HKDF with SHA-256 (cryptography's implementation)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _pseudonym(key: bytes, message: bytes) -> str:
    # hmac.digest is the one-shot C implementation: several times faster than hmac.new.
    return PREFIX + hmac.digest(key, message, "sha256")[:TRUNCATE_BYTES].hex()


class DomainPseudonymiser:
    """Pseudonyms of one domain. Holds only the derived domain key, not the master."""

    __slots__ = ("_key",)

    def __init__(self, domain_key: bytes) -> None:
        self._key = domain_key

    def pseudonym(self, value: object) -> str:
        return _pseudonym(self._key, normalise(value))

    def __repr__(self) -> str:
        return "DomainPseudonymiser(<key hidden>)"


class PseudonymKeys:
    """Derives one key per domain from the master secret and caches it."""

    def __init__(self, master: bytes) -> None:
        if len(master) != MASTER_KEY_BYTES:
            raise ConfigurationError(f"the master secret must be {MASTER_KEY_BYTES} bytes")
        self._master = master
        self._domains: dict[tuple[str, str], DomainPseudonymiser] = {}
        self._lock = threading.Lock()

    def domain(self, requester: str, purpose: str) -> DomainPseudonymiser:
        """The pseudonymiser of the domain requester x purpose."""
        for part in (requester, purpose):
            if not part or "\x00" in part:
                # A NUL would let two different (requester, purpose) pairs share an info.
                raise ValueError("requester and purpose must be non-empty and hold no NUL")
        with self._lock:
            found = self._domains.get((requester, purpose))
            if found is None:
                info = INFO_PREFIX + requester.encode() + b"\x00" + purpose.encode()
                found = DomainPseudonymiser(hkdf_sha256(self._master, info))
                self._domains[(requester, purpose)] = found
            return found

    def __repr__(self) -> str:
        return "PseudonymKeys(<master hidden>)"
