"""Time, in one place: the current UTC time and its RFC 3339 forms.

Anything time-dependent takes a clock (or ``now``) as a parameter so tests never sleep;
this module supplies the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC to the second, e.g. ``2026-11-22T10:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-22T10:00:00.000000Z``.

    Refuses a naive `moment`: its offset from UTC is unknown.
    """
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
