"""``doelpoort serve`` announces itself only once it serves, and what it announces works.

``make run`` runs ``serve --setup``: its banner and curl line appear after the app has
started and the port is bound (the one really bound, for port 0), never before a
start-up that then fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from audit.storage.sqlite.lock import lock_writer
from gateway.dev.bootstrap import bootstrap
from gateway.settings import Settings

BANNER = re.compile(r"Doelpoort serves https://127\.0\.0\.1:(\d+) \(mutual TLS\)\.")
OPS_BANNER = re.compile(r"Operations \(no client certificate\): (http://127\.0\.0\.1:\d+)/healthz")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Output(list[str]):
    """A serving process's output lines so far; `read_until` waits for more.

    A thread reads the process's output into a queue, so waiting has a deadline even
    when the process writes nothing more.
    """

    def __init__(self, stream: IO[str], pid: int = 0) -> None:
        super().__init__()
        self.pid = pid  # the serving process, for a test to signal
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(_ENDED)

    def read_until(self, done: Callable[[str], bool], timeout: float = 60) -> str | None:
        """Read on until a line for which ``done`` holds (returned), or the output ends
        or ``timeout`` passes (None)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is _ENDED:
                self._queue.put(_ENDED)  # still ended for the next reader
                break
            self.append(line)
            if done(line):
                return line
        return None


_ENDED = "\x00ended"  # a line no process writes; compared by identity


