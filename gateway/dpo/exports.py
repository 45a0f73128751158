"""The console's exports: ``/dpo/exports`` (the filter form and download links, with its
JSON twin) and ``GET /dpo/exports/{format}?filters`` (``jsonl``, ``csv``, ``logboek``),
streamed as an attachment. DPO only.

The log is read by one worker thread for the whole export (a SQLite connection belongs
to the thread that opened it) and handed to the response through a small bounded
queue, so a download of the whole log holds a few chunks in memory whatever its size,
and a client that stops reading stops the reading thread too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from audit.export import EXPORT_FORMATS, EntryLike, export_csv, export_jsonl, export_logboek
from audit.query import EntryFilter, iter_selection
from audit.reader import AuditReader
from gateway.case_refs import check_filter
from gateway.dpo.pages import NO_STORE, twin
from gateway.errors import AuditError, InvalidRequest
from gateway.peers import require_dpo, rt

__all__ = ["FILTER_FIELDS", "exporter", "router", "selection"]

log = logging.getLogger(__name__)
router = APIRouter()

QUEUED_CHUNKS = 8
"""Chunks (of up to 256 entries each) waiting between the reading thread and the client."""

FILTER_FIELDS = (
    "requester",
    "provider",
    "dataset",
    "purpose",
    "decision",
    "refusal",
    "since",
    "until",
    "case_ref",
    "policy_digest",
    "disclosure_id",
    "kind",
)
"""The filters an export takes: `audit.query.EntryFilter`'s fields, by the same names."""

_Text = Annotated[str | None, Query(max_length=200)]


def selection(
    requester: _Text = None,
    provider: _Text = None,
    dataset: _Text = None,
    purpose: _Text = None,
    decision: _Text = None,
    refusal: _Text = None,
    since: _Text = None,
    until: _Text = None,
    case_ref: _Text = None,
    policy_digest: _Text = None,
    disclosure_id: _Text = None,
    kind: _Text = None,
) -> EntryFilter:
    """The query's filters as an `EntryFilter` (an empty value is no filter); 422 with
    the filter's own message for a value it cannot be."""
    values = {
        "requester": requester,
        "provider": provider,
        "dataset": dataset,
        "purpose": purpose,
        "decision": decision,
        "refusal": refusal,
        "since": since,
        "until": until,
        "case_ref": check_filter(case_ref.strip() if case_ref else None),
        "policy_digest": policy_digest,
        "disclosure_id": disclosure_id,
        "kind": kind,
    }
    given = {name: value.strip() for name, value in values.items() if value and value.strip()}
    try:
        return EntryFilter(**given)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


Exporter = Callable[[Iterable[EntryLike]], Iterator[bytes]]


def exporter(fmt: str, origin: str | None) -> Exporter:
    """The exporter of a format: entries in, chunks of bytes out."""
    if fmt == "jsonl":
        return export_jsonl
    if fmt == "csv":
        return export_csv
    return lambda entries: export_logboek(entries, origin=origin)


def export_chunks(path: Path, flt: EntryFilter, fmt: str, origin: str | None) -> Iterator[bytes]:
    """The export of the selection, read from the log at ``path`` (one reader, closed at
    the end or when the consumer stops)."""
    with AuditReader(path) as reader:
        yield from exporter(fmt, origin)(iter_selection(reader, flt))


async def _through_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` produced on one worker thread, consumed here, at most QUEUED_CHUNKS apart."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUED_CHUNKS)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                put(chunk)
            else:
                put(None)
        except BaseException as exc:  # handed to the consumer, which ends the response
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="dpo-export", daemon=True)
    worker.start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                log.error("export failed midway: %s", type(item).__name__)
                # Raised, not returned: the response then ends without its last chunk,
                # so the download fails visibly instead of looking complete.
                raise AuditError("the export failed midway") from None
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a put waiting for room
            queue.get_nowait()


Format = Annotated[str, PathParam(pattern="^(jsonl|csv|logboek)$")]


@router.get("/dpo/exports/{fmt}", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def download(
    request: Request, fmt: Format, flt: EntryFilter = Depends(selection)
) -> StreamingResponse:
    """The selection as a download, streamed."""
    settings = rt(request).settings
    media_type, extension = EXPORT_FORMATS[fmt]
    chunks = export_chunks(settings.audit_db_path, flt, fmt, settings.origin)
    return StreamingResponse(
        _through_thread(chunks),
        media_type=media_type,
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="doelpoort-audit.{extension}"',
        },
    )


@twin(router, "/exports", "exports.html", summary="Exports of a filtered selection of the log")
async def exports_page(request: Request, flt: EntryFilter = Depends(selection)) -> dict[str, Any]:
    """The filter form, and a download link per format for the filters given."""
    filters = {name: getattr(flt, name) for name in FILTER_FIELDS if getattr(flt, name)}
    query = f"?{urlencode(filters)}" if filters else ""
    return {
        "filters": filters,
        "fields": list(FILTER_FIELDS),
        "formats": [
            {"format": fmt, "media_type": media, "url": f"/dpo/exports/{fmt}{query}"}
            for fmt, (media, _ext) in EXPORT_FORMATS.items()
        ],
    }
