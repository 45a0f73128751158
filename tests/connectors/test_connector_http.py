"""The http connector against a real local provider (uvicorn + Starlette in a thread)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.connectors import Catalog, http
from gateway.connectors.http import HttpConnector
from gateway.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorResponseError,
    ConnectorUnavailable,
)
from tests.connectors.connector_support import (
    BODY_MARKER,
    CLIENT_ID,
    CLIENT_SECRET,
    PROVIDER_RECORDS,
    SCOPE,
    Provider,
    closed_port,
    make_tls,
    partner_doc,
    running_provider,
    write_partners,
)

pytestmark = pytest.mark.anyio

SECRET_ENV = "DOELPOORT_TEST_PROVIDER_SECRET"
SUBJECT = {"bsn": "999900018"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def provider_server() -> Iterator[Provider]:
    with running_provider() as server:
        yield server


@pytest.fixture
def provider(provider_server: Provider) -> Provider:
    provider_server.state.reset()
    return provider_server


MakeConnector = Callable[..., Awaitable[HttpConnector]]


@pytest.fixture
async def make_connector(tmp_path: Path) -> AsyncIterator[MakeConnector]:
    """Builds an http dataset from connector settings; closes every catalog afterwards."""
    catalogs: list[Catalog] = []

    async def make(url: str, **settings: Any) -> HttpConnector:
        directory = tmp_path / f"connectors-{len(catalogs)}"
        if url.startswith("http://"):  # the local test provider: said so, as a catalog must
            settings.setdefault("allow_plain_http_loopback", True)
        doc = partner_doc(connector={"kind": "http", "url": url, **settings})
        catalog = Catalog.load(write_partners(directory, doc), tmp_path)
        catalogs.append(catalog)
        connector = catalog.connector("provider/records")
        assert isinstance(connector, HttpConnector)
        return connector

    yield make
    for catalog in catalogs:
        await catalog.aclose()


def _oauth(provider: Provider, **overrides: str) -> dict[str, str]:
    return {
        "token_url": f"{provider.base_url}/token",
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "scope": SCOPE,
        **overrides,
    }


def _expected(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "internal_note"}


def _assert_clean(error: ConnectorError) -> None:
    """Messages name the dataset and condition; never values, never the provider's body."""
    message = str(error)
    assert message.startswith("provider/records: ")
    assert BODY_MARKER not in message
    assert SUBJECT["bsn"] not in message
    assert CLIENT_SECRET not in message


# ---------------------------------------------------------------------------
# Success
# ---------------------------------------------------------------------------


async def test_fetches_checks_and_strips(provider: Provider, make_connector: MakeConnector) -> None:
    connector = await make_connector(f"{provider.base_url}/records")
    assert await connector.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
    found = await connector.fetch({"name": "Kim Fictief-9002", "date_of_birth": "1991-12-31"})
    assert found == [_expected(PROVIDER_RECORDS[1])]
    assert await connector.fetch({"bsn": "999900030"}) == []


async def test_sends_only_the_covered_identity_keys(
    provider: Provider, make_connector: MakeConnector
) -> None:
    connector = await make_connector(f"{provider.base_url}/records")
    await connector.fetch({"bsn": "999900018", "passport_no": "XX0000001", "name": "Sam"})
    assert provider.state.subjects_seen == [{"bsn": "999900018"}]


