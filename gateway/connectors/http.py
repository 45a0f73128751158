"""The ``http`` connector: the provider's own REST API.

``POST <url>`` with ``{"subject": {...}}`` — only the identity keys of this dataset that
the subject covers, nothing more — answered by ``200 {"records": [...]}``. Optionally
OAuth2 client credentials (Authlib): the token is fetched on first use, cached, and
fetched again shortly before it expires or when the provider rejects it.

``timeout_s`` bounds the whole fetch: waiting for a token another request is fetching,
fetching one, the request, and its one retry with a fresh token. Every answer, the token
endpoint's too, must come uncompressed and within ``MAX_ANSWER_BYTES``
(:class:`_ProviderTransport`).

Failures map onto the connector errors:

- connection refused, network error, timeout → :class:`ConnectorUnavailable`
- token could not be obtained, or refused twice → :class:`ConnectorAuthError`
- non-2xx, compressed, too large, not JSON, an object repeating a member name (I-JSON,
  as for partners' bodies: `gateway.ijson`), wrong shape or field types →
  :class:`ConnectorResponseError`

The provider is not trusted to match: every record it returns is checked, and only those
that agree with every identity key the subject covers are kept
(:func:`~gateway.connectors.base.record_matches`); others are dropped as extra candidates
(their number is logged at debug level, never their values).

Messages name the dataset and the condition only; neither subject values nor the
provider's response (body, headers or status text) ever appear in them or in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authlib.deprecate
import httpx

from gateway import ijson
from gateway.connectors.base import check_record, record_matches, subject_lookups
from gateway.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorResponseError,
    ConnectorUnavailable,
)
from gateway.vocabulary import DatasetSpec, HttpConnectorConfig, OAuth2Config

# Authlib >= 1.7 prefers the ``httpx2`` package and warns, once, at import when it falls
# back to ``httpx`` (which this project depends on). Import it quietly: the warning is
# about Authlib's own roadmap, not about anything a deployment can act on. (Importing
# ``authlib.deprecate`` first matters: on import it installs an "always" filter that
# would otherwise take precedence over this one.)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["HttpConnector"]

log = logging.getLogger("doelpoort.connectors.http")

# httpx logs every status line at INFO, with the provider's own reason phrase, and
# httpcore every header at DEBUG: words that may name the subject. The connector says
# what went wrong in its own messages, so those two loggers stay quiet.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: Seconds before expiry at which a cached token is replaced.
TOKEN_LEEWAY_S = 30
_UNAVAILABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.ProxyError)
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""A provider's answer about one subject is a few records (and a token endpoint's, one
token); a larger one is refused while it is read, so a broken or hostile provider cannot
fill the gateway's memory."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """The provider's answer, read whole (within MAX_ANSWER_BYTES)."""

    status_code: int
    content: bytes


