"""A small HTTP/1.1 load generator over mutual TLS, lean enough not to be the bottleneck.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) to replay one request
many times; it runs in its own process so that client and server each get a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.transport.tls import client_ssl_context


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    body: bytes
    ca: Path
    cert: Path
    key: Path

    def request_bytes(self) -> bytes:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca, self.cert, self.key)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: Target, context: ssl.SSLContext) -> _Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port, ssl=context)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def _closed_loop(target: Target, connections: int, seconds: float) -> tuple[int, int]:
    context = target.ssl_context()
    request = target.request_bytes()
    conns = [await _Connection.open(target, context) for _ in range(connections)]
    ok = bad = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: _Connection) -> None:
        nonlocal ok, bad
        while time.perf_counter() < deadline:
            if await conn.exchange(request) == 200:
                ok += 1
            else:
                bad += 1

    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        await conn.close()
    return ok, bad


def throughput(target: Target, connections: int, seconds: float) -> tuple[float, int]:
    """Requests per second with ``connections`` busy keep-alive connections."""
    started = time.perf_counter()
    ok, bad = asyncio.run(_closed_loop(target, connections, seconds))
    return ok / (time.perf_counter() - started), bad


async def _fixed_rate(target: Target, rate: float, seconds: float) -> tuple[list[float], int]:
    context = target.ssl_context()
    request = target.request_bytes()
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    pool = [await _Connection.open(target, context) for _ in range(32)]
    for conn in pool:
        idle.put_nowait(conn)
    latencies: list[float] = []
    bad = 0
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float) -> None:
        nonlocal bad
        conn = await idle.get()
        status = await conn.exchange(request)
        # Measured from the scheduled send time, so a stalled server cannot hide its
        # queueing delay (no coordinated omission).
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            bad += 1
        idle.put_nowait(conn)

    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    for i in range(int(rate * seconds)):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    for conn in pool:
        await conn.close()
    return latencies, bad


def fixed_rate(target: Target, rate: float, seconds: float) -> tuple[list[float], int]:
    """Latencies (seconds) of requests sent at a fixed rate."""
    return asyncio.run(_fixed_rate(target, rate, seconds))