async def test_records_that_do_not_match_the_subject_are_dropped(
    provider: Provider, make_connector: MakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    # The provider answers with every record it has: only the subject's may leave.
    connector = await make_connector(f"{provider.base_url}/everyone")
    with caplog.at_level(logging.DEBUG, logger="doelpoort.connectors.http"):
        assert await connector.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
    assert "provider/records: dropped 1 record(s) that do not match the subject" in caplog.text
    for value in ("999900031", "Kim Fictief-9002", "1991-12-31", SUBJECT["bsn"]):
        assert value not in caplog.text
    compound = {"name": "kim  FICTIEF-9002", "date_of_birth": "1991-12-31"}  # normalised
    assert await connector.fetch(compound) == [_expected(PROVIDER_RECORDS[1])]
    assert await connector.fetch({"bsn": "999900030"}) == []


async def test_a_record_must_agree_with_every_covered_key(
    provider: Provider, make_connector: MakeConnector
) -> None:
    # The provider matches on any one key, so keys of two people get both records back.
    connector = await make_connector(f"{provider.base_url}/records")
    two_people = {"bsn": "999900018", "name": "Kim Fictief-9002", "date_of_birth": "1991-12-31"}
    assert await connector.fetch(two_people) == []
    assert len(provider.state.subjects_seen) == 1
    one_person = {"bsn": "999900018", "name": "Sam Fictief-9001", "date_of_birth": "1980-04-01"}
    assert await connector.fetch(one_person) == [_expected(PROVIDER_RECORDS[0])]


async def test_no_covered_key_asks_nothing(
    provider: Provider, make_connector: MakeConnector
) -> None:
    connector = await make_connector(f"{provider.base_url}/records")
    assert await connector.fetch({"name": "Sam Fictief-9001"}) == []
    assert provider.state.subjects_seen == []


# ---------------------------------------------------------------------------
# OAuth2 client credentials
# ---------------------------------------------------------------------------


async def test_oauth2_token_is_fetched_once_and_reused(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    for _ in range(3):
        assert await connector.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
    assert provider.state.tokens_issued == 1
    assert provider.state.token_requests == [{"grant_type": "client_credentials", "scope": SCOPE}]


async def test_oauth2_token_is_renewed_when_expired(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    provider.state.expires_in = 5  # inside the renewal margin: expired on arrival
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    for _ in range(2):
        assert await connector.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
    assert provider.state.tokens_issued == 2


async def test_oauth2_token_is_renewed_once_when_rejected(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    assert await connector.fetch(SUBJECT)
    provider.state.valid_tokens.clear()  # the provider revokes every token
    assert await connector.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
    assert provider.state.tokens_issued == 2


async def test_wrong_client_secret_is_an_auth_error(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "wrong-secret")
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    with pytest.raises(ConnectorAuthError, match="no access token") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)
    assert "wrong-secret" not in str(caught.value)
    assert provider.state.subjects_seen == []


async def test_missing_client_secret_is_an_auth_error(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    with pytest.raises(ConnectorAuthError, match=f"{SECRET_ENV} is not set"):
        await connector.fetch(SUBJECT)


async def test_unreachable_token_endpoint_is_an_auth_error(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    token_url = f"http://127.0.0.1:{closed_port()}/token"
    connector = await make_connector(
        f"{provider.base_url}/secure/records", oauth2=_oauth(provider, token_url=token_url)
    )
    with pytest.raises(ConnectorAuthError, match="no access token"):
        await connector.fetch(SUBJECT)


async def test_token_refused_by_the_provider_is_an_auth_error(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    connector = await make_connector(f"{provider.base_url}/secure/refuses", oauth2=_oauth(provider))
    with pytest.raises(ConnectorAuthError, match="refused the access token") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)
    assert provider.state.tokens_issued == 2  # renewed once, then given up


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        pytest.param("/fails", "answered HTTP 500", id="status-500"),
        pytest.param("/nothing-here", "answered HTTP 404", id="status-404"),
        pytest.param("/not-json", "is not JSON", id="not-json"),
        pytest.param("/wrong-shape", "has no list of records", id="wrong-shape"),
        pytest.param("/record-not-object", "record 1: a record is not", id="record-not-object"),
        pytest.param("/wrong-type", "record 1: field 'score' is not a valid integer", id="type"),
        # I-JSON, as for partners' bodies: parsers disagree on which value counts.
        pytest.param("/repeated-records", "repeats a member name", id="repeated-records"),
        pytest.param("/repeated-field", "repeats a member name", id="repeated-field"),
    ],
)
async def test_bad_answers_are_response_errors(
    provider: Provider, make_connector: MakeConnector, path: str, problem: str
) -> None:
    connector = await make_connector(f"{provider.base_url}{path}")
    with pytest.raises(ConnectorResponseError, match=problem) as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)


@pytest.mark.parametrize("path", ["/repeated-records", "/repeated-field"])
async def test_a_repeated_member_name_is_logged_without_values(
    provider: Provider, make_connector: MakeConnector, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = await make_connector(f"{provider.base_url}{path}")
    with pytest.raises(ConnectorResponseError) as caught:
        await connector.fetch(SUBJECT)
    assert str(caught.value) == (
        "provider/records: the provider's answer repeats a member name in an object"
    )
    for value in (BODY_MARKER, SUBJECT["bsn"], "Fictief"):
        assert value not in caplog.text


@pytest.mark.parametrize("query", ["", "?streamed=1"], ids=["declared", "streamed"])
async def test_an_answer_over_the_size_limit_is_refused_while_read(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 1024)
    connector = await make_connector(f"{provider.base_url}/large{query}")
    with pytest.raises(ConnectorResponseError, match="larger than 1024 bytes") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)


async def test_the_connector_asks_for_uncompressed_answers(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=_oauth(provider))
    assert await connector.fetch(SUBJECT)
    assert provider.state.accept_encodings == ["identity", "identity"]  # token, records


async def test_a_compressed_answer_is_refused_unread(
    provider: Provider, make_connector: MakeConnector
) -> None:
    # The size limit counts what arrives; a compressed answer could unpack to gigabytes
    # within one chunk before any count. So none is unpacked, however small.
    connector = await make_connector(f"{provider.base_url}/compressed")
    with pytest.raises(ConnectorResponseError, match="compressed") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)


async def test_a_token_answer_over_the_size_limit_is_refused(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 1024)
    oauth = _oauth(provider, token_url=f"{provider.base_url}/token/padded")
    connector = await make_connector(f"{provider.base_url}/secure/records", oauth2=oauth)
    with pytest.raises(ConnectorAuthError, match="no access token") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)
    assert provider.state.subjects_seen == []


