"""``doelpoort serve --setup`` (what ``make run`` runs) prints a curl line that works."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """Start the real command in its own process; yield its output lines so far."""
    port = free_port()
    env = dict(os.environ, DOELPOORT_VAR_DIR=str(tmp_path / "var"), DOELPOORT_PORT=str(port))
    command = [sys.executable, "-m", "gateway", "serve", "--setup"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Stop with Ctrl-C" in line:
                break
        _wait_for_port(port)
        yield lines, tmp_path / "var"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the gateway never listened")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_printed_curl_line_works(served: tuple[list[str], Path]) -> None:
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


def test_a_gateway_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    # The log is being written by another process (held here): the second gateway stops
    # at start-up with the reason, not a traceback.
    from audit.storage.sqlite.lock import lock_writer
    from gateway.dev.bootstrap import bootstrap
    from gateway.settings import Settings

    var = tmp_path / "var"
    settings = Settings().with_var_dir(var)
    bootstrap(settings, echo=lambda _line: None)
    env = dict(os.environ, DOELPOORT_VAR_DIR=str(var), DOELPOORT_PORT=str(free_port()))
    lock = lock_writer(settings.audit_db_path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(lock)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "cannot start: another process is writing to the audit log" in output
    assert "Traceback" not in output
