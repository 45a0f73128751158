"""Least privilege on the side doors: the operations listener and the partners' one.

``/metrics`` shows every partner's activity: no partner gets it over mutual TLS, and the
operations listener serves it only to clients on the gateway's own host. ``/healthz``,
``/readyz`` and the JWKS need no client certificate there. ``doelpoort receipt jwks``
exports the JWKS without a running gateway. All over real sockets.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from gateway._cli import app as cli
from gateway.ops import from_this_host
from tests.gateway_support import (
    Deployment,
    make_settings,
    running_gateway,
    verify_with_plain_cryptography,
)

runner = CliRunner()


def disclosure_request(gateway: Deployment) -> dict[str, Any]:
    return {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": gateway.subjects["ct_subject"],
    }


def test_no_partner_gets_metrics_on_the_mutual_tls_listener(gateway: Deployment) -> None:
    # The attack: any partner read every partner's request and decision counts.
    gateway.disclose("politie", disclosure_request(gateway))
    for client in (gateway.client("voorbeeldbank"), gateway.client("politie")):
        with client:
            response = client.get("/metrics")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "doelpoort_requests" not in response.text
    with gateway.dpo_client() as dpo:  # the DPO is no operator either
        assert dpo.get("/metrics").status_code == 404


def test_the_ops_listener_needs_no_client_certificate(gateway: Deployment) -> None:
    with gateway.ops_client() as ops:
        assert ops.get("/healthz").json() == {"status": "ok"}
        ready = ops.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"policy_engine": True, "audit_store": True}
        public = ops.get("/.well-known/jwks.json")
        assert public.status_code == 200
    with gateway.client("politie") as client:  # the same keys partners are shown
        assert client.get("/.well-known/jwks.json").json() == public.json()
    for key in public.json()["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}  # never "d"


def test_the_ops_listener_gives_metrics_to_this_host(gateway: Deployment) -> None:
    gateway.disclose("politie", disclosure_request(gateway))
    with gateway.ops_client() as ops:
        response = ops.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'doelpoort_requests_total{route="/v1/disclosures",status="200"}' in response.text


def test_the_ops_listener_serves_nothing_else(gateway: Deployment) -> None:
    with gateway.ops_client() as ops:
        for path in ("/v1/disclosures", "/openapi.json", "/docs", "/metrics/"):
            response = ops.get(path)
            assert response.status_code == 404, path
            assert response.json()["type"] == "urn:doelpoort:problem:not-found"
        disclosure = ops.post("/v1/disclosures", json=disclosure_request(gateway))
        assert disclosure.status_code == 404
        assert ops.post("/metrics").status_code == 405
        # No forwarded header makes a client local, nor the app read one.
        assert ops.get("/metrics", headers={"x-forwarded-for": "10.0.0.1"}).status_code == 200


def _external_address() -> str | None:
    """An address of this host that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    parsed = ipaddress.ip_address(address)
    return None if parsed.is_loopback or parsed.is_unspecified else address


@pytest.fixture(scope="module")
def open_ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    """A gateway whose operations listener binds every address (for a load balancer)."""
    external = _external_address()
    if external is None:
        pytest.skip("this host has no address but loopback")
    every_address = "0.0.0.0"  # noqa: S104 - the point: as a load balancer must reach it
    settings = make_settings(tmp_path_factory.mktemp("ops") / "var").replace(ops_host=every_address)
    with running_gateway(settings) as gw:
        yield gw, external


def test_metrics_are_refused_to_a_client_on_another_address(
    open_ops: tuple[Deployment, str],
) -> None:
    gw, external = open_ops
    # From the host's own network address, not loopback: as another machine would be.
    transport = httpx.HTTPTransport(local_address=external)
    with httpx.Client(transport=transport, timeout=10.0) as remote:
        base = f"http://{external}:{gw.ops_port}"
        assert remote.get(f"{base}/healthz").status_code == 200  # a load balancer's check
        assert remote.get(f"{base}/readyz").status_code == 200
        assert remote.get(f"{base}/.well-known/jwks.json").status_code == 200
        refused = remote.get(f"{base}/metrics")
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:doelpoort:problem:operators-only"
    assert "doelpoort_" not in refused.text
    with gw.ops_client() as local:
        assert local.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("client", "local"),
    [
        (("127.0.0.1", 1), True),
        (("127.9.8.7", 1), True),
        (("::1", 1), True),
        (("::ffff:127.0.0.1", 1), True),  # a dual-stack listener's view of 127.0.0.1
        (("10.0.0.1", 1), False),
        (("::ffff:10.0.0.1", 1), False),
        (("192.0.2.2", 1), False),
        (("localhost", 1), False),  # an address, never a name
        (None, False),
    ],
)
def test_from_this_host(client: tuple[str, int] | None, local: bool) -> None:
    assert from_this_host(client) is local


def test_receipt_jwks_exports_keys_that_verify_a_real_receipt(
    gateway: Deployment, tmp_path: Path
) -> None:
    receipt = gateway.disclose("politie", disclosure_request(gateway)).json()
    var_dir = str(gateway.settings.var_dir)
    out = tmp_path / "jwks.json"

    written = runner.invoke(cli, ["receipt", "jwks", "--var-dir", var_dir, "-o", str(out)])
    assert written.exit_code == 0, written.output
    printed = runner.invoke(cli, ["receipt", "jwks", "--var-dir", var_dir])
    assert printed.exit_code == 0, printed.output
    exported = json.loads(out.read_text("utf-8"))
    assert json.loads(printed.stdout) == exported
    with gateway.ops_client() as ops:
        assert exported == ops.get("/.well-known/jwks.json").json()

    # As a court would: a standard JOSE library, the exported file, nothing of ours.
    keys = KeySet.import_key_set(exported)
    with warnings.catch_warnings():
        # joserfc's note that RFC 9864 names the algorithm Ed25519 now (gateway/signing.py)
        warnings.simplefilter("ignore", SecurityWarning)
        token = jws.deserialize_compact(receipt["jws"], keys, algorithms=["EdDSA"])
    assert json.loads(token.payload) == receipt["disclosure"]
    assert verify_with_plain_cryptography(receipt["jws"], exported) == receipt["disclosure"]
    assert all("d" not in key for key in exported["keys"])


def test_receipt_jwks_without_keys_says_so(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["receipt", "jwks", "--var-dir", str(tmp_path / "var")])
    assert result.exit_code == 1
    assert "receipt signing key" in result.output
    assert "Traceback" not in result.output
