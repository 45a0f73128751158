"""SPEC §10 in one run: ``python -m bench`` (or ``make bench``).

1. Throughput of the whole disclosure pipeline (mTLS, policy, connectors, minimise,
   sign, durable audit) against a bare endpoint that returns the same response bytes
   over the same kind of mTLS server, as a ratio.
2. p50/p99 latency of disclosures sent at a fixed 200 requests/s.
3. ``audit verify`` throughput in entries per second.

The servers run in this process (a thread each); the load generator runs in a child
process so client and server each have a core of the 2-core reference machine.
Figures are from one run; quote them as ratios and percentiles.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench.load import Target, fixed_rate, throughput
from bench.verify import fill_log, time_verify
from gateway.app import create_app
from gateway.bootstrap import bootstrap
from gateway.demo import load_subjects
from gateway.pki import PkiPaths
from gateway.settings import Settings
from gateway.tls import ServerThread, build_server

DATASETS = ["ind/residence", "kmar/border-crossings"]


def _bare_app(response_body: bytes) -> FastAPI:
    """The same server stack with none of the work: parse the body, return the bytes."""
    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> Response:
        await request.json()
        return Response(response_body, media_type="application/json")

    return app


def _add_stack_only_route(app: FastAPI) -> None:
    """Bench-only: the gateway's identity check, limits and validation, then the bytes.

    Added to the app the benchmark builds, never to the served product, so the report
    can say how much of the cost is the pipeline and how much the HTTP stack.
    """
    from gateway.api_models import DisclosureRequest
    from gateway.app import partner, peer

    @app.post("/bench/stack-only", include_in_schema=False)
    async def stack_only(request: Request) -> Response:
        partner(request, await peer(request))
        DisclosureRequest.model_validate_json(await request.body())
        return Response(request.app.state.bench_response, media_type="application/json")


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def _in_child(fn: Callable[..., Any], *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def bench_http(settings: Settings, seconds: float, connections: int, rate: float) -> None:
    paths = PkiPaths(settings.pki_dir)
    subject = load_subjects(settings)["ct_subject"]
    body = json.dumps(
        {
            "purpose": "ct-assessment",
            "case_ref": "BENCH-2026-1",
            "justification": "benchmark of the synthetic demo deployment",
            "subject": subject,
            "datasets": DATASETS,
        }
    ).encode()

    def target(port: int, path: str) -> Target:
        return Target(
            "127.0.0.1",
            port,
            path,
            body,
            paths.ca_cert,
            paths.partner_cert("politie"),
            paths.partner_key("politie"),
        )

    gateway_app = create_app(settings)
    _add_stack_only_route(gateway_app)
    gateway = build_server(gateway_app, host="127.0.0.1", port=0, paths=paths)
    with ServerThread(gateway) as server:
        import httpx

        client = httpx.Client(
            verify=target(server.port, "/").ssl_context(),
            base_url=f"https://127.0.0.1:{server.port}",
        )
        with client:
            sample = client.post(
                "/v1/disclosures", content=body, headers={"content-type": "application/json"}
            )
        sample.raise_for_status()
        records = sum(len(r.get("records", [])) for r in sample.json()["disclosure"]["results"])
        print(
            f"request: ct-assessment, {len(DATASETS)} datasets, {records} records released, "
            f"{len(sample.content)} response bytes"
        )
        print(f"· pipeline throughput ({connections} connections, {seconds:.0f} s) …", flush=True)
        full_rps, full_bad = _in_child(
            throughput, target(server.port, "/v1/disclosures"), connections, seconds
        )
        print(f"· latency at {rate:.0f} req/s ({seconds:.0f} s) …", flush=True)
        latencies, lat_bad = _in_child(
            fixed_rate, target(server.port, "/v1/disclosures"), rate, seconds
        )
        gateway_app.state.bench_response = sample.content
        print(f"· same app stack, no pipeline ({connections} connections) …", flush=True)
        stack_rps, stack_bad = _in_child(
            throughput, target(server.port, "/bench/stack-only"), connections, seconds
        )

    bare = build_server(_bare_app(sample.content), host="127.0.0.1", port=0, paths=paths)
    with ServerThread(bare) as server:
        print(f"· bare endpoint throughput ({connections} connections) …", flush=True)
        bare_rps, bare_bad = _in_child(
            throughput, target(server.port, "/bare"), connections, seconds
        )

    print()
    print(f"disclosure throughput   {full_rps:8.0f} req/s   (non-200: {full_bad})")
    print(f"bare endpoint           {bare_rps:8.0f} req/s   (non-200: {bare_bad})")
    print(f"ratio                   {full_rps / bare_rps:8.2f}        (target ≥ 0.5)")
    print(
        f"for comparison: the gateway's own stack without the pipeline (identity, limits, "
        f"validation) {stack_rps:.0f} req/s (non-200: {stack_bad}), ratio "
        f"{full_rps / stack_rps:.2f}"
    )
    print(
        f"latency at {rate:.0f} req/s    p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms   (target p99 < 25 ms; "
        f"{len(latencies)} requests, non-200: {lat_bad})"
    )


def bench_verify(var_dir: Path, entries: int) -> None:
    print(f"· filling an audit log with {entries} entries …", flush=True)
    db = fill_log(var_dir / "verify-bench", entries)
    report = time_verify(db)
    print(
        f"audit verify            {report.entries_per_s:8.0f} entries/s (target ≥ 100,000; "
        f"{report.entries} entries in {report.elapsed_s:.2f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--verify-entries", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doelpoort-bench-") as tmp:
        settings = replace(Settings(), var_dir=Path(tmp))
        print(f"setting up a fresh synthetic deployment in {tmp}")
        bootstrap(settings, echo=lambda _line: None)
        bench_http(settings, args.seconds, args.connections, args.rate)
        bench_verify(Path(tmp), args.verify_entries)


if __name__ == "__main__":
    main()