async def test_requests_waiting_for_a_hanging_token_endpoint_share_one_deadline(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    oauth = _oauth(provider, token_url=f"{provider.base_url}/token/slow")
    connector = await make_connector(
        f"{provider.base_url}/secure/records", oauth2=oauth, timeout_s=0.3
    )
    results = await asyncio.gather(
        *(connector.fetch(SUBJECT) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectorAuthError) for r in results), results
    # Each waited for the one token request under way, not for a token request of its
    # own after it (which made the fifth wait five timeouts).
    assert len(provider.state.token_requests) == 1


async def test_the_providers_words_never_reach_the_log(
    provider: Provider, make_connector: MakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    # httpx logs each status line at INFO and httpcore every header at DEBUG.
    caplog.set_level(logging.DEBUG)
    connector = await make_connector(f"{provider.base_url}/fails/marked-header")
    with pytest.raises(ConnectorResponseError, match="answered HTTP 500"):
        await connector.fetch(SUBJECT)
    assert BODY_MARKER not in caplog.text
    assert not [r for r in caplog.records if r.name.split(".")[0] in ("httpx", "httpcore")]


async def test_timeout_is_unavailable(provider: Provider, make_connector: MakeConnector) -> None:
    connector = await make_connector(f"{provider.base_url}/slow", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(ConnectorUnavailable, match="did not answer in time") as caught:
        await connector.fetch(SUBJECT)
    assert time.monotonic() - started < 0.9
    _assert_clean(caught.value)


async def test_connection_refused_is_unavailable(make_connector: MakeConnector) -> None:
    connector = await make_connector(f"http://127.0.0.1:{closed_port()}/records")
    with pytest.raises(ConnectorUnavailable, match="could not be reached") as caught:
        await connector.fetch(SUBJECT)
    _assert_clean(caught.value)


async def test_unloadable_ca_bundle_is_unavailable(
    provider: Provider, make_connector: MakeConnector
) -> None:
    connector = await make_connector("https://127.0.0.1:9/records", verify="pki/absent-ca.pem")
    with pytest.raises(ConnectorUnavailable, match="CA bundle"):
        await connector.fetch(SUBJECT)


async def test_tls_to_a_plain_http_server_is_unavailable(
    provider: Provider, make_connector: MakeConnector
) -> None:
    url = provider.base_url.replace("http://", "https://") + "/records"
    connector = await make_connector(url)
    with pytest.raises(ConnectorUnavailable, match="could not be reached"):
        await connector.fetch(SUBJECT)


async def test_tls_with_the_providers_ca_bundle(
    tmp_path: Path, make_connector: MakeConnector
) -> None:
    ca, cert, key = make_tls(tmp_path / "pki")
    with running_provider(tls=(cert, key)) as server:
        bundle = ca.relative_to(tmp_path).as_posix()  # relative to var/
        trusted = await make_connector(f"{server.base_url}/records", verify=bundle)
        assert await trusted.fetch(SUBJECT) == [_expected(PROVIDER_RECORDS[0])]
        untrusted = await make_connector(f"{server.base_url}/records")  # system store
        with pytest.raises(ConnectorUnavailable, match="could not be reached"):
            await untrusted.fetch(SUBJECT)
        await trusted.aclose()
        await untrusted.aclose()


# ---------------------------------------------------------------------------
# Every ConnectorError subclass is reachable
# ---------------------------------------------------------------------------


async def test_every_connector_error_is_reachable(
    provider: Provider, make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "wrong-secret")
    scenarios: dict[type[ConnectorError], HttpConnector] = {
        ConnectorUnavailable: await make_connector(f"http://127.0.0.1:{closed_port()}/records"),
        ConnectorAuthError: await make_connector(
            f"{provider.base_url}/secure/records", oauth2=_oauth(provider)
        ),
        ConnectorResponseError: await make_connector(f"{provider.base_url}/fails"),
    }
    assert set(scenarios) == set(ConnectorError.__subclasses__())
    for error_class, connector in scenarios.items():
        with pytest.raises(ConnectorError) as caught:
            await connector.fetch(SUBJECT)
        assert type(caught.value) is error_class
        assert caught.value.__cause__ is not None or error_class is ConnectorResponseError
