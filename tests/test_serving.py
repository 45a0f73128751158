"""`AnnouncingServer` announces once it serves: after the app's start-up and the bind."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

import pytest
import uvicorn

from gateway.transport.ops_listener import bind_tcp_socket
from gateway.transport.serving import AnnouncingServer, BesideServer
from tests.server_thread import ServerThread


def _app(*, start_up_fails: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                kind = "failed" if start_up_fails else "complete"
                await send({"type": f"lifespan.startup.{kind}"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def _server(on_serving: Any, *, start_up_fails: bool = False) -> AnnouncingServer:
    config = uvicorn.Config(
        _app(start_up_fails=start_up_fails),
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        lifespan="on",
        log_level="critical",
    )
    return AnnouncingServer(config, on_serving)


def test_it_announces_the_port_bound_once_serving() -> None:
    announced: list[int] = []

    def on_serving(listeners: Sequence[socket.socket]) -> None:
        with socket.create_connection(("127.0.0.1", listeners[0].getsockname()[1]), timeout=5):
            pass  # already accepting
        announced.append(listeners[0].getsockname()[1])

    with ServerThread(_server(on_serving)) as running:
        assert announced == [running.port]
        assert running.port != 0


def test_it_does_not_announce_a_start_up_that_failed() -> None:
    announced: list[object] = []
    server = _server(announced.append, start_up_fails=True)
    with pytest.raises(RuntimeError, match="did not start"), ServerThread(server):
        pass
    assert announced == []


def test_a_failed_announcement_does_not_stop_the_gateway(caplog: pytest.LogCaptureFixture) -> None:
    def on_serving(_listeners: Sequence[socket.socket]) -> None:
        raise BrokenPipeError  # a closed stdout

    with (
        caplog.at_level(logging.ERROR, "gateway.transport.serving"),
        ServerThread(_server(on_serving)) as running,
        socket.create_connection(("127.0.0.1", running.port), timeout=5),
    ):
        pass  # serving all the same
    assert "could not announce the gateway: BrokenPipeError" in caplog.text


async def _plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _beside(sock: socket.socket) -> BesideServer:
    config = uvicorn.Config(_plain_app, lifespan="off", log_level="critical")
    return BesideServer(config, sock)


def test_a_server_beside_serves_from_the_announcement_until_the_stop() -> None:
    sock = bind_tcp_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    beside = _beside(sock)
    listening: list[bool] = []

    def on_serving(_listeners: Sequence[socket.socket]) -> None:
        # On the loop: it cannot answer yet, but it listens (the connection is accepted).
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            listening.append(beside.started)

    server = _server(on_serving)
    server.serve_beside(beside)
    with (
        ServerThread(server),
        socket.create_connection(("127.0.0.1", port), timeout=5) as conn,
    ):
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(64).split()[1] == b"204"
    assert listening == [True]
    with pytest.raises(ConnectionRefusedError):  # stopped with the gateway, socket closed
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_server_beside_that_cannot_start_stops_the_gateway(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock = bind_tcp_socket("127.0.0.1", 0)
    sock.close()  # nothing can listen on it
    announced: list[object] = []
    server = _server(announced.append)
    server.serve_beside(_beside(sock))
    with caplog.at_level(logging.ERROR, "gateway.transport.serving"):
        server.run()  # returns: the gateway stopped instead of serving without it
    assert announced == []
    assert "a listener beside the gateway did not start: OSError" in caplog.text
