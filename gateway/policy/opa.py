"""The remote policy engine: an OPA server's Data API, through ``opa-python-client``.

The OPA server serves the gateway's policy set as the bundle ``doelpoort policy bundle``
writes (`gateway.policy.opa_bundle`); the gateway still compiles its own copy of the set
(to check the register against the catalog, to build probe inputs, and for the digest
every decision records). So the engine makes sure both are the same set:

- At start-up (:meth:`OpaEngine.connect`) it reads the bundles the server has activated
  (``GET /v1/data/system/bundles``, where OPA keeps each bundle's manifest) and refuses
  to start unless one of them has this policy set's digest as its revision.
- Every decision is asked with ``?provenance=true``, so OPA says which bundle revisions
  made it; an answer not made by this digest is refused like an engine failure (OPA may
  have loaded another bundle since start-up).

One :class:`~opa_client.AsyncOpaClient` (one aiohttp session: its connections are kept
and reused) serves every decision on the gateway's event loop, which never blocks on it.
Fail closed: connection refused, no answer within ``timeout_s``, a status other than
200, an answer that is not JSON, an undefined decision, a foreign revision — each raises
a PolicyError (503, nothing disclosed), logged with its cause; the client's retries are
off, so a decision never takes longer than its time limit. Nothing of the input or of
OPA's error bodies (which may quote the input) reaches a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient

from gateway.errors import (
    ConfigurationError,
    PolicyError,
    PolicyEvaluationError,
    PolicyUnavailable,
)
from gateway.policy.bundle import PolicyBundle
from gateway.policy.engine import PROBE_TIMEOUT_S, Decision, decision_from_result, probe_failure
from gateway.policy.evaluator import UNDEFINED

__all__ = ["OpaEngine"]

log = logging.getLogger("doelpoort.policy")

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CLOSED = "the policy engine is closed"


class OpaEngine:
    """Decisions from the OPA server at ``url`` (``http[s]://host[:port]``).

    Build it with :meth:`connect`, which checks the server's bundle revision; then
    :meth:`decide` as :class:`~gateway.policy.engine.EmbeddedEngine` does.
    """

    def __init__(self, bundle: PolicyBundle, url: str, *, timeout_s: float = 1.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the OPA URL must be http(s)://host[:port]")
        self._bundle = bundle
        self._url = f"{parts.scheme}://{parts.netloc}"
        self._timeout_s = timeout_s
        self._path = bundle.entrypoint  # "doelpoort/disclosure/decision"
        self._client = AsyncOpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout_s,
            retries=0,  # a retry would outlast the decision's time limit
        )
        self._opened = False
        self._closed = False
        self._healthy = False
        self._recheck: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, bundle: PolicyBundle, url: str, *, timeout_s: float = 1.0) -> OpaEngine:
        """An engine whose server serves ``bundle``'s digest; ConfigurationError if the
        server cannot be reached or serves another revision (the engine is closed)."""
        engine = cls(bundle, url, timeout_s=timeout_s)
        try:
            await engine._open()
            await engine.check_revision(max(timeout_s, PROBE_TIMEOUT_S))
        except BaseException:
            await engine.aclose()
            raise
        return engine

    @property
    def digest(self) -> str:
        return self._bundle.digest

    @property
    def url(self) -> str:
        return self._url

    def ready(self) -> bool:
        """Open, and the last exchange with the server went well; while it did not, each
        call starts (at most one) fresh revision check in the background."""
        if self._closed:
            return False
        if not self._healthy and (self._recheck is None or self._recheck.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to start
                self._recheck = asyncio.get_running_loop().create_task(
                    self._check_quietly(), name="opa-revision-check"
                )
        return self._healthy

    async def aclose(self) -> None:
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck
        if self._opened:
            self._opened = False
            await self._client.close_connection()

    async def check_revision(self, timeout_s: float | None = None) -> None:
        """ConfigurationError unless the server has activated a bundle whose revision is
        this policy set's digest."""
        try:
            async with asyncio.timeout(timeout_s or self._timeout_s):
                answer = await self._client.get_data("system/bundles")
        except TimeoutError:
            self._healthy = False
            raise ConfigurationError(
                f"the OPA server at {self._url} did not answer within"
                f" {timeout_s or self._timeout_s:g} s"
            ) from None
        except Exception as exc:
            self._healthy = False
            raise ConfigurationError(
                f"the OPA server at {self._url} gave no bundle revisions ({_cause(exc)})"
            ) from None
        bundles = answer.get("result") if isinstance(answer, dict) else None
        revisions = _manifest_revisions(bundles)
        if self.digest not in revisions:
            self._healthy = False
            raise ConfigurationError(
                f"the OPA server at {self._url} serves {_describe(revisions)}, not this"
                f" gateway's policy set {self.digest}: load it the bundle `doelpoort policy"
                " bundle` writes of these policies"
            )
        self._healthy = True

    async def decide(self, policy_input: Mapping[str, Any]) -> Decision:
        try:
            result = await self._query(policy_input, self._timeout_s)
            decision = decision_from_result(result, policy_input, self.digest)
        except PolicyError as exc:
            log.error("policy decision failed (%s): %s", exc.code, exc.detail)
            raise
        return decision

    async def probe(self, inputs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Decide each labelled input before serving (this engine keeps no memo)."""
        for label, policy_input in inputs:
            try:
                result = await self._query(policy_input, max(self._timeout_s, PROBE_TIMEOUT_S))
                decision_from_result(result, policy_input, self.digest)
            except PolicyError as exc:
                raise probe_failure(label, exc.detail) from exc

    # -- the exchange ---------------------------------------------------------------

    async def _open(self) -> None:
        # The client's session belongs to the running loop: opened here, not in __init__.
        await self._client.__aenter__()
        self._opened = True

    async def _query(self, policy_input: Mapping[str, Any], timeout_s: float) -> object:
        """The raw decision document, or PolicyError."""
        if self._closed or not self._opened:
            raise PolicyUnavailable(_CLOSED)
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._ask(policy_input)
        except TimeoutError:
            self._healthy = False
            raise PolicyEvaluationError(
                f"the OPA server did not decide within {timeout_s:g} s"
            ) from None
        except aiohttp.ContentTypeError:
            raise PolicyEvaluationError("the OPA server's answer is not JSON") from None
        except aiohttp.ClientResponseError as exc:
            if exc.status >= 500:
                self._healthy = False
            raise PolicyEvaluationError(f"the OPA server answered HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError) as exc:
            self._healthy = False
            raise PolicyUnavailable(f"the OPA server cannot be reached ({_cause(exc)})") from None
        except (TypeError, ValueError):
            # Not JSON either way: an input json.dumps refuses, or an answer it cannot parse.
            raise PolicyEvaluationError("the OPA exchange is not JSON") from None
        if not isinstance(answer, dict):
            raise PolicyEvaluationError("the OPA server's answer is not an object")
        revisions = _provenance_revisions(answer.get("provenance"))
        if self.digest not in revisions:
            self._healthy = False
            raise PolicyUnavailable(
                f"the OPA server decided with {_describe(revisions)}, not {self.digest}"
            )
        self._healthy = True
        if "result" not in answer:
            raise PolicyEvaluationError(UNDEFINED)
        return answer["result"]

    async def _ask(self, policy_input: Mapping[str, Any]) -> object:
        for attempt in (1, 2):
            try:
                return await self._client.query_rule(
                    input_data=policy_input,
                    package_path=self._path,
                    # A built-in's error stops the decision, as in the embedded engine:
                    # by default OPA makes it undefined, which can switch a deny rule off.
                    query_params={"provenance": "true", "strict-builtin-errors": "true"},
                )
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the server had closed: asked again at once, on
                # a new one (a decision query changes nothing), within the same limit.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _check_quietly(self) -> None:
        try:
            await self.check_revision()
        except ConfigurationError as exc:
            log.warning("the OPA server is not ready: %s", exc.detail)


def _manifest_revisions(bundles: object) -> list[str]:
    """The revisions of the bundles OPA keeps under data.system.bundles."""
    if not isinstance(bundles, dict):
        return []
    revisions = []
    for entry in bundles.values():
        manifest = entry.get("manifest") if isinstance(entry, dict) else None
        revision = manifest.get("revision") if isinstance(manifest, dict) else None
        if isinstance(revision, str):
            revisions.append(revision)
    return revisions


def _provenance_revisions(provenance: object) -> list[str]:
    """The bundle revisions an answer's provenance names."""
    bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
    if not isinstance(bundles, dict):
        return []
    return [
        entry["revision"]
        for entry in bundles.values()
        if isinstance(entry, dict) and isinstance(entry.get("revision"), str)
    ]


def _describe(revisions: list[str]) -> str:
    """Revisions for a message: digests as they are, anything else only counted."""
    if not revisions:
        return "no bundle revision"
    shown = sorted({r for r in revisions if _DIGEST.fullmatch(r)})
    others = len(revisions) - len(shown)
    parts = [f"revision {r}" for r in shown]
    if others:
        parts.append(f"{others} revision(s) that are no policy digest")
    return ", ".join(parts)


def _cause(exc: BaseException) -> str:
    # The class only: aiohttp's messages quote URLs and, for some, response text.
    return type(exc).__name__