@contextmanager
def serving(args: list[str], env: dict[str, str]) -> Iterator[Output]:
    """Run ``doelpoort serve ARGS`` in its own process until its banner ends (or it
    exits); yield its output lines so far, then stop it with Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines = Output(process.stdout, process.pid)
    try:
        lines.read_until(lambda line: "Stop with Ctrl-C" in line)
        yield lines
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Output, Path]]:
    """``serve --setup`` on port 0, as ``make run`` runs it; its output, and its var/."""
    var = tmp_path_factory.mktemp("served") / "var"
    env = {"DOELPOORT_VAR_DIR": str(var), "DOELPOORT_PORT": "0", "DOELPOORT_OPS_PORT": "0"}
    with serving(["--setup"], env) as lines:
        yield lines, var


def test_the_banner_comes_once_serving_and_names_the_port_bound(
    served: tuple[Output, Path],
) -> None:
    lines, _ = served
    output = "\n".join(lines)
    ports = [int(m[1]) for line in lines if (m := BANNER.fullmatch(line))]
    assert len(ports) == 1, output
    port = ports[0]
    assert port != 0
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # listening already: the banner came after the bind, not before
    curl_lines = [line for line in lines if line.startswith("curl ")]
    assert curl_lines, output
    assert curl_lines[0].endswith(f"https://127.0.0.1:{port}/v1/disclosures")
    # The demo's origin is noticed (stderr, before the banner), and never only in it.
    assert "set DOELPOORT_ORIGIN" in output


def test_the_operations_listener_is_announced_and_needs_no_certificate(
    served: tuple[Output, Path],
) -> None:
    lines, _ = served
    urls = [m[1] for line in lines if (m := OPS_BANNER.match(line))]
    assert len(urls) == 1, "\n".join(lines)
    with httpx.Client(base_url=urls[0], timeout=10.0) as ops:  # plain HTTP, no certificate
        assert ops.get("/healthz").json() == {"status": "ok"}
        assert ops.get("/readyz").status_code == 200
        assert ops.get("/.well-known/jwks.json").json()["keys"]
        assert "doelpoort_requests_total" in ops.get("/metrics").text  # this host: allowed


def test_a_refused_handshake_is_a_json_line_of_its_own_on_stderr(
    served: tuple[Output, Path],
) -> None:
    lines, var_dir = served
    port = next(int(m[1]) for line in lines if (m := BANNER.fullmatch(line)))
    context = ssl.create_default_context(cafile=var_dir / "pki" / "ca.pem")  # no certificate
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        peer = f"127.0.0.1:{raw.getsockname()[1]}"
        with (
            contextlib.suppress(ssl.SSLError, OSError),
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.recv(1)
    line = lines.read_until(lambda line: peer in line, timeout=30)
    assert line is not None, "\n".join(lines)
    assert json.loads(line) == {
        "event": "handshake-refused",
        "time": json.loads(line)["time"],
        "peer": peer,
        "subject": None,
        "serial": None,
        "fingerprint": None,
        "reason": "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_printed_curl_line_works(served: tuple[Output, Path]) -> None:
    lines, var_dir = served
    output = "\n".join(lines)
    curl_lines = [line for line in lines if line.startswith("curl ")]
    assert curl_lines, output
    assert "synthetic" in output.lower() or "Scripted exchange" in output
    assert (var_dir / "pki" / "ca.pem").exists()
    argv = shlex.split(curl_lines[0])
    result = subprocess.run(
        [*argv, "--silent", "--show-error", "--write-out", "\n%{http_code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "200", result.stderr + result.stdout
    disclosure = json.loads(body)["disclosure"]
    assert disclosure["requester"] == "politie"
    assert {r["decision"] for r in disclosure["results"]} >= {"allow"}


def test_behind_a_proxy_the_socket_is_announced_once_it_accepts(tmp_path: Path) -> None:
    # Unix socket paths are short (108 bytes): not under pytest's deep temporary tree.
    with tempfile.TemporaryDirectory(prefix="dp-") as short:
        path = Path(short) / "gateway.sock"
        env = {
            "DOELPOORT_VAR_DIR": str(tmp_path / "var"),
            "DOELPOORT_ORIGIN": "gateway.example.nl/doelpoort/audit",
            "DOELPOORT_OPS_PORT": "0",
        }
        with serving(["--setup", "--proxy-socket", str(path)], env) as lines:
            output = "\n".join(lines)
            assert lines[-1].startswith(f"Doelpoort serves unix:{path} "), output
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
            # Behind a proxy too, load balancers need their health checks.
            urls = [m[1] for line in lines if (m := OPS_BANNER.match(line))]
            assert len(urls) == 1, output
            assert httpx.get(f"{urls[0]}/readyz", timeout=10.0).status_code == 200
    assert "DOELPOORT_ORIGIN" not in output  # a deployment's own origin: no warning


@pytest.fixture(scope="module")
def set_up(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings.from_env().with_var_dir(tmp_path_factory.mktemp("set-up") / "var")
    bootstrap(settings, echo=lambda _line: None)
    return settings


def _log_being_written(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    # Another process writes the log (here: its writer lock, held by the test).
    lock = lock_writer(settings.audit_db_path)
    try:
        yield "cannot start: another process is writing to the audit log"
    finally:
        os.close(lock)


def _port_taken(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["DOELPOORT_PORT"] = str(taken.getsockname()[1])
        yield "address already in use"


def _ops_port_taken(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["DOELPOORT_OPS_PORT"] = str(taken.getsockname()[1])
        yield "for operations: Address already in use"


@pytest.mark.parametrize(
    "failure", [_log_being_written, _port_taken, _ops_port_taken], ids=lambda f: f.__name__
)
def test_a_gateway_that_cannot_start_says_why_and_prints_no_banner(
    set_up: Settings,
    tmp_path: Path,
    failure: Callable[[Settings, dict[str, str]], Iterator[str]],
) -> None:
    var = tmp_path / "var"
    shutil.copytree(set_up.var_dir, var)
    settings = set_up.with_var_dir(var)
    env = {
        **os.environ,
        "DOELPOORT_VAR_DIR": str(var),
        "DOELPOORT_PORT": str(free_port()),
        "DOELPOORT_OPS_PORT": "0",
    }
    with contextmanager(failure)(settings, env) as reason:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert reason in output
    assert "Traceback" not in output
    assert "Doelpoort serves" not in output
    assert "curl" not in output


def test_an_impossible_port_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "99999"],
        env={**os.environ, "DOELPOORT_VAR_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "--port" in output
    assert "99999" in output
    assert "Traceback" not in output
    assert "Doelpoort serves" not in output
    assert not (tmp_path / "var").exists()
