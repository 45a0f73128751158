"""The log's proofs over HTTP (`/v1/audit/…`): what a partner, a court or the DPO needs to
check a receipt or the log without reading the database.

* ``GET /v1/audit/checkpoint`` — the latest signed checkpoint with the witnesses'
  cosignatures of it: any known peer.
* ``GET /v1/audit/proof/{seq}?size=N`` — entry `seq` (seq, prev, body) and its RFC 9162
  inclusion proof in the tree of a stored checkpoint (the latest by default), with that
  checkpoint: only the entry's requester and the DPO. Anyone else gets the very 404 a
  missing entry gets, so a partner learns nothing of other partners' entries.
* ``GET /v1/audit/consistency?from=M&to=N`` — the RFC 9162 consistency proof between two
  stored checkpoints, with both: any known peer (the witness uses it).
* ``POST /v1/audit/cosignatures`` — the DPO's witness hands in its cosignature of a
  stored checkpoint; it is verified against the witness keys this gateway is configured
  with (`<keys_dir>/witnesses.txt`, one verifier key a line) and stored beside the log.

Proofs come from one `MerkleLevels` per app, grown from the log as it grows, so a proof
costs O(log n) lookups. The levels are built at start-up on a background thread (one pass
over the log, about half a minute at 1,000,000 entries); a proof asked for meanwhile
waits for that pass instead of making a second one.
Before a proof is served, the levels' root at the checkpoint's size must be the root the
checkpoint signs; if it is not, the levels are rebuilt from the log once, and a log that
still disagrees with its own checkpoint is a 503 (run `doelpoort audit verify`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from audit.checkpoint import split_note
from audit.clock import rfc3339, utc_now
from audit.cosignature import (
    Cosignature,
    cosigner_key_id,
    parse_cosignature,
    parse_cosigner_key,
    verify_cosignature,
)
from audit.entry import entry_leaf_hash
from audit.errors import ProofError
from audit.proof import MerkleLevels
from audit.query import get_entry
from audit.reader import AuditReader, StoredCheckpoint
from gateway.dpo.pages import NO_STORE, read_log
from gateway.errors import AuditError, InvalidRequest, NotFound
from gateway.ids import MAX_SEQ
from gateway.peers import peer, require_dpo, rt
from gateway.request_bodies import json_body
from gateway.transport.identity import PeerIdentity

__all__ = ["WITNESS_KEYS_FILE", "router"]

log = logging.getLogger("doelpoort.dpo.proofs")


@asynccontextmanager
async def _build_levels_at_start(app: FastAPI) -> AsyncIterator[None]:
    """Grow the app's levels to the latest checkpoint on a daemon thread, so the first
    proof after a restart does not wait for a pass over the whole log."""
    levels = app.state.merkle_levels = MerkleLevels()
    path = app.state.runtime.settings.audit_db_path

    def build() -> None:
        try:
            with AuditReader(path) as reader:
                latest = reader.checkpoint(None)
                if latest is not None:
                    levels.extend(reader, latest.size)
        except Exception as exc:  # a request rebuilds them, and says why if it must
            log.warning("proof levels not built at start-up: %s", type(exc).__name__)

    threading.Thread(target=build, name="doelpoort-proof-levels", daemon=True).start()
    yield


router = APIRouter(lifespan=_build_levels_at_start)

WITNESS_KEYS_FILE = "witnesses.txt"
"""In the keys directory: the verifier keys of the witnesses whose cosignatures the
gateway accepts, one a line (``#`` starts a comment)."""

CLOCK_SKEW_S = 300
"""How far in the future a cosignature's time may be (the witness's clock may run ahead)."""

_COUNT = re.compile(r"[1-9][0-9]{0,18}")


def _count(value: str | None, name: str) -> int | None:
    """A query or path number: a whole number from 1 to 2^63 - 1 (422 otherwise)."""
    if value is None:
        return None
    if not _COUNT.fullmatch(value) or int(value) > MAX_SEQ:
        raise InvalidRequest(f"{name} must be a whole number from 1 to 2^63 - 1")
    return int(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _levels(request: Request) -> MerkleLevels:
    state = request.app.state
    levels: MerkleLevels | None = getattr(state, "merkle_levels", None)
    if levels is None:  # on the event loop: no two requests make one at once
        levels = state.merkle_levels = MerkleLevels()
    return levels


def _no_checkpoint(size: int) -> NotFound:
    return NotFound(f"the audit log has no signed checkpoint at size {size}")


@dataclass(frozen=True)
class _Tree:
    """Levels that hold a stored checkpoint's tree, checked against its signed root."""

    levels: MerkleLevels
    checkpoint: StoredCheckpoint


def _tree(request: Request, reader: AuditReader, checkpoint: StoredCheckpoint) -> _Tree:
    """The app's levels grown to `checkpoint`, with its root (worker thread)."""
    levels = _levels(request)
    try:
        levels.extend(reader, checkpoint.size)
        if levels.root(checkpoint.size) == checkpoint.root:
            return _Tree(levels, checkpoint)
    except ProofError:
        pass  # the log changed under the levels: rebuild them below
    fresh = MerkleLevels()
    try:
        fresh.extend(reader, checkpoint.size)
        if fresh.root(checkpoint.size) == checkpoint.root:
            request.app.state.merkle_levels = fresh  # one assignment: readers see either
            return _Tree(fresh, checkpoint)
        problem = f"root {fresh.root(checkpoint.size).hex()}, want {checkpoint.root.hex()}"
    except ProofError as exc:
        problem = exc.detail
    raise AuditError(
        f"the audit log does not match its signed checkpoint at size {checkpoint.size} "
        f"({problem}): no proof is served; run `doelpoort audit verify`"
    )


def _with_cosignatures(reader: AuditReader, checkpoint: StoredCheckpoint) -> str:
    """The checkpoint's note with the stored cosignatures of it appended."""
    lines = [c.line for c in reader.cosignatures() if c.size == checkpoint.size]
    return checkpoint.note + "".join(f"{line}\n" for line in lines)


@router.get(
    "/v1/audit/checkpoint",
    summary="The audit log's latest signed checkpoint, with its cosignatures",
    dependencies=[Depends(peer)],
)
async def get_checkpoint(request: Request) -> Response:
    def work(reader: AuditReader) -> str | None:
        latest = reader.checkpoint()
        return None if latest is None else _with_cosignatures(reader, latest)

    note = await read_log(request, work)
    if note is None:
        raise NotFound("the audit log has no signed checkpoint yet")
    return Response(note, media_type="text/plain; charset=utf-8", headers=NO_STORE)


@router.get(
    "/v1/audit/proof/{seq}",
    summary="An audit entry and its inclusion proof (its requester and the DPO only)",
)
async def get_inclusion_proof(
    request: Request, seq: str, size: str | None = None, identity: PeerIdentity = Depends(peer)
) -> Response:
    wanted = _count(seq, "seq")
    assert wanted is not None
    at = _count(size, "size")
    # Missing, or another partner's: one answer, so a partner learns nothing of others'.
    hidden = NotFound("no such audit entry for this certificate")

    def work(reader: AuditReader) -> dict[str, Any]:
        entry = get_entry(reader, wanted)
        if entry is None:
            raise hidden
        requester = getattr(entry.record, "requester", None)
        if identity.kind != "dpo" and requester != identity.id:
            raise hidden
        # Read after the entry: the checkpoint committed with it (or a later one) is there.
        checkpoint = reader.checkpoint(at)
        if checkpoint is None:
            raise _no_checkpoint(at) if at is not None else hidden
        if wanted > checkpoint.size:
            raise NotFound(f"entry {wanted} is not in the tree of size {checkpoint.size}")
        tree = _tree(request, reader, checkpoint)
        return {
            "seq": entry.seq,
            "size": checkpoint.size,
            "leaf_index": entry.seq - 1,
            "leaf_hash": _b64(entry_leaf_hash(entry.seq, entry.prev, entry.body)),
            "entry": {"seq": entry.seq, "prev": _b64(entry.prev), "body": _b64(entry.body)},
            "inclusion_proof": [
                _b64(node) for node in tree.levels.inclusion_proof(entry.seq - 1, checkpoint.size)
            ],
            "checkpoint": _with_cosignatures(reader, checkpoint),
        }

    return JSONResponse(await read_log(request, work), headers=NO_STORE)


@router.get(
    "/v1/audit/consistency",
    summary="A consistency proof between two signed checkpoints",
    dependencies=[Depends(peer)],
)
async def get_consistency_proof(request: Request, to: str | None = None) -> Response:
    # `from` is a Python keyword: read it by its query name.
    first = _count(request.query_params.get("from"), "from")
    last = _count(to, "to")
    if first is None:
        raise InvalidRequest("from is required: the size of the smaller checkpoint")
    if last is not None and first > last:
        raise InvalidRequest(f"from must not exceed to: got from {first}, to {last}")

    def work(reader: AuditReader) -> dict[str, Any]:
        older = reader.checkpoint(first)
        if older is None:
            raise _no_checkpoint(first)
        newer = reader.checkpoint(last)
        if newer is None:
            raise _no_checkpoint(last if last is not None else first)
        tree = _tree(request, reader, newer)
        if tree.levels.root(first) != older.root:
            raise AuditError(
                f"the audit log does not match its signed checkpoint at size {first}: no "
                "proof is served; run `doelpoort audit verify`"
            )
        return {
            "from": first,
            "to": newer.size,
            "consistency_proof": [
                _b64(node) for node in tree.levels.consistency_proof(first, newer.size)
            ],
            "from_checkpoint": older.note,
            "to_checkpoint": _with_cosignatures(reader, newer),
        }

    return JSONResponse(await read_log(request, work), headers=NO_STORE)


MAX_COSIGNATURE_BODY = 4096


# Like every DPO route, not in the partners' OpenAPI document (docs/dpo.md describes it).
@router.post(
    "/v1/audit/cosignatures",
    summary="Hand in a witness's cosignature of a signed checkpoint (the DPO only)",
    dependencies=[Depends(require_dpo)],
    include_in_schema=False,
)
async def post_cosignature(request: Request) -> Response:
    raw = await json_body(request)
    size, line = _cosignature_body(raw)
    cosignature = _parse(line)
    keys = _witness_keys(rt(request).settings.keys_dir / WITNESS_KEYS_FILE)
    public_key = keys.get((cosignature.name, cosignature.key_id))
    if public_key is None:
        raise InvalidRequest(
            f"the cosignature is by {cosignature.name} (key ID {cosignature.key_id.hex()}), "
            f"no witness key this gateway accepts ({WITNESS_KEYS_FILE} in its keys directory)"
        )
    now = utc_now()
    if cosignature.timestamp > now.timestamp() + CLOCK_SKEW_S:
        raise InvalidRequest(
            f"the cosignature's time {cosignature.timestamp} is in the future (now "
            f"{int(now.timestamp())})"
        )

    def checkpoint_at(reader: AuditReader) -> StoredCheckpoint | None:
        return reader.checkpoint(size)

    checkpoint = await read_log(request, checkpoint_at)
    if checkpoint is None:
        raise InvalidRequest(f"the audit log has no signed checkpoint at size {size}")
    text, _ = split_note(checkpoint.note)
    try:
        verify_cosignature(text, cosignature, cosignature.name, public_key)
    except ProofError as exc:
        raise InvalidRequest(f"the cosignature does not verify: {exc.detail}") from exc
    try:
        stored = await rt(request).audit.add_cosignature(
            size, cosignature.name, cosignature.key_id, cosignature.line(), rfc3339(now)
        )
    except ValueError as exc:  # the checkpoint is gone: not one this log holds
        raise InvalidRequest(f"the audit log has no signed checkpoint at size {size}") from exc
    body = {"size": size, "witness": cosignature.name, "stored": stored}
    return JSONResponse(body, status_code=201 if stored else 200, headers=NO_STORE)


def _cosignature_body(raw: bytes) -> tuple[int, str]:
    if len(raw) > MAX_COSIGNATURE_BODY:
        raise InvalidRequest(f"a cosignature body is at most {MAX_COSIGNATURE_BODY} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict) or set(body) != {"size", "cosignature"}:
        raise InvalidRequest('the body is {"size": <checkpoint size>, "cosignature": "<line>"}')
    size, line = body["size"], body["cosignature"]
    if type(size) is not int or not 1 <= size <= MAX_SEQ:
        raise InvalidRequest("size must be a whole number from 1 to 2^63 - 1")
    if not isinstance(line, str):
        raise InvalidRequest("cosignature must be a signature line (a string)")
    return size, line


def _parse(line: str) -> Cosignature:
    try:
        return parse_cosignature(line)
    except ProofError as exc:
        raise InvalidRequest(f"the cosignature is malformed: {exc.detail}") from exc


def _witness_keys(path: Path) -> dict[tuple[str, bytes], Ed25519PublicKey]:
    """(name, key ID) → public key, from the witness keys file (none when it is absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read the witness keys {path}: {exc}") from exc
    keys: dict[tuple[str, bytes], Ed25519PublicKey] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name, public_key = parse_cosigner_key(line)
        except ValueError as exc:
            raise AuditError(f"{path} line {number} is no witness verifier key: {exc}") from exc
        keys[(name, cosigner_key_id(name, public_key))] = public_key
    return keys
