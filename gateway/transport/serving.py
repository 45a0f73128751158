"""A uvicorn server that says when it really serves, and serves others beside it.

uvicorn has no hook for "started": `Server.startup` runs the app's lifespan start-up,
then binds the listeners, and only then sets ``started``; a failure on the way (the
lifespan's, or a port that is taken) ends it with ``sys.exit`` before. So whatever
announces the gateway (the banner of ``doelpoort serve``) is called from here, after
both, with the sockets actually bound: with port 0, the port the system chose.

The gateway also has an operations listener (`gateway.transport.ops_listener`): a
second uvicorn server, `BesideServer`, on the same event loop in the same process. The
main server starts it once its own start-up has succeeded (so the runtime it reports on
exists) and stops it before its own shutdown (so it never reports on a closed one). It
handles no signals itself: Ctrl-C or SIGTERM stop the main server, which stops it.

SIGHUP asks the gateway to reload its policy set (`AnnouncingServer.on_hangup`); it never
stops the process. uvicorn installs its handlers for SIGINT and SIGTERM when it serves
(`capture_signals`, with ``signal.signal`` in the main thread) and restores the previous
ones after; the SIGHUP handler is installed and restored beside them. The handler only
hands the callback to the event loop (``call_soon_threadsafe``): a Python signal handler
runs between two bytecodes of whatever the loop was doing, where nothing may be awaited
or locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn

log = logging.getLogger(__name__)

OnServing = Callable[[Sequence[socket.socket]], None]
"""Called once with the listening sockets, when the gateway serves."""


class BesideServer(uvicorn.Server):
    """A uvicorn server on a socket bound before start-up, run by an `AnnouncingServer`
    on its loop (`AnnouncingServer.serve_beside`)."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.socket = sock

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The main server's handlers stay in place: a signal stops it, and it stops us.
        yield


class AnnouncingServer(uvicorn.Server):
    """`uvicorn.Server`, calling ``on_serving`` once start-up has fully succeeded."""

    def __init__(self, config: uvicorn.Config, on_serving: OnServing | None = None) -> None:
        super().__init__(config)
        self._on_serving = on_serving
        self._on_hangup: Callable[[], None] | None = None
        self._beside: list[BesideServer] = []
        self._beside_tasks: list[asyncio.Task[None]] = []

    def on_hangup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop for every SIGHUP while serving (only when
        served from the main thread, where signals arrive); without one, SIGHUP is
        ignored."""
        self._on_hangup = callback

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals(), self._capture_hangups():
            yield

    @contextlib.contextmanager
    def _capture_hangups(self) -> Iterator[None]:
        hangup = getattr(signal, "SIGHUP", None)  # not on Windows
        if hangup is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()

        def handle(_signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(self._hung_up)

        previous = signal.signal(hangup, handle)
        try:
            yield
        finally:
            signal.signal(hangup, previous)

    def _hung_up(self) -> None:
        if self._on_hangup is None:
            log.info("SIGHUP ignored: nothing to reload")
            return
        try:
            self._on_hangup()
        except Exception as exc:
            log.error("SIGHUP could not be handled: %s", type(exc).__name__)

    def serve_beside(self, server: BesideServer) -> None:
        """Serve ``server`` too, from when this one serves until it stops."""
        self._beside.append(server)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # Not when a stop was asked for during start-up: the server stops at once.
        if not self.started or self.should_exit:
            return
        # Not "started" (which is what a caller waits for) until the others serve too.
        self.started = False
        try:
            await self._start_beside()
        finally:
            self.started = True  # so that `shutdown` runs, whatever happened
        if self._on_serving is None or self.should_exit:
            return
        listeners = [sock for server in self.servers for sock in server.sockets]
        try:
            self._on_serving(listeners)
        except Exception as exc:
            # The gateway serves all the same; an announcement that fails (a closed
            # stdout) must not stop it, nor skip the shutdown that signs the checkpoint.
            log.error("could not announce the gateway: %s", type(exc).__name__)

    async def _start_beside(self) -> None:
        for server in self._beside:
            task = asyncio.create_task(server.serve(sockets=[server.socket]))
            self._beside_tasks.append(task)
            while not server.started and not task.done():
                await asyncio.sleep(0)
            if not server.started:  # cannot be bound or loaded: stop the whole gateway
                failure = None if task.cancelled() else task.exception()
                log.error("a listener beside the gateway did not start: %s", _name(failure))
                self.should_exit = True
                return

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self._beside:
            server.should_exit = True
        results = await asyncio.gather(*self._beside_tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("a listener beside the gateway failed: %s", _name(result))
        await super().shutdown(sockets=sockets)


def _name(failure: BaseException | None) -> str:
    return type(failure).__name__ if failure is not None else "it stopped"
