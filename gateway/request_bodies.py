"""Request bodies: read only from a known peer, only when declared JSON, never beyond
the configured limit. The partner API and the DPO's routes share this one reader."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.peers import rt

__all__ = ["bounded_body", "json_body", "parse_json_body"]

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request) -> bytes:
    """The request body, once it is declared JSON and fits the configured limit.

    Read only after the peer is known, so an unknown peer's body is never buffered.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType()
    return await bounded_body(request, rt(request).settings.max_body_bytes)


async def parse_json_body(request: Request, model: type[M]) -> M:
    """`json_body` validated as `model`: one pass of pydantic-core; a body that does not
    fit is the same 422 as any other (`RequestValidationError`, values not echoed)."""
    raw = await json_body(request)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def bounded_body(request: Request, limit: int) -> bytes:
    """The body, read as it streams in and refused with 413 once it passes `limit` bytes
    (or declares more): a caller never buffers more than it allows."""
    too_large = PayloadTooLarge(f"request bodies are limited to {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("the client went away before the body was complete") from None
    return b"".join(chunks)
