"""SPEC §10 in one run: ``python -m bench`` (or ``make bench``).

1. Throughput of the whole disclosure pipeline (mTLS, policy, connectors, minimise,
   sign, durable audit) against a bare endpoint that returns the same response bytes
   over the same kind of mTLS server, as a ratio.
2. p50/p99 latency of disclosures sent at a fixed 200 requests/s, and how many of those
   requests waited over 25 ms for their durable audit commit.
3. The pipeline alone, without HTTP: the event loop's CPU per disclosure, the receipt
   signature's, the sealed box's and the per-group audit checkpoint's share of it, and
   what a ratio of 0.5 would leave it.
4. The disk's own fdatasync latency, for telling its stalls from the gateway's.
5. ``audit verify`` throughput in entries per second.
6. ``policy replay`` throughput in decisions per second (fresh evaluation, no memo).
7. Decision latency (p50/p99) of each policy engine, embedded and OPA.
8. The DPO's console at 1,000,000 entries: p50/p99 of a page of requests for every
   filter, a deep page, a subject and a pseudonym search, and the append cost of the
   indexes behind them (``bench/dpo.py``; the seeded log is kept under build/).
9. DPO exports: a log of 1,000,000 entries exported as JSONL, CSV and Logboek
   Dataverwerkingen records, in entries per second and peak memory.

The servers run in this process (a thread each); the load generator runs in a child
process so client and server each have a core of the 2-core reference machine.
Figures are from one run; quote them as ratios and percentiles.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench import DATASETS, REQUESTER, request_body
from bench.dpo import bench_dpo
from bench.engines import bench_engines
from bench.export import bench_export
from bench.load import Target, fixed_rate, throughput
from bench.pipeline import measure_pipeline
from bench.replay import fill_replay_log, time_replay
from bench.verify import fill_log, time_verify
from gateway.app import create_app
from gateway.dev.bootstrap import bootstrap
from gateway.settings import Settings
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.tls import build_server
from tests.server_thread import ServerThread


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
    from gateway.peers import partner, peer

    @app.post("/bench/stack-only", include_in_schema=False)
    async def stack_only(request: Request) -> Response:
        partner(request, await peer(request))
        DisclosureRequest.from_body(await request.body())
        return Response(request.app.state.bench_response, media_type="application/json")

    # First in line, as /v1/disclosures is: matching a path against the DPO's included
    # router first costs about 75 µs, which the partner API never pays.
    app.router.routes.insert(0, app.router.routes.pop())


_SLOW_AUDIT_S = 0.025  # a bucket of gateway.metrics' latency histograms


def _slow_audit_waits(app: FastAPI) -> tuple[int, int]:
    """(requests so far, of them waiting longer than _SLOW_AUDIT_S for the durable commit).

    Read from the gateway's own histogram, so a p99 that the disk's fsync stalls make
    can be told from one the gateway makes.
    """
    total = fast = 0.0
    for metric in app.state.runtime.metrics.audit_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                total = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == _SLOW_AUDIT_S:
                fast = sample.value
    return int(total), int(total - fast)


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def _in_child(fn: Callable[..., Any], *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


@dataclass(frozen=True)
class HttpRates:
    """Requests per second of the two baselines, for the pipeline's cost budget."""

    bare: float
    stack: float


