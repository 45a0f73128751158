"""OpaStandIn: a test double for an OPA server, which cannot be installed here.

It serves, over a real socket (uvicorn in a thread), the part of OPA's REST API the
gateway's OPA engine uses, answering from the very ``.tar.gz`` bundle that ``doelpoort
policy bundle`` writes, evaluated by regopy (rego-cpp) — not by OPA:

- ``POST /v1/data/<path>`` with ``{"input": …}``: the document at ``data.<path>`` for that
  input, as ``{"result": …}``, or ``{}`` when it is undefined; with ``?provenance=true``
  a ``provenance`` object naming the bundle's revision as OPA does
  (``{"bundles": {<name>: {"revision": …}}}``); ``?strict-builtin-errors=true`` makes a
  built-in's error an error (HTTP 500, ``internal_error``) instead of undefined.
- ``GET /v1/data/system/bundles``: the activated bundle's manifest, where OPA keeps it.
- ``GET /health``.

The bundle is loaded as OPA loads one: every ``*.rego`` member is a module, ``data.json``
is data at its directory's path, ``.manifest`` gives the revision; other members are
ignored.

What it does **not** implement: the rest of OPA's API (policies, query, compile, config,
status, metrics, decision logs, explain), bundle signature verification (OPA checks it
with its ``keys`` configuration; the gateway's own `read_bundle` does it here), bundle
polling and downloading, partial evaluation, OPA's strict compile checks, and OPA's
built-ins that rego-cpp lacks. Its timing is rego-cpp's, not OPA's.

For fault tests it can be told to wait before answering (``delay_s``) or to give a fixed
reply (``reply``: status, content type and body) instead of evaluating.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from regopy import Interpreter, LogLevel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.server_thread import ServerThread

BUNDLE_NAME = "doelpoort"


class OpaStandIn:
    """``with OpaStandIn(bundle_path) as opa:`` then ``opa.url`` is where it answers."""

    def __init__(self, bundle_path: Path, *, name: str = BUNDLE_NAME) -> None:
        self.name = name
        self.delay_s = 0.0
        self.reply: tuple[int, str, bytes] | None = None
        self.requests = 0
        self._lock = threading.Lock()
        self._load(bundle_path)
        app = Starlette(
            routes=[
                Route("/v1/data/{path:path}", self._data, methods=["GET", "POST"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", loop="asyncio"
        )
        self._server = ServerThread(uvicorn.Server(config))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def revision(self) -> str:
        return str(self._manifest.get("revision", ""))

    def load(self, bundle_path: Path) -> None:
        """Activate another bundle, as OPA does when its bundle source changes."""
        with self._lock:
            self._load(bundle_path)

    def __enter__(self) -> OpaStandIn:
        self._server.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.__exit__(exc_type, exc, tb)

    # -- loading, as OPA reads a bundle archive ---------------------------------------

    def _load(self, bundle_path: Path) -> None:
        self.bundle_path = bundle_path
        modules: list[tuple[str, str]] = []
        data: dict[str, Any] = {}
        manifest: dict[str, Any] = {}
        with tarfile.open(fileobj=io.BytesIO(bundle_path.read_bytes()), mode="r:gz") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                content = handle.read()
                name = member.name.lstrip("/")
                if name.endswith(".rego"):
                    modules.append((name, content.decode()))
                elif name.split("/")[-1] == "data.json":
                    target = data
                    for part in name.split("/")[:-1]:
                        target = target.setdefault(part, {})
                    target.update(json.loads(content))
                elif name.endswith(".manifest"):
                    manifest = json.loads(content)
        interpreter = Interpreter()
        interpreter.log_level = LogLevel.NONE
        for name, source in modules:
            interpreter.add_module(name, source)
        interpreter.add_data(data)
        self._interpreter = interpreter
        self._data_doc = data
        self._manifest = manifest
        self._compiled: dict[str, Any] = {}

    # -- the API --------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({})

    async def _data(self, request: Request) -> Response:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.reply is not None:
            status, media_type, body = self.reply
            return Response(body, status_code=status, media_type=media_type)
        path = request.path_params["path"].strip("/")
        params = request.query_params
        if request.method == "GET":
            if path == "system/bundles":
                manifest = dict(self._manifest)
                return JSONResponse({"result": {self.name: {"manifest": manifest}}})
            return _error(404, "resource_not_found", "the stand-in serves no such document")
        try:
            body = json.loads(await request.body() or b"{}")
            document = json.dumps(body.get("input"))
        except (ValueError, AttributeError):
            return _error(400, "invalid_parameter", "body contains malformed input document")
        strict = params.get("strict-builtin-errors", "").lower() == "true"
        try:
            answer = self._evaluate(path, document, strict=strict)
        except _EvaluationError:
            return _error(500, "internal_error", "the evaluation failed")
        if params.get("provenance", "").lower() == "true":
            answer["provenance"] = {
                "version": "stand-in",
                "bundles": {self.name: {"revision": self.revision}},
            }
        return JSONResponse(answer)

    def _evaluate(self, path: str, document: str, *, strict: bool) -> dict[str, Any]:
        with self._lock:  # one interpreter: regopy's are not thread-safe
            compiled = self._compiled.get(path)
            if compiled is None:
                compiled = self._interpreter.build(None, [path])
                self._compiled[path] = compiled
            self._interpreter.strict_built_in_errors = strict
            self._interpreter.set_input_term(document)
            try:
                output = self._interpreter.query_bundle_entrypoint(compiled, path)
            except Exception as exc:  # rego-cpp's error answers do not parse as JSON
                raise _EvaluationError from exc
            if not output.ok():
                raise _EvaluationError
            text = str(output)
        if text == "undefined":
            return {}
        expressions = json.loads(text)["expressions"]
        return {"result": expressions[0]}


class _EvaluationError(Exception):
    pass


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)
