"""A uvicorn server that says when it really serves.

uvicorn has no hook for "started": `Server.startup` runs the app's lifespan start-up,
then binds the listeners, and only then sets ``started``; a failure on the way (the
lifespan's, or a port that is taken) ends it with ``sys.exit`` before. So whatever
announces the gateway (the banner of ``doelpoort serve``) is called from here, after
both, with the sockets actually bound: with port 0, the port the system chose.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

import uvicorn

log = logging.getLogger(__name__)

OnServing = Callable[[Sequence[socket.socket]], None]
"""Called once with the listening sockets, when the gateway serves."""


class AnnouncingServer(uvicorn.Server):
    """`uvicorn.Server`, calling ``on_serving`` once start-up has fully succeeded."""

    def __init__(self, config: uvicorn.Config, on_serving: OnServing | None = None) -> None:
        super().__init__(config)
        self._on_serving = on_serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # Not when a stop was asked for during start-up: the server stops at once.
        if self._on_serving is None or not self.started or self.should_exit:
            return
        listeners = [sock for server in self.servers for sock in server.sockets]
        try:
            self._on_serving(listeners)
        except Exception as exc:
            # The gateway serves all the same; an announcement that fails (a closed
            # stdout) must not stop it, nor skip the shutdown that signs the checkpoint.
            log.error("could not announce the gateway: %s", type(exc).__name__)
