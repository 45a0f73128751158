"""What every connector does, and the rules they share.

A connector fetches the records of one dataset that match a subject. A record matches
when it agrees with the subject on every identity key of the dataset that the subject
fully covers (a compound key such as ``[name, date_of_birth]`` needs every part), so
keys naming two different people match no one (:func:`record_matches`). Values are
compared normalised (:func:`normalise_key_value`): Unicode NFC, surrounding whitespace
stripped, case folded, inner whitespace collapsed (removed altogether for document-style
identifiers such as ``bsn`` or ``iban``), dates as ISO ``YYYY-MM-DD``.

Records leave a connector with undeclared fields stripped and every value checked
against its field's type (``None`` is always allowed). A connector raises only
:class:`~gateway.errors.ConnectorError` subclasses, whose messages name the dataset and
the condition, never a subject or record value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Protocol, runtime_checkable

from gateway.errors import ConnectorResponseError
from gateway.pseudonyms import normalise_text
from gateway.vocabulary import FIELD_TYPES, DatasetSpec

__all__ = [
    "ADDRESS_PARTS",
    "Connector",
    "check_record",
    "is_valid_value",
    "normalise_key_value",
    "record_matches",
    "subject_lookups",
]

#: Identity keys written without meaningful inner whitespace ("NL91 ABNA ..." = "NL91ABNA...").
_COMPACT_KEYS = frozenset({"bsn", "v_number", "passport_no", "iban"})
#: The parts of an ``address`` value.
ADDRESS_PARTS = frozenset({"street", "house_number", "postcode", "municipality"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@runtime_checkable
class Connector(Protocol):
    """Fetches one dataset's records about a subject."""

    spec: DatasetSpec
    #: True when a fetch never waits on I/O once loaded (an in-memory index), so the
    #: pipeline awaits it inline instead of paying for a task per dataset.
    in_process: bool

    async def fetch(self, subject: Mapping[str, str]) -> list[dict[str, Any]]:
        """Records agreeing with every identity key the subject covers, checked and stripped.

        The records may be shared with later fetches (an in-memory index): callers must
        not change them. Raises only :class:`~gateway.errors.ConnectorError` subclasses.
        """
        ...

    async def aclose(self) -> None:
        """Release clients and pools; the connector is not used afterwards."""
        ...


def normalise_key_value(field: str, field_type: str, value: str) -> str:
    """The form in which identity key values are compared."""
    if field_type == "date":
        text = value.strip()
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            return text
    text = normalise_text(value)
    if field in _COMPACT_KEYS:
        return text.replace(" ", "")
    return text


def subject_lookups(
    spec: DatasetSpec, subject: Mapping[str, str]
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(identity key, normalised values)`` for every key the subject fully covers."""
    lookups = []
    for key in spec.covered_keys(subject):
        values = tuple(
            normalise_key_value(part, spec.fields[part].type, subject[part]) for part in key
        )
        if all(values):
            lookups.append((key, values))
    return lookups


def record_matches(
    spec: DatasetSpec,
    record: Mapping[str, Any],
    lookups: Iterable[tuple[tuple[str, ...], tuple[str, ...]]],
) -> bool:
    """Whether ``record`` agrees with every ``(identity key, normalised values)`` lookup.

    ``lookups`` is what :func:`subject_lookups` gave for the subject. A record lacking a
    part of a looked-up key (missing, None or empty) does not agree with it.
    """
    for key, values in lookups:
        found: list[str] = []
        for part in key:
            value = record.get(part)
            if not isinstance(value, str) or not value:
                return False
            found.append(normalise_key_value(part, spec.fields[part].type, value))
        if tuple(found) != values:
            return False
    return True


# Every value must survive the canonical JSON that receipts sign (RFC 8785): text that
# is valid Unicode (no lone surrogates, which a JSON "\ud800" escape can carry) and
# integers a double holds exactly. Checked here, where the provider is named.
_EXACT_INT = 2**53 - 1


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _EXACT_INT


def _is_number(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_integer(value)


def _is_date(value: object) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_address(value: object) -> bool:
    if not isinstance(value, dict) or not value.keys() <= ADDRESS_PARTS:
        return False
    for part, item in value.items():
        if item is None or _is_text(item):
            continue
        if part == "house_number" and _is_integer(item):
            continue
        return False
    return True


_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": _is_text,
    "date": _is_date,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "address": _is_address,
}
if _TYPE_CHECKS.keys() != set(FIELD_TYPES):  # the catalog's field types are the one source
    raise RuntimeError("every field type of the connector catalog needs a value check")


def is_valid_value(field_type: str, value: object) -> bool:
    """Whether ``value`` (not None) is a valid value of ``field_type``."""
    return _TYPE_CHECKS[field_type](value)


def check_record(spec: DatasetSpec, record: object, where: str = "") -> dict[str, Any]:
    """The record with undeclared fields stripped; raises if a value has the wrong type.

    ``where`` locates the record in messages (e.g. ``"line 12: "``); it must not hold
    values.
    """
    if not isinstance(record, dict):
        raise ConnectorResponseError(f"{spec.id}: {where}a record is not a JSON object")
    clean: dict[str, Any] = {}
    for name, field in spec.fields.items():
        if name not in record:
            continue
        value = record[name]
        if value is not None and not _TYPE_CHECKS[field.type](value):
            raise ConnectorResponseError(
                f"{spec.id}: {where}field {name!r} is not a valid {field.type}"
            )
        clean[name] = dict(value) if isinstance(value, dict) else value
    return clean