def bench_http(settings: Settings, seconds: float, connections: int, rate: float) -> HttpRates:
    paths = PkiPaths(settings.pki_dir)
    body = request_body(settings)

    def target(port: int, path: str) -> Target:
        return Target(
            "127.0.0.1",
            port,
            path,
            body,
            paths.ca_cert,
            paths.partner_cert(REQUESTER),
            paths.partner_key(REQUESTER),
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
        waits_before = _slow_audit_waits(gateway_app)
        latencies, lat_bad = _in_child(
            fixed_rate, target(server.port, "/v1/disclosures"), rate, seconds
        )
        slow_waits = [
            b - a for a, b in zip(waits_before, _slow_audit_waits(gateway_app), strict=True)
        ]
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
    print(f"ratio                   {full_rps / bare_rps:8.2f}        (SPEC §10: ≥ 0.25)")
    print(
        f"for comparison: the gateway's own stack without the pipeline (identity, limits, "
        f"validation) {stack_rps:.0f} req/s (non-200: {stack_bad}), ratio "
        f"{full_rps / stack_rps:.2f}"
    )
    print(
        f"latency at {rate:.0f} req/s    p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms   (SPEC §10: p99 < 10 ms; "
        f"{len(latencies)} requests, non-200: {lat_bad})"
    )
    print(
        f"  of those, {slow_waits[1]} waited over {_SLOW_AUDIT_S * 1000:.0f} ms for their "
        f"durable audit commit ({slow_waits[0]} requests counted; see the disk probe)"
    )
    return HttpRates(bare=bare_rps, stack=stack_rps)


def bench_pipeline(settings: Settings, seconds: float, concurrency: int, rates: HttpRates) -> None:
    """The pipeline without HTTP, against what a ratio of 0.5 would leave it.

    At 0.5 a disclosure may take twice a bare request's time on the server's one event
    loop; the gateway's own HTTP stack (identity, limits, validation) takes its share
    first, and the rest is the pipeline's budget.
    """
    print(f"· pipeline alone, no HTTP ({concurrency} tasks, {seconds:.0f} s) …", flush=True)
    report = measure_pipeline(
        settings, REQUESTER, request_body(settings), seconds=seconds, concurrency=concurrency
    )
    us = 1e6
    budget = 2 / rates.bare - 1 / rates.stack
    print(
        f"pipeline alone          {report.per_s:8.0f} disclosures/s: "
        f"{report.loop_cpu_per_disclosure_s * us:.0f} µs of the event loop's CPU each "
        f"({report.process_cpu_per_disclosure_s * us:.0f} µs with the audit writer's thread)"
    )
    seal = f"{report.seal_s * us:.0f} µs" if report.seal_s is not None else "off"
    print(f"  of which receipt signature {report.sign_s * us:.0f} µs, escrow sealed box {seal}")
    print(
        f"  and the audit checkpoint, one per commit group: {report.checkpoint_in_run_s * us:.0f}"
        f" µs each in the run ({report.checkpoint_s * us:.0f} µs alone), "
        f"{report.groups_per_s:.0f} groups/s for {report.per_s:.0f} disclosures/s "
        f"({report.disclosures / max(report.groups, 1):.1f} disclosures a group), so "
        f"{report.checkpoint_per_disclosure_s * us:.0f} µs a disclosure, "
        f"{report.checkpoints_cpu_s / report.loop_cpu_s:.1%} of the loop's CPU"
    )
    print(
        f"  budget at ratio 0.5: {2 / rates.bare * us:.0f} µs per request in all, less "
        f"{1 / rates.stack * us:.0f} µs for the gateway's HTTP stack, leaves "
        f"{budget * us:.0f} µs for the pipeline"
    )


def bench_disk(directory: Path, seconds: float) -> None:
    """The disk under the audit log on its own: small appends, each made durable.

    Every disclosure waits for one such fdatasync (shared by its commit group), so this
    tail is a floor under the gateway's latency tail that no code change can lower.
    """
    print(f"· disk probe: 4 KiB appends with fdatasync ({seconds:.0f} s) …", flush=True)
    waits: list[float] = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            os.write(fd, bytes(4096))
            started = time.perf_counter()
            os.fdatasync(fd)
            waits.append(time.perf_counter() - started)
            time.sleep(0.002)
    finally:
        os.close(fd)
    print(
        f"disk fdatasync          p50 {_percentile(waits, 0.5) * 1000:.2f} ms, "
        f"p99 {_percentile(waits, 0.99) * 1000:.2f} ms, p99.9 "
        f"{_percentile(waits, 0.999) * 1000:.1f} ms, max {max(waits) * 1000:.1f} ms "
        f"({len(waits)} writes)"
    )


def bench_verify(var_dir: Path, entries: int) -> None:
    print(f"· filling an audit log with {entries} entries …", flush=True)
    db = fill_log(var_dir / "verify-bench", entries)
    report = time_verify(db)
    print(
        f"audit verify            {report.entries_per_s:8.0f} entries/s (SPEC §10: ≥ 250,000; "
        f"{report.entries} entries in {report.elapsed_s:.2f} s)"
    )


def bench_replay(settings: Settings, var_dir: Path, entries: int) -> None:
    print(f"· filling an audit log with {entries} decisions to replay …", flush=True)
    db, distinct = fill_replay_log(settings, var_dir / "replay-bench", entries)
    threads = sorted({1, os.cpu_count() or 2})
    for workers in threads:
        report = time_replay(settings, db, workers)
        print(
            f"policy replay           {report.per_s:8.0f} decisions/s on {workers} evaluation "
            f"thread{'s' if workers > 1 else ''} (SPEC §10: ≥ 2,000; {report.replayed} "
            f"decisions of {distinct} distinct requests in {report.elapsed_s:.2f} s, "
            f"{report.flipped} flipped)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--verify-entries", type=int, default=200_000)
    parser.add_argument("--replay-decisions", type=int, default=20_000)
    parser.add_argument(
        "--only-replay", action="store_true", help="run the policy replay phase alone"
    )
    parser.add_argument("--decisions", type=int, default=1000, help="per policy engine")
    parser.add_argument("--dpo-entries", type=int, default=1_000_000)
    parser.add_argument("--dpo-runs", type=int, default=30, help="timed runs of each search")
    parser.add_argument("--only-dpo", action="store_true", help="run the DPO phase alone")
    parser.add_argument("--export-entries", type=int, default=1_000_000)
    parser.add_argument(
        "--export-log", type=Path, help="export this seeded log instead of seeding one"
    )
    parser.add_argument("--only-export", action="store_true", help="run the DPO export phase alone")
    args = parser.parse_args()
    if args.only_dpo:
        bench_dpo(args.dpo_entries, args.dpo_runs)
        return
    with tempfile.TemporaryDirectory(prefix="doelpoort-bench-") as tmp:
        settings = Settings.from_env().with_var_dir(Path(tmp))
        print(f"setting up a fresh synthetic deployment in {tmp}")
        bootstrap(settings, echo=lambda _line: None)
        if args.only_replay:
            bench_replay(settings, Path(tmp), args.replay_decisions)
            return
        if args.only_export:
            bench_export(args.export_entries, args.export_log)
            return
        rates = bench_http(settings, args.seconds, args.connections, args.rate)
        bench_pipeline(settings, args.seconds, args.connections, rates)
        bench_disk(settings.audit_db_path.parent, args.seconds)
        bench_verify(Path(tmp), args.verify_entries)
        bench_replay(settings, Path(tmp), args.replay_decisions)
        bench_engines(settings, args.decisions)
        bench_dpo(args.dpo_entries, args.dpo_runs)
        bench_export(args.export_entries, args.export_log)


if __name__ == "__main__":
    main()
