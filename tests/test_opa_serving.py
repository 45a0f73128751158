"""A gateway with DOELPOORT_POLICY_ENGINE=opa answers over mTLS as the embedded one does.

The OPA server is `tests.opa_standin.OpaStandIn` (no OPA binary can be installed here),
serving the bundle ``doelpoort policy bundle`` writes of the demo policies. Everything
else is the real gateway: mTLS, connectors, minimisation, signing, the audit log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway._cli import app
from gateway.dev.bootstrap import bootstrap
from gateway.errors import ConfigurationError
from gateway.runtime import Runtime
from tests.gateway_support import Deployment, copy_tree, make_settings, running_gateway
from tests.opa_standin import OpaStandIn

runner = CliRunner()

REQUEST: dict[str, Any] = {
    "purpose": "ct-assessment",
    "case_ref": "CTI-2026-0042",
    "justification": "test: necessary and proportionate",
}


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("opa") / "policy.tar.gz"
    result = runner.invoke(app, ["policy", "bundle", "--output", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def opa(bundle_file: Path) -> Iterator[OpaStandIn]:
    with OpaStandIn(bundle_file) as server:
        yield server


@pytest.fixture(scope="module")
def opa_gateway(opa: OpaStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    settings = make_settings(tmp_path_factory.mktemp("var")).replace(
        policy_engine="opa", opa_url=opa.url
    )
    with running_gateway(settings) as deployment:
        yield deployment


def answer(gateway: Deployment) -> dict[str, Any]:
    body = {**REQUEST, "subject": gateway.subjects["ct_subject"]}
    response = gateway.disclose("politie", body)
    assert response.status_code == 200, response.text
    disclosure: dict[str, Any] = response.json()["disclosure"]
    return disclosure


def test_a_disclosure_through_opa_is_the_embedded_engines(
    opa: OpaStandIn, opa_gateway: Deployment, gateway: Deployment
) -> None:
    asked = opa.requests
    remote, embedded = answer(opa_gateway), answer(gateway)
    assert opa.requests > asked  # the OPA server decided
    assert remote["policy_digest"] == embedded["policy_digest"] == opa.revision

    def shape(disclosure: dict[str, Any]) -> list[tuple[Any, ...]]:
        # Pseudonyms differ between deployments (each its own master key); the rest not.
        return [
            (
                r["dataset"],
                r["decision"],
                r.get("field_ops"),
                r.get("reasons"),
                [sorted(record) for record in r.get("records", [])],
            )
            for r in disclosure["results"]
        ]

    assert shape(remote) == shape(embedded)
    assert all(r["decision"] == "allow" and r["records"] for r in remote["results"])
    # A purpose the bank is not granted: the same refusal from both.
    body = {**REQUEST, "subject": gateway.subjects["ct_subject"]}
    refusals = [g.disclose("voorbeeldbank", body) for g in (opa_gateway, gateway)]
    assert [r.status_code for r in refusals] == [403, 403]
    assert refusals[0].json()["type"] == refusals[1].json()["type"]


def test_readiness_follows_the_opa_server(opa: OpaStandIn, opa_gateway: Deployment) -> None:
    with opa_gateway.ops_client() as client:
        assert client.get("/readyz").json()["checks"]["policy_engine"] is True
        opa.reply = (503, "application/json", b"{}")
        try:
            body = {**REQUEST, "subject": opa_gateway.subjects["ct_subject"]}
            response = opa_gateway.disclose("politie", body)
            assert response.status_code == 503  # fail closed: nothing disclosed
            assert "records" not in response.text
        finally:
            opa.reply = None
        assert client.get("/readyz").json()["checks"]["policy_engine"] is False
        for _ in range(100):  # the not-ready check has started a revision check
            if client.get("/readyz").json()["checks"]["policy_engine"]:
                break
            time.sleep(0.05)
        assert client.get("/readyz").json()["checks"]["policy_engine"] is True
    assert "the OPA server answered HTTP 503" in "\n".join(opa_gateway.log.lines)


def test_a_gateway_whose_opa_serves_other_policies_does_not_start(
    opa: OpaStandIn, tmp_path: Path
) -> None:
    policies = copy_tree("policies", tmp_path)
    deny = policies / "doelpoort" / "deny.rego"
    deny.write_text(deny.read_text() + "\n# changed after the bundle was written\n")
    settings = make_settings(tmp_path / "var", policies_dir=policies).replace(
        policy_engine="opa", opa_url=opa.url
    )
    bootstrap(settings, echo=lambda _line: None)
    with pytest.raises(ConfigurationError, match=f"serves revision {opa.revision}, not this"):
        asyncio.run(Runtime.start(settings))


def test_the_opa_engine_needs_a_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var").replace(policy_engine="opa")
    bootstrap(settings, echo=lambda _line: None)
    with pytest.raises(ConfigurationError, match="needs DOELPOORT_OPA_URL"):
        asyncio.run(Runtime.start(settings))
