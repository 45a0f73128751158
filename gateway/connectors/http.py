"""The ``http`` connector: the provider's own REST API.

``POST <url>`` with ``{"subject": {...}}`` — only the identity keys of this dataset that
the subject covers, nothing more — answered by ``200 {"records": [...]}``. Optionally
OAuth2 client credentials (Authlib): the token is fetched on first use, cached, and
fetched again shortly before it expires or when the provider rejects it.

Failures map onto the connector errors:

- connection refused, network error, timeout → :class:`ConnectorUnavailable`
- token could not be obtained, or refused twice → :class:`ConnectorAuthError`
- non-2xx, not JSON, wrong shape or field types → :class:`ConnectorResponseError`

The provider is not trusted to match: every record it returns is checked, and only those
that agree with every identity key the subject covers are kept
(:func:`~gateway.connectors.base.record_matches`); others are dropped as extra candidates
(their number is logged at debug level, never their values).

Messages name the dataset and the condition only; neither subject values nor the
provider's response body ever appear in them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authlib.deprecate
import httpx

from gateway.connectors.base import check_record, record_matches, subject_lookups
from gateway.connectors.catalog import DatasetSpec, HttpConnectorConfig, OAuth2Config
from gateway.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorResponseError,
    ConnectorUnavailable,
)

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

#: Seconds before expiry at which a cached token is replaced.
TOKEN_LEEWAY_S = 30
_UNAVAILABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.ProxyError)
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""A provider's answer about one subject is a few records; a larger one is refused while it
is read, so a broken or hostile provider cannot fill the gateway's memory."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """The provider's answer, read whole (within MAX_ANSWER_BYTES)."""

    status_code: int
    content: bytes


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
        oauth = self.config.oauth2
        if oauth is None:
            return await self._send(self._plain_client(), body)
        # The token is checked (and renewed) under our lock and passed explicitly:
        # Authlib's own check inside ``request`` would otherwise renew it a second time.
        client, used = await self._authorised_client(oauth)
        response = await self._send(client, body, auth=client.token_auth)
        if response.status_code == httpx.codes.UNAUTHORIZED:
            # The token may have been revoked or expired early: one fresh try.
            client, _ = await self._authorised_client(oauth, rejected=used)
            response = await self._send(client, body, auth=client.token_auth)
            if response.status_code == httpx.codes.UNAUTHORIZED:
                raise ConnectorAuthError(f"{self.spec.id}: the provider refused the access token")
        return response

    async def _send(
        self, client: httpx.AsyncClient, body: dict[str, Any], *, auth: httpx.Auth | None = None
    ) -> _Answer:
        spec_id = self.spec.id
        try:
            async with (
                asyncio.timeout(self.config.timeout_s),
                client.stream(
                    "POST", self.config.url, json=body, auth=auth or httpx.USE_CLIENT_DEFAULT
                ) as response,
            ):
                return _Answer(response.status_code, await self._read_capped(response))
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

    def _plain_client(self) -> httpx.AsyncClient:
        assert self._verify is not None
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, verify=self._verify, trust_env=False
            )
        return self._client

    async def _authorised_client(
        self, oauth: OAuth2Config, *, rejected: str | None = None
    ) -> tuple[Any, str]:
        """The OAuth2 client with a usable token, and that token's value.

        A new token is fetched when there is none, when it is (nearly) expired, or when
        it is the one the provider just ``rejected`` (concurrent requests that were
        refused the same token renew it once).
        """
        async with self._token_lock:
            if self._oauth is None:
                assert self._verify is not None
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
                    verify=self._verify,
                    trust_env=False,
                )
            client = self._oauth
            token = client.token
            if (
                not token
                or token.is_expired(leeway=TOKEN_LEEWAY_S)
                or token.get("access_token") == rejected
            ):
                await self._fetch_token(client, oauth)
            return client, str(client.token["access_token"])

    async def _fetch_token(self, client: Any, oauth: OAuth2Config) -> None:
        spec_id = self.spec.id
        try:
            async with asyncio.timeout(self.config.timeout_s):
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

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The answer's body, refused once it passes MAX_ANSWER_BYTES (declared or read)."""
        too_large = ConnectorResponseError(
            f"{self.spec.id}: the provider's answer is larger than {MAX_ANSWER_BYTES} bytes"
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _records(self, answer: _Answer) -> list[dict[str, Any]]:
        spec_id = self.spec.id
        if not httpx.codes.is_success(answer.status_code):
            raise ConnectorResponseError(
                f"{spec_id}: the provider answered HTTP {answer.status_code}"
            )
        try:
            document = json.loads(answer.content)
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
