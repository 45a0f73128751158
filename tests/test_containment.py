"""Faults inside the pipeline: nothing leaks, nothing is released, everything is logged.

Three test doubles stand in for bugs that cannot be produced on purpose with the real
parts: ``ExplodingConnector`` (a provider connector with a bug whose exception message
quotes the subject's BSN), ``CancellingConnector`` (a remote connector whose client
raises CancelledError) and ``FailingSigner`` (a signing key that stops working after
the audit entries were committed). Everything else is the real gateway over real mTLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gateway.dev.pki import revoke
from gateway.signing import Receipt
from tests.gateway_support import Deployment, make_settings, running_gateway


class ExplodingConnector:
    """Test double: a connector with a bug that puts an identifier in its message."""

    in_process = True

    async def fetch(self, subject: Mapping[str, str]) -> list[dict[str, Any]]:
        raise KeyError(subject["bsn"])

    async def aclose(self) -> None:
        return None


class CancellingConnector:
    """Test double: a remote connector whose client cancels itself mid-request."""

    in_process = False

    async def fetch(self, subject: Mapping[str, str]) -> list[dict[str, Any]]:
        raise asyncio.CancelledError()

    async def aclose(self) -> None:
        return None


class FailingSigner:
    """Test double: a receipt key that fails once the decisions are already logged."""

    kid = "failing"

    def sign_disclosure(self, disclosure: Mapping[str, Any]) -> Receipt:
        raise RuntimeError("signing device unavailable")

    def jwks(self) -> dict[str, Any]:
        return {"keys": []}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_gateway(make_settings(tmp_path_factory.mktemp("var"))) as deployment:
        yield deployment


def ct_request(gw: Deployment) -> dict[str, Any]:
    return {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0500",
        "justification": "containment test",
        "subject": gw.subjects["ct_subject"],
        "datasets": ["ind/residence", "kmar/border-crossings"],
    }


def entries(gw: Deployment, disclosure_id: str | None = None) -> list[dict[str, Any]]:
    import json

    with sqlite3.connect(gw.settings.audit_db_path) as db:
        rows = db.execute("SELECT body FROM entries ORDER BY seq").fetchall()
    bodies = [json.loads(body) for (body,) in rows]
    if disclosure_id is None:
        return bodies
    return [b for b in bodies if b["disclosure_id"] == disclosure_id]


@pytest.mark.parametrize(
    ("double", "raised"),
    [
        (ExplodingConnector, "KeyError"),
        # Raised past the per-dataset handler, through gather(return_exceptions=True):
        # it must not become an "allow" with no records, which would tell the police
        # that the subject is unknown to the IND.
        (CancellingConnector, "CancelledError"),
    ],
)
def test_a_failing_connector_withholds_its_dataset_and_leaks_nothing(
    gw: Deployment, double: type, raised: str
) -> None:
    catalog = gw.runtime.catalog
    original = catalog.connector("ind/residence")
    catalog._connectors["ind/residence"] = double()
    try:
        response = gw.disclose("politie", ct_request(gw))
    finally:
        catalog._connectors["ind/residence"] = original
    assert response.status_code == 200, response.text
    results = {r["dataset"]: r for r in response.json()["disclosure"]["results"]}
    assert results["ind/residence"]["decision"] == "error"
    assert "records" not in results["ind/residence"]
    assert results["kmar/border-crossings"]["decision"] == "allow"
    logged = entries(gw, response.json()["disclosure"]["id"])
    assert sorted(e["decision"] for e in logged) == ["allow", "error"]
    bsn = gw.subjects["ct_subject"]["bsn"]
    assert not [line for line in gw.log.lines if bsn in line]
    assert any(f"unexpected {raised}" in line for line in gw.log.lines)


def test_a_signing_failure_after_the_commit_is_withdrawn_in_the_log(gw: Deployment) -> None:
    service = gw.runtime.disclosures
    signer = service.signer
    service.signer = FailingSigner()  # type: ignore[assignment]
    try:
        response = gw.disclose("politie", ct_request(gw))
    finally:
        service.signer = signer
    assert response.status_code == 503
    assert response.json()["type"] == "urn:doelpoort:problem:signing-unavailable"
    assert "records" not in response.text
    # The allows were logged before signing; each is followed by an entry withdrawing it.
    last = entries(gw)[-4:]
    assert [e["decision"] for e in last] == ["allow", "allow", "error", "error"]
    assert all(e["error"] == "signing-unavailable" for e in last[2:])
    assert all("nothing was released" in " ".join(e["reasons"]) for e in last[2:])
    assert not [line for line in gw.log.lines if "signing device" in line]


def test_oversized_request_head_is_431(gw: Deployment) -> None:
    context = gw.ssl_context(gw.paths.partner_cert("politie"), gw.paths.partner_key("politie"))
    with (
        socket.create_connection(("127.0.0.1", gw.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100_000 + b"\r\n\r\n"
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.sendall(head)  # the server may close before all of it is sent
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431")
    assert b"urn:doelpoort:problem:headers-too-large" in answer
    with gw.client("politie") as client:
        assert client.get("/healthz").status_code == 200


def test_side_endpoints_need_a_known_unrevoked_peer(tmp_path: Path) -> None:
    with running_gateway(make_settings(tmp_path / "var")) as gw:
        with gw.dpo_client() as dpo:
            assert dpo.get("/openapi.json").status_code == 200
        revoke(gw.settings.pki_dir, "om")
        with gw.client("om") as client:
            for path in ("/openapi.json", "/.well-known/jwks.json"):
                assert client.get(path).status_code == 401, path
            assert client.get("/healthz").status_code == 200
            assert client.get("/docs").status_code == 404
