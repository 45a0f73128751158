"""The console's HTML forms: their bodies read and parsed in one place.

Forms that carry a subject's identifier are posted (never in a URL); their bodies are
``application/x-www-form-urlencoded``, parsed here with the standard library, bounded in
size and number of fields.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from gateway.errors import InvalidRequest, UnsupportedMediaType
from gateway.request_bodies import bounded_body

__all__ = ["first", "read_form"]

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_LIMIT = 16_384  # bytes: a form of identifiers, or of a few hundred references
_MAX_FIELDS = 512


async def read_form(request: Request) -> dict[str, list[str]]:
    """The posted form, name → values; 415 for another media type, 413 for a body over
    16 KiB (never buffered beyond), 422 for a body that is no form."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await bounded_body(request, _LIMIT)
    if media != FORM_MEDIA_TYPE and (media or body):  # an empty body is an empty form
        raise UnsupportedMediaType(f"this form is posted as {FORM_MEDIA_TYPE}")
    try:
        return parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=_MAX_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form is not percent-encoded UTF-8") from None


def first(form: dict[str, list[str]], name: str) -> str | None:
    """The first value of field ``name``, or None."""
    values = form.get(name)
    return values[0] if values else None
