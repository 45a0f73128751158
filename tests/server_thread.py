"""A uvicorn server in a background thread, for the tests and the benchmarks."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn


class ServerThread:
    """Run a uvicorn server in a background thread (tests, benchmarks).

    ``with ServerThread(build_server(app, host="127.0.0.1", port=0, paths=p)) as s:``
    then ``s.port`` is the port it listens on; leaving the block shuts it down.
    """

    def __init__(self, server: uvicorn.Server, *, startup_timeout: float = 10.0) -> None:
        self.server = server
        self._startup_timeout = startup_timeout
        self._thread = threading.Thread(target=self._run, name="doelpoort-server", daemon=True)
        self._error: BaseException | None = None
        self.port = 0

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # SystemExit on a failed start-up included
            self._error = exc

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError("the server did not start") from self._error
            time.sleep(0.01)
        address = self.server.servers[0].sockets[0].getsockname()
        self.port = int(address[1]) if isinstance(address, tuple) else 0  # 0: a unix socket
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
