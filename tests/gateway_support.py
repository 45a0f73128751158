"""End-to-end support: a real deployment in a temporary ``var/``, served over real mTLS.

`running_gateway` builds one: the development PKI (plus a certificate for "ghost", a
partner the CA signed but the deployment does not configure), keys and synthetic
records, then serves the real app with the real TLS server in a thread. Log records
of the whole process are kept so privacy tests can scan what the server wrote.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI

from gateway.app import create_app
from gateway.connectors.catalog import VOCABULARY_FILE
from gateway.dev.bootstrap import bootstrap
from gateway.dev.demo import load_subjects
from gateway.dev.pki import init_pki
from gateway.ops import create_ops_app
from gateway.runtime import Runtime
from gateway.settings import PROJECT_ROOT, Settings
from gateway.transport.ops_listener import bind_tcp_socket, build_ops_server
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.proxied import build_proxied_server
from gateway.transport.tls import build_server, client_ssl_context
from tests.server_thread import ServerThread

GHOST = "ghost"


class LogCollector(logging.Handler):
    """Keeps every formatted log line the process writes."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Deployment:
    settings: Settings
    port: int
    log: LogCollector
    app: FastAPI
    ops_port: int

    @property
    def runtime(self) -> Runtime:
        """The running gateway's parts, for tests that inject a fault into one of them."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def paths(self) -> PkiPaths:
        return PkiPaths(self.settings.pki_dir)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The operations listener: plain HTTP, no client certificate."""
        return f"http://127.0.0.1:{self.ops_port}"

    def ops_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.ops_url, timeout=10.0)

    @property
    def subjects(self) -> dict[str, dict[str, str]]:
        return load_subjects(self.settings)

    def ssl_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        return client_ssl_context(self.paths.ca_cert, cert, key)

    def client(self, partner: str) -> httpx.Client:
        context = self.ssl_context(
            self.paths.partner_cert(partner), self.paths.partner_key(partner)
        )
        return httpx.Client(base_url=self.base_url, verify=context, timeout=10.0)

    def dpo_client(self) -> httpx.Client:
        context = self.ssl_context(self.paths.dpo_cert("dpo"), self.paths.dpo_key("dpo"))
        return httpx.Client(base_url=self.base_url, verify=context, timeout=10.0)

    def disclose(self, partner: str, body: dict[str, Any]) -> httpx.Response:
        with self.client(partner) as client:
            return client.post("/v1/disclosures", json=body)


def make_settings(
    var_dir: Path,
    *,
    policies_dir: Path | None = None,
    connectors_dir: Path | None = None,
) -> Settings:
    # A reload's Rego tests take rego-cpp tens of seconds to compile for the shipped set:
    # off here, on in the tests of that step (tests/test_policy_switch.py).
    settings = Settings.from_env().replace(
        var_dir=var_dir,
        host="127.0.0.1",
        port=0,
        ops_host="127.0.0.1",
        ops_port=0,
        policy_reload_tests=False,
    )
    if policies_dir is not None:
        settings = settings.replace(policies_dir=policies_dir)
    if connectors_dir is not None:
        settings = settings.replace(connectors_dir=connectors_dir)
    return settings


def copy_tree(name: str, destination: Path) -> Path:
    """A writable copy of ``policies/`` or ``connectors/`` for a test to change."""
    target = destination / name
    shutil.copytree(PROJECT_ROOT / name, target)
    return target


@contextmanager
def running_gateway(
    settings: Settings, before_start: Callable[[Settings], None] | None = None
) -> Iterator[Deployment]:
    """Set up ``settings.var_dir`` and serve the app; ``before_start`` may break things."""
    bootstrap(settings, echo=lambda _line: None)
    if before_start is not None:
        before_start(settings)
    partners = sorted(
        p.stem for p in settings.connectors_dir.glob("*.yaml") if p.name != VOCABULARY_FILE
    )
    init_pki(settings.pki_dir, [*partners, GHOST])
    app = create_app(settings)
    # Built before the log handlers are attached: uvicorn configures its loggers here.
    paths = PkiPaths(settings.pki_dir)
    if settings.proxy_socket is not None:
        server = build_proxied_server(app, socket_path=settings.proxy_socket, paths=paths)
    else:
        server = build_server(app, host="127.0.0.1", port=0, paths=paths)
    # The operations listener, as `doelpoort serve` runs it beside the gateway.
    ops_socket = bind_tcp_socket(settings.ops_host, 0)
    ops_port = int(ops_socket.getsockname()[1])
    ops_app = create_ops_app(lambda: getattr(app.state, "runtime", None))
    server.serve_beside(build_ops_server(ops_app, ops_socket))
    collector = LogCollector()
    # uvicorn's loggers do not propagate to the root logger: listen to them as well.
    loggers = [
        logging.getLogger(),
        logging.getLogger("uvicorn"),
        logging.getLogger("uvicorn.error"),
    ]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(collector)
        logger.setLevel(logging.DEBUG)
    try:
        with ServerThread(server) as thread:
            yield Deployment(
                settings=settings, port=thread.port, log=collector, app=app, ops_port=ops_port
            )
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.removeHandler(collector)
            logger.setLevel(level)


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_with_plain_cryptography(receipt: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """A receipt verifier that shares no code with the signing path."""
    header_b64, payload_b64, signature_b64 = receipt.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "EdDSA"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    public.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())
    payload: dict[str, Any] = json.loads(b64url_decode(payload_b64))
    return payload
