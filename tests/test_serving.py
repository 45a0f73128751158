"""`AnnouncingServer` announces once it serves: after the app's start-up and the bind."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

import pytest
import uvicorn

from gateway.transport.serving import AnnouncingServer
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
