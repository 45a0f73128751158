"""OpaEngine: the same decisions as the embedded engine, through an OPA server's Data API.

No OPA binary can be installed here, so the server is `tests.opa_standin.OpaStandIn`: a
real HTTP server on a real socket that loads the very bundle ``write_bundle`` writes and
evaluates it with regopy. What these tests show is the engine's side: the exchange, the
revision checks, and that every failure fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.connectors.catalog import Catalog
from gateway.errors import (
    ConfigurationError,
    DoelpoortError,
    PolicyEvaluationError,
    PolicyUnavailable,
)
from gateway.policy import Decision, EmbeddedEngine, build_policy_input, dataset_input
from gateway.policy.bundle import PolicyBundle
from gateway.policy.evaluator import UNDEFINED
from gateway.policy.opa import OpaEngine
from gateway.policy.opa_bundle import write_bundle
from gateway.policy.probe import probe_inputs
from tests.opa_standin import OpaStandIn
from tests.policy.policy_support import (
    CONNECTORS,
    NOW,
    REPO,
    decider,
    policy_input,
    real_bundle,
)
from tests.policy.test_policy_engine import ALLOW, custom_bundle

T = TypeVar("T")

ASK = policy_input("aivd", "ct-assessment", "ind/residence")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(CONNECTORS, REPO / "var")


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("opa") / "policy.tar.gz"
    write_bundle(real_bundle(), path)
    return path


@pytest.fixture
def opa(bundle_file: Path) -> Iterator[OpaStandIn]:
    with OpaStandIn(bundle_file) as server:
        yield server


def with_engine(
    bundle: PolicyBundle,
    url: str,
    use: Callable[[OpaEngine], Awaitable[T]],
    *,
    timeout_s: float = 5.0,
) -> T:
    async def run() -> T:
        engine = await OpaEngine.connect(bundle, url, timeout_s=timeout_s)
        try:
            return await use(engine)
        finally:
            await engine.aclose()

    return asyncio.run(run())


def bundle_served(tmp_path: Path, rego: str) -> tuple[PolicyBundle, Path]:
    bundle = custom_bundle(tmp_path, rego)
    write_bundle(bundle, tmp_path / "custom.tar.gz")
    return bundle, tmp_path / "custom.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- start-up ---------------------------------------------------------------------------


def test_it_decides_through_the_server(opa: OpaStandIn) -> None:
    decision = with_engine(real_bundle(), opa.url, lambda e: e.decide(ASK))
    assert decision.allow
    assert decision.policy_digest == real_bundle().digest
    assert decision.field_ops["name"] == "pseudonymise"


def test_connections_are_reused(opa: OpaStandIn) -> None:
    async def many(engine: OpaEngine) -> None:
        for _ in range(20):
            await engine.decide(ASK)

    connections: list[int] = []
    original = OpaStandIn._data

    async def counting(self: OpaStandIn, request: Any) -> Any:
        connections.append(request.client.port)
        return await original(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OpaStandIn, "_data", counting)
        with OpaStandIn(opa.bundle_path) as server:
            with_engine(real_bundle(), server.url, many)
    # 21 exchanges (the revision check and 20 decisions), one client port: one connection.
    assert len(connections) == 21
    assert len(set(connections)) == 1


def test_a_server_serving_another_revision_stops_start_up(opa: OpaStandIn, tmp_path: Path) -> None:
    other, _ = bundle_served(tmp_path, ALLOW % '{"bsn": "mask:2"}')
    with pytest.raises(ConfigurationError) as caught:
        with_engine(other, opa.url, lambda e: e.decide(ASK))
    assert caught.value.detail == (
        f"the OPA server at {opa.url} serves revision {real_bundle().digest}, not this"
        f" gateway's policy set {other.digest}: load it the bundle `doelpoort policy bundle`"
        " writes of these policies"
    )


def test_an_unreachable_server_stops_start_up() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigurationError, match=r"gave no bundle revisions \(Client"):
        with_engine(real_bundle(), url, lambda e: e.decide(ASK))


def test_the_probe_runs_through_the_server(
    opa: OpaStandIn, tmp_path: Path, catalog: Catalog
) -> None:
    inputs = probe_inputs(real_bundle().register, catalog, NOW)
    with_engine(real_bundle(), opa.url, lambda e: e.probe(inputs))
    broken, path = bundle_served(tmp_path, ALLOW % '{"no_such_field": "keep"}')
    opa.load(path)
    with pytest.raises(ConfigurationError) as caught:
        with_engine(broken, opa.url, lambda e: e.probe(inputs))
    assert caught.value.detail == (
        "the policy gives no valid decision for a probe input (aivd asking ct-assessment for"
        " ind/residence): decision.field_ops names field 'no_such_field', not in the dataset"
    )


# -- fail closed ------------------------------------------------------------------------


def test_a_server_that_goes_down_fails_closed(bundle_file: Path) -> None:
    async def use(engine: OpaEngine) -> tuple[bool, bool]:
        await engine.decide(ASK)
        healthy = engine.ready()
        server.__exit__(None, None, None)
        with pytest.raises(PolicyUnavailable, match=r"cannot be reached \(Client"):
            await engine.decide(ASK)
        return healthy, engine.ready()

    server = OpaStandIn(bundle_file).__enter__()
    assert with_engine(real_bundle(), server.url, use) == (True, False)


def test_no_answer_within_the_time_limit_fails_closed(opa: OpaStandIn) -> None:
    async def use(engine: OpaEngine) -> float:
        opa.delay_s = 2.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PolicyEvaluationError, match=r"did not decide within 0\.3 s"):
            await engine.decide(ASK)
        return loop.time() - started

    assert with_engine(real_bundle(), opa.url, use, timeout_s=0.3) < 1.5


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            (500, "application/json", b'{"code": "internal_error"}'),
            PolicyEvaluationError,
            "HTTP 500",
        ),
        ((503, "application/json", b"{}"), PolicyEvaluationError, "HTTP 503"),
        ((404, "application/json", b"{}"), PolicyEvaluationError, "HTTP 404"),
        ((200, "application/json", b"{not json"), PolicyEvaluationError, "is not JSON"),
        ((200, "text/html", b"<html>"), PolicyEvaluationError, "is not JSON"),
        ((200, "application/json", b"[1]"), PolicyEvaluationError, "not an object"),
        # An answer without provenance cannot show it came from this policy set.
        ((200, "application/json", b'{"result": {}}'), PolicyUnavailable, "no bundle revision"),
    ],
    ids=["500", "503", "404", "malformed", "html", "array", "no-provenance"],
)
def test_a_bad_answer_fails_closed(
    opa: OpaStandIn, reply: tuple[int, str, bytes], error: type[DoelpoortError], message: str
) -> None:
    async def use(engine: OpaEngine) -> None:
        opa.reply = reply
        with pytest.raises(error, match=message):
            await engine.decide(ASK)

    with_engine(real_bundle(), opa.url, use)


def test_an_undefined_decision_fails_closed(tmp_path: Path) -> None:
    rego = (
        'package doelpoort.disclosure\n\nimport rego.v1\n\ndecision := 1 if input.purpose == "x"\n'
    )
    bundle, path = bundle_served(tmp_path, rego)
    with OpaStandIn(path) as server, pytest.raises(PolicyEvaluationError) as caught:
        with_engine(bundle, server.url, lambda e: e.decide(ASK))
    assert caught.value.detail == UNDEFINED


def test_a_built_in_error_fails_closed_as_in_the_embedded_engine(tmp_path: Path) -> None:
    # OPA makes a built-in's error undefined unless asked to be strict; the engine asks.
    # Lenient, this policy would fall back to its default; strict, it stops the decision.
    rego = (ALLOW % '{"bsn": "mask:2"}').replace(
        "decision := {", "default decision := {}\n\ndecision := {"
    ).rstrip() + " if { 100 / (count(input.subject_keys) - 1) >= 0 }\n"
    bundle, path = bundle_served(tmp_path, rego)
    with OpaStandIn(path) as server, pytest.raises(PolicyEvaluationError, match="HTTP 500"):
        with_engine(bundle, server.url, lambda e: e.decide(ASK))
    with decider(bundle) as decide, pytest.raises(PolicyEvaluationError, match="divide by zero"):
        decide.raw(ASK)


def test_a_decision_made_by_another_revision_fails_closed(
    opa: OpaStandIn, tmp_path: Path, bundle_file: Path
) -> None:
    _other, path = bundle_served(tmp_path, ALLOW % '{"bsn": "mask:2"}')

    async def use(engine: OpaEngine) -> list[bool]:
        readiness = [engine.ready()]
        opa.load(path)  # OPA picked up another bundle after start-up
        with pytest.raises(PolicyUnavailable, match="decided with revision sha256:"):
            await engine.decide(ASK)
        readiness.append(engine.ready())
        opa.load(bundle_file)  # and the right one again
        for _ in range(100):
            await asyncio.sleep(0.02)
            if engine.ready():
                break
        readiness.append(engine.ready())
        return readiness

    assert with_engine(real_bundle(), opa.url, use) == [True, False, True]


def test_failures_are_logged_without_the_input(
    opa: OpaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    marked = {**ASK, "case_ref": "CTI-2026-SECRET-7"}

    async def use(engine: OpaEngine) -> None:
        opa.reply = (500, "application/json", b'{"message": "input CTI-2026-SECRET-7"}')
        with pytest.raises(PolicyEvaluationError) as caught:
            await engine.decide(marked)
        assert "SECRET" not in str(caught.value)

    with caplog.at_level(logging.ERROR, logger="doelpoort.policy"):
        with_engine(real_bundle(), opa.url, use)
    assert (
        "policy decision failed (policy-evaluation-error): the OPA server answered HTTP 500"
        in [r.getMessage() for r in caplog.records][-1]
    )
    assert all("SECRET" not in r.getMessage() for r in caplog.records)


def test_a_closed_engine_refuses(opa: OpaStandIn) -> None:
    async def run() -> None:
        engine = await OpaEngine.connect(real_bundle(), opa.url)
        await engine.aclose()
        assert not engine.ready()
        with pytest.raises(PolicyUnavailable, match="closed"):
            await engine.decide(ASK)

    asyncio.run(run())


# -- parity -----------------------------------------------------------------------------


def every_demo_request(catalog: Catalog) -> list[tuple[str, dict[str, Any]]]:
    """Every purpose (and one the register lacks), for every dataset, from every partner, with the
    dataset's identity keys and one key it lacks; and each partner asking the unknown
    purpose with no dataset, as the pipeline asks it."""
    register = real_bundle().register
    purposes = [*register.purposes, "no-such-purpose"]
    all_keys = sorted({keys for spec in catalog.datasets.values() for keys in spec.identity_keys})
    requests: list[tuple[str, dict[str, Any]]] = []
    for partner in sorted(catalog.partners.values(), key=lambda p: p.id):
        for purpose in purposes:
            for dataset_id, spec in sorted(catalog.datasets.items()):
                lacking = next(k for k in all_keys if k not in spec.identity_keys)
                for keys in [*spec.identity_keys, lacking]:
                    label = f"{partner.id} {purpose} {dataset_id} {'+'.join(keys)}"
                    requests.append(
                        (
                            label,
                            _input(partner.id, partner.roles, purpose, spec.policy_view(), keys),
                        )
                    )
        no_dataset = {"id": "", "provider": "", "domain": "", "fields": {}, "identity_keys": []}
        requests.append(
            (
                f"{partner.id} no-such-purpose",
                _input(partner.id, partner.roles, "no-such-purpose", no_dataset, ("bsn",)),
            )
        )
    return requests


def _input(
    requester: str,
    roles: tuple[str, ...],
    purpose: str,
    view: dict[str, Any],
    keys: tuple[str, ...],
) -> dict[str, Any]:
    return build_policy_input(
        requester_id=requester,
        roles=roles,
        purpose=purpose,
        case_ref="CTI-2026-0042",
        has_justification=True,
        dataset=dataset_input(view),
        subject_keys=keys,
        now=NOW,
    )


Outcome = Decision | tuple[str, str]


async def outcomes(
    decide: Callable[[dict[str, Any]], Awaitable[Decision]],
    requests: list[tuple[str, dict[str, Any]]],
) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for label, request in requests:
        try:
            found[label] = await decide(request)
        except DoelpoortError as exc:
            found[label] = (type(exc).__name__, exc.detail)
    return found


def test_every_demo_decision_is_the_same_through_both_engines(
    opa: OpaStandIn, catalog: Catalog
) -> None:
    requests = every_demo_request(catalog)

    async def embedded() -> dict[str, Outcome]:
        engine = EmbeddedEngine(real_bundle(), timeout_s=5.0)
        try:
            return await outcomes(engine.decide, requests)
        finally:
            await engine.aclose()

    expected = asyncio.run(embedded())
    remote = with_engine(real_bundle(), opa.url, lambda e: outcomes(e.decide, requests))
    assert len(requests) > 1000
    differing = [label for label in expected if expected[label] != remote[label]]
    assert differing == []
    decisions = [o for o in expected.values() if isinstance(o, Decision)]
    # Not a vacuous comparison: both allowing and denying decisions, with released fields.
    assert len(decisions) == len(requests)
    assert sum(d.allow for d in decisions) >= 20
    assert sum(not d.allow for d in decisions) >= 1000
    assert {op for d in decisions for op in d.field_ops.values()} >= {"keep", "pseudonymise"}