class _ProviderTransport(httpx.AsyncBaseTransport):
    """httpx's transport, taking of each answer only what the connector can hold: as sent
    (no content coding) and at most MAX_ANSWER_BYTES, refused as soon as it is more.

    A compressed answer would be counted as it arrives but unpacked a whole chunk at a
    time, and a few kilobytes of gzip can unpack to gigabytes before any count. So none
    is asked for, and one sent all the same is refused unread.
    """

    def __init__(self, spec_id: str, verify: ssl.SSLContext | bool) -> None:
        self._spec_id = spec_id
        self._inner = httpx.AsyncHTTPTransport(verify=verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["accept-encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        coding = response.headers.get("content-encoding", "").strip().lower()
        compressed = coding not in ("", "identity")
        declared = response.headers.get("content-length", "")
        if compressed or (declared.isdigit() and int(declared) > MAX_ANSWER_BYTES):
            await response.aclose()
            raise self._refusal("is compressed" if compressed else None)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._refusal),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _refusal(self, problem: str | None = None) -> ConnectorResponseError:
        problem = problem or f"is larger than {MAX_ANSWER_BYTES} bytes"
        return ConnectorResponseError(f"{self._spec_id}: the provider's answer {problem}")


class _CappedStream(httpx.AsyncByteStream):
    """An answer's body that raises once more than MAX_ANSWER_BYTES have arrived."""

    def __init__(
        self,
        stream: httpx.SyncByteStream | httpx.AsyncByteStream,
        refusal: Callable[[], ConnectorResponseError],
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._refusal = refusal

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise self._refusal()
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class HttpConnector:
    """Fetches a dataset from the provider's REST API."""

    in_process = False

    def __init__(self, spec: DatasetSpec, var_dir: Path) -> None:
        if not isinstance(spec.connector, HttpConnectorConfig):
            raise TypeError("HttpConnector needs an http connector config")
        self.spec = spec
        self.config: HttpConnectorConfig = spec.connector
        self._verify = _tls(self.config, var_dir)
        self._timeout = httpx.Timeout(self.config.timeout_s)
        self._client: httpx.AsyncClient | None = None
        self._oauth: Any = None  # AsyncOAuth2Client, built once the secret is known
        self._token_lock = asyncio.Lock()
        self._token_fetches_ended = 0  # token requests answered or failed so far
        self._token_failure: ConnectorAuthError | None = None  # how the last one failed

    # -- public -------------------------------------------------------------------

    async def fetch(self, subject: Mapping[str, str]) -> list[dict[str, Any]]:
        lookups = subject_lookups(self.spec, subject)
        if not lookups:
            return []
        if self._verify is None:
            raise ConnectorUnavailable(
                f"{self.spec.id}: the CA bundle for the provider's TLS cannot be loaded"
            )
        parts = {part for key, _ in lookups for part in key}
        body = {"subject": {part: subject[part] for part in sorted(parts)}}
        response = await self._post(body)
        records = self._records(response)
        matching = [r for r in records if record_matches(self.spec, r, lookups)]
        if len(matching) < len(records):
            log.debug(
                "%s: dropped %d record(s) that do not match the subject",
                self.spec.id,
                len(records) - len(matching),
            )
        return matching

    async def aclose(self) -> None:
        client, self._client = self._client, None
        oauth, self._oauth = self._oauth, None
        if client is not None:
            await client.aclose()
        if oauth is not None:
            await oauth.aclose()

    # -- transport ----------------------------------------------------------------

    async def _post(self, body: dict[str, Any]) -> _Answer:
        # One deadline for the whole fetch, whatever it takes on the way.
        deadline = asyncio.get_running_loop().time() + self.config.timeout_s
        oauth = self.config.oauth2
        if oauth is None:
            return await self._send(self._plain_client(), body, deadline)
        # The token is checked (and renewed) under our lock and passed explicitly:
        # Authlib's own check inside ``request`` would otherwise renew it a second time.
        client, used = await self._authorised_client(oauth, deadline)
        response = await self._send(client, body, deadline, auth=client.token_auth)
        if response.status_code == httpx.codes.UNAUTHORIZED:
            # The token may have been revoked or expired early: one fresh try.
            client, _ = await self._authorised_client(oauth, deadline, rejected=used)
            response = await self._send(client, body, deadline, auth=client.token_auth)
            if response.status_code == httpx.codes.UNAUTHORIZED:
                raise ConnectorAuthError(f"{self.spec.id}: the provider refused the access token")
        return response

    async def _send(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        deadline: float,
        *,
        auth: httpx.Auth | None = None,
    ) -> _Answer:
        spec_id = self.spec.id
        try:
            async with (
                asyncio.timeout_at(deadline),
                client.stream(
                    "POST", self.config.url, json=body, auth=auth or httpx.USE_CLIENT_DEFAULT
                ) as response,
            ):
                return _Answer(response.status_code, await response.aread())
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ConnectorUnavailable(f"{spec_id}: the provider did not answer in time") from exc
        except _UNAVAILABLE as exc:
            raise ConnectorUnavailable(
                f"{spec_id}: the provider could not be reached ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectorResponseError(
                f"{spec_id}: the provider's answer broke the protocol ({type(exc).__name__})"
            ) from exc
        except ConnectorError:
            raise
        except Exception as exc:
            if auth is not None:  # Authlib could not apply the token (e.g. unsupported type)
                raise ConnectorAuthError(
                    f"{spec_id}: no access token could be obtained ({type(exc).__name__})"
                ) from exc
            raise ConnectorResponseError(
                f"{spec_id}: the request failed ({type(exc).__name__})"
            ) from exc

    def _transport(self) -> _ProviderTransport:
        assert self._verify is not None
        return _ProviderTransport(self.spec.id, self._verify)

    def _plain_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport(), trust_env=False
            )
        return self._client

    async def _authorised_client(
        self, oauth: OAuth2Config, deadline: float, *, rejected: str | None = None
    ) -> tuple[Any, str]:
        """The OAuth2 client with a usable token, and that token's value.

        A new token is fetched when there is none, when it is (nearly) expired, or when
        it is the one the provider just ``rejected`` (concurrent requests that were
        refused the same token renew it once). Waiting for another request's token
        fetch counts against this request's ``deadline``, and if that fetch fails, its
        failure is the answer of every request that waited for it.
        """
        ended = self._token_fetches_ended
        try:
            async with asyncio.timeout_at(deadline):
                await self._token_lock.acquire()
        except TimeoutError as exc:
            raise ConnectorAuthError(
                f"{self.spec.id}: the token endpoint did not answer in time"
            ) from exc
        try:
            failure = self._token_failure
            if failure is not None and self._token_fetches_ended != ended:
                raise ConnectorAuthError(failure.detail)
            if self._oauth is None:
                secret = os.environ.get(oauth.client_secret_env)
                if not secret:
                    raise ConnectorAuthError(
                        f"{self.spec.id}: client secret variable {oauth.client_secret_env} "
                        "is not set"
                    )
                self._oauth = AsyncOAuth2Client(
                    client_id=oauth.client_id,
                    client_secret=secret,
                    scope=oauth.scope,
                    token_endpoint=oauth.token_url,
                    grant_type="client_credentials",
                    leeway=TOKEN_LEEWAY_S,
                    timeout=self._timeout,
                    transport=self._transport(),
                    trust_env=False,
                )
            client = self._oauth
            token = client.token
            if (
                not token
                or token.is_expired(leeway=TOKEN_LEEWAY_S)
                or token.get("access_token") == rejected
            ):
                await self._fetch_token(client, oauth, deadline)
            return client, str(client.token["access_token"])
        finally:
            self._token_lock.release()

    async def _fetch_token(self, client: Any, oauth: OAuth2Config, deadline: float) -> None:
        failure = None  # also when cancelled: then those waiting try for themselves
        try:
            await self._request_token(client, oauth, deadline)
        except ConnectorAuthError as exc:
            failure = exc
            raise
        finally:
            self._token_failure = failure
            self._token_fetches_ended += 1

    async def _request_token(self, client: Any, oauth: OAuth2Config, deadline: float) -> None:
        spec_id = self.spec.id
        try:
            async with asyncio.timeout_at(deadline):
                token = await client.fetch_token(oauth.token_url, grant_type="client_credentials")
        except TimeoutError as exc:
            raise ConnectorAuthError(
                f"{spec_id}: the token endpoint did not answer in time"
            ) from exc
        except Exception as exc:
            client.token = None
            raise ConnectorAuthError(
                f"{spec_id}: no access token could be obtained ({type(exc).__name__})"
            ) from exc
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            client.token = None
            raise ConnectorAuthError(f"{spec_id}: the token endpoint answered without a token")

    # -- response -----------------------------------------------------------------

    def _records(self, answer: _Answer) -> list[dict[str, Any]]:
        spec_id = self.spec.id
        if not httpx.codes.is_success(answer.status_code):
            raise ConnectorResponseError(
                f"{spec_id}: the provider answered HTTP {answer.status_code}"
            )
        try:
            document = ijson.loads(answer.content)
        except ijson.RepeatedMemberName as exc:  # refused as a partner's body is
            raise ConnectorResponseError(
                f"{spec_id}: the provider's answer repeats a member name in an object"
            ) from exc
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, hostile nesting
            raise ConnectorResponseError(f"{spec_id}: the provider's answer is not JSON") from exc
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            raise ConnectorResponseError(f"{spec_id}: the provider's answer has no list of records")
        return [
            check_record(self.spec, record, f"record {number}: ")
            for number, record in enumerate(document["records"], start=1)
        ]


def _tls(config: HttpConnectorConfig, var_dir: Path) -> ssl.SSLContext | bool | None:
    """The trust anchors for the provider's TLS: the system store or a CA bundle.

    ``None`` when the configured CA bundle cannot be loaded: reported at fetch time,
    like an unreachable provider, so that the gateway still starts.
    """
    if isinstance(config.verify, bool):
        return config.verify
    try:
        return ssl.create_default_context(cafile=str(var_dir / config.verify))
    except (OSError, ssl.SSLError):
        return None
