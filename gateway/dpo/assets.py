"""The console's stylesheet and its one small script (`static/`), served from the package
to a DPO only."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from gateway.errors import NotFound
from gateway.peers import require_dpo

router = APIRouter()

_STATIC = Path(__file__).with_name("static")
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@router.get("/dpo/static/{name}", include_in_schema=False, dependencies=[Depends(require_dpo)])
async def static_file(name: str) -> Response:
    path = _STATIC / name
    if "/" in name or path.suffix not in _TYPES or not path.is_file():
        raise NotFound("no such file")
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix])
