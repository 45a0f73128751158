"""The one syntax of the names Doelpoort keys things on.

Partner ids, roles, purposes and DPO names, and each half of a dataset id
(``<partner>/<name>``): lowercase letters, digits and hyphens, starting with a letter,
at most 63 characters. Safe as a file name, a URI segment and a DNS label alike. The
certificate parser, the connector catalog, the purpose register and the partner API all
check against this module, so a name that loads can also be asked for.
"""

from __future__ import annotations

import re

from gateway.errors import ConfigurationError

ID_PATTERN = r"[a-z][a-z0-9-]{0,62}"
DATASET_ID_PATTERN = rf"{ID_PATTERN}/{ID_PATTERN}"
DISCLOSURE_ID_PATTERN = r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
"""A disclosure's id, as the gateway makes it (``urn:uuid:`` and a lowercase UUID)."""
REF_PATTERN = r"psn:[0-9a-f]{32}"
"""A pseudonym or a reference: ``psn:`` and 128 bits in lowercase hex."""
MAX_SEQ = 2**63 - 1
"""The largest audit sequence number (and tree size): SQLite's largest integer."""

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a well-formed id."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def validate_id(value: object, what: str = "partner id") -> str:
    """Return ``value`` if it is a well-formed id, else raise `ConfigurationError`."""
    if not is_valid_id(value):
        raise ConfigurationError(
            f"invalid {what} {value!r}: use 1-63 characters a-z, 0-9 and '-', "
            "starting with a letter"
        )
    assert isinstance(value, str)
    return value
