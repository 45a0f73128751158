"""Subject references and pseudonym references: keyed under the DPO's own key.

The audit log never holds an identifier. To let the DPO find every decision about a
data subject, each decision entry records *subject references*: a keyed HMAC of each
identity key the request and the providers' records revealed for the subject. To let the
DPO find the decisions that released a pseudonym (before opening any escrow), it records
*pseudonym references*, a keyed HMAC of each pseudonym it released. Both are keyed under
the **DPO subject key**, ``<keys_dir>/subject-ref.key`` (32 random bytes, 0600), which
is separate from the partners' pseudonym master secret: the DPO holds a copy offline and
searches a copy of the log with it (``doelpoort audit subject``) without ever holding the
master secret. Construction::

    subject ref   = "psn:" + hex(HMAC-SHA256(key, key_name ":" v)[:16])
    compound ref  = "psn:" + hex(HMAC-SHA256(key, "name+date_of_birth:" n 0x00 d)[:16])
    pseudonym ref = "pref:" + hex(HMAC-SHA256(key, 0x00 "pseudonym:" pseudonym)[:16])
    kid           = hex(HMAC-SHA256(key, 0x00 "kid")[:8])

``v`` is the identity key's value in the form connectors compare it in (`normalise_value`:
Unicode NFC, whitespace collapsed, casefolded; dates ISO 8601; no spaces in compact keys
such as a passport number). A name and a date of birth make one reference together: either
alone would link the DPO's look-up to other people. Entries logged before this key
existed were keyed under ``HKDF(master, "doelpoort/dpo-subject-ref/v1")`` (the *legacy*
key); `legacy_key` derives it so that ``doelpoort keys subject-ref --export --legacy``
can hand it to the DPO and old entries stay searchable, the same construction applying.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from gateway.connectors.base import normalise_key_value
from gateway.errors import ConfigurationError
from gateway.keys import SUBJECT_REF_KEY_BYTES, read_subject_ref_key
from gateway.pseudonyms import hkdf_sha256

__all__ = [
    "COMPOUND",
    "LEGACY_INFO",
    "IdentityKey",
    "SubjectRefKey",
    "identity_keys",
    "legacy_key",
    "legacy_key_bytes",
    "load_subject_ref_key",
    "normalise_value",
]

LEGACY_INFO = b"doelpoort/dpo-subject-ref/v1"
"""The HKDF info of the subject references logged before the DPO subject key."""

COMPOUND = ("name", "date_of_birth")
"""The identity key that counts only whole: one reference for both parts."""

_TRUNCATE = 16  # 128 bits, as pseudonyms
_PSEUDONYM_LABEL = b"\x00pseudonym:"  # a 0x00 no identity key name starts with
_KID_LABEL = b"\x00kid"


def normalise_value(key_name: str, value: object) -> bytes:
    """The bytes a reference is computed over: the value as connectors compare it."""
    kind = "date" if key_name == "date_of_birth" else "string"
    return normalise_key_value(key_name, kind, str(value)).encode()


class SubjectRefKey:
    """The DPO subject key: subject and pseudonym references, and its key id."""

    __slots__ = ("_key", "kid")

    def __init__(self, key: bytes) -> None:
        if len(key) != SUBJECT_REF_KEY_BYTES:
            raise ConfigurationError(f"a subject key is {SUBJECT_REF_KEY_BYTES} bytes")
        self._key = key
        self.kid: str = hmac.digest(key, _KID_LABEL, "sha256")[:8].hex()
        """Names the key in each entry (``subject_ref_key``) without revealing it."""

    def _ref(self, prefix: str, message: bytes) -> str:
        # hmac.digest is the one-shot C implementation: several times faster than hmac.new.
        return prefix + hmac.digest(self._key, message, "sha256")[:_TRUNCATE].hex()

    def ref(self, key_name: str, value: object) -> str:
        """The reference of one single-part identity key (e.g. ``("bsn", "…")``)."""
        return self._ref("psn:", key_name.encode() + b":" + normalise_value(key_name, value))

    def refs(self, identity: Mapping[str, object]) -> list[str]:
        """The references of a subject's identity keys, sorted and distinct.

        One per key; ``name`` and ``date_of_birth`` make one together, and neither makes
        one alone (a name alone is too common, a date of birth links everyone born that
        day).
        """
        return sorted({self.key_ref(key) for key in identity_keys(identity)})

    def key_ref(self, key: IdentityKey) -> str:
        """The reference of one identity key given whole (see `identity_keys`)."""
        if len(key) == 1:
            return self.ref(*key[0])
        (first, name), (second, born) = key
        if (first, second) != COMPOUND:
            raise ValueError("an identity key is one key, or name and date_of_birth")
        compound = b"\x00".join((normalise_value(first, name), normalise_value(second, born)))
        return self._ref("psn:", b"name+date_of_birth:" + compound)

    def pseudonym_ref(self, pseudonym: str) -> str:
        """The reference of a pseudonym an entry released (never the pseudonym itself:
        the log would link a requester's pseudonyms across its entries in clear)."""
        return self._ref("pref:", _PSEUDONYM_LABEL + pseudonym.encode())

    def __repr__(self) -> str:
        return f"SubjectRefKey(kid={self.kid!r}, <key hidden>)"


IdentityKey = tuple[tuple[str, object], ...]
"""One identity key given whole: ``(("bsn", v),)`` or ``(("name", n), ("date_of_birth", d))``."""


def identity_keys(identity: Mapping[str, object]) -> list[IdentityKey]:
    """The identity keys ``identity`` gives whole: name with date of birth as one (neither
    alone), every other key alone."""
    keys: list[IdentityKey] = [((k, v),) for k, v in identity.items() if k not in COMPOUND]
    if all(part in identity for part in COMPOUND):
        keys.append(tuple((part, identity[part]) for part in COMPOUND))
    return keys


def legacy_key_bytes(master: bytes) -> bytes:
    """The key the subject references were made with before the DPO subject key: derived
    from the pseudonym master secret (``HKDF(master, LEGACY_INFO)``). Handing it to the
    DPO hands over nothing of the master secret (HKDF is one-way)."""
    return hkdf_sha256(master, LEGACY_INFO)


def legacy_key(master: bytes) -> SubjectRefKey:
    """`legacy_key_bytes` as a key."""
    return SubjectRefKey(legacy_key_bytes(master))


def load_subject_ref_key(path: Path) -> SubjectRefKey:
    """The subject key in ``path`` (32 bytes, mode 0600); `ConfigurationError` otherwise."""
    return SubjectRefKey(read_subject_ref_key(path))
