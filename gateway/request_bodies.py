"""Request bodies: read only from a known peer, only when declared JSON, never beyond
the configured limit. The partner API and the DPO's routes share this one reader."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.peers import rt

__all__ = ["json_body"]


async def json_body(request: Request) -> bytes:
    """The request body, once it is declared JSON and fits the configured limit.

    Read only after the peer is known, so an unknown peer's body is never buffered.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType()
    limit = rt(request).settings.max_body_bytes
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
