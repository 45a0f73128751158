"""``doelpoort serve`` in its own process swaps its policy set on SIGHUP or a change of its
files — only a set that passes vetting — and keeps answering requests over mutual TLS
meanwhile (gateway/policy_switch.py). Few tests, as each serving process is slow to
start; the swap's logic is tested in-process in tests/test_policy_switch.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.policy.bundle import compile_bundle
from gateway.settings import PROJECT_ROOT
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.tls import client_ssl_context
from tests.policy.policy_support import demo_catalog
from tests.test_serve import BANNER, Output, serving

REFUSED = "policy reload (sighup) refused, still serving "


class Served:
    """One serving process: its output, its files, and a partner's client."""

    def __init__(self, lines: Output, var: Path, policies: Path) -> None:
        self.lines = lines
        self.var = var
        self.policies = policies
        self.port = next(int(m[1]) for line in lines if (m := BANNER.fullmatch(line)))
        self.good = {p: p.read_bytes() for p in policies.rglob("*") if p.is_file()}

    def client(self) -> httpx.Client:
        pki = PkiPaths(self.var / "pki")
        context = client_ssl_context(
            pki.ca_cert, pki.partner_cert("politie"), pki.partner_key("politie")
        )
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=context, timeout=30.0)

    def ask(self, client: httpx.Client) -> httpx.Response:
        subjects = json.loads((self.var / "demo" / "subjects.json").read_text("utf-8"))
        body = {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0042",
            "justification": "reload test",
            "subject": subjects["subjects"]["ct_subject"]["subject"],
            "datasets": ["ind/residence"],
        }
        return client.post("/v1/disclosures", json=body)

    def serving_digest(self) -> str:
        with self.client() as client:
            response = self.ask(client)
        assert response.status_code == 200, response.text
        digest: str = response.json()["disclosure"]["policy_digest"]
        return digest

    def hang_up(self) -> str:
        """SIGHUP, and the log line saying what came of it."""
        os.kill(self.lines.pid, signal.SIGHUP)
        line = self.lines.read_until(lambda line: "policy reload (sighup)" in line, timeout=60)
        assert line is not None, "\n".join(self.lines)
        return line

    def restore(self) -> None:
        for path in self.policies.rglob("*"):
            if path.is_file() and path not in self.good:
                path.unlink()
        for path, content in self.good.items():
            path.write_bytes(content)

    def policy_changes(self) -> list[dict[str, Any]]:
        with sqlite3.connect(f"file:{self.var / 'audit.sqlite3'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT body FROM entries WHERE decision = 'policy-change' ORDER BY seq"
            ).fetchall()
        return [json.loads(body) for (body,) in rows]


@contextmanager
def serve(tmp: Path, **env: str) -> Iterator[Served]:
    var, policies = tmp / "var", tmp / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    # A reload runs the set's own Rego tests (the default). The shipped ones pin the demo
    # register, which these tests edit: this deployment has a test of its own instead.
    for shipped in policies.rglob("*_test.rego"):
        shipped.unlink()
    (policies / "doelpoort" / "ours_test.rego").write_text(
        "package doelpoort.ours_test\n\nimport rego.v1\n\n"
        "test_ct_assessment_is_registered if {\n"
        '\tdata.register.purposes["ct-assessment"].legal_basis != ""\n}\n',
        encoding="utf-8",
    )
    settings_env = {
        "DOELPOORT_VAR_DIR": str(var),
        "DOELPOORT_POLICIES_DIR": str(policies),
        "DOELPOORT_PORT": "0",
        "DOELPOORT_OPS_PORT": "0",
        **env,
    }
    with serving(["--setup"], settings_env) as lines:
        yield Served(lines, var, policies)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A gateway that reloads on SIGHUP only (its files are not watched)."""
    with serve(tmp_path_factory.mktemp("reload"), DOELPOORT_POLICY_WATCH_S="0") as served:
        yield served


def edit_register(policies: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = policies / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(register)
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")


def tighten(register: dict[str, Any]) -> None:
    ops = register["purposes"]["ct-assessment"]["datasets"]["ind/residence"]["field_ops"]
    del ops["nationality"]


def syntax_error(policies: Path) -> None:
    rego = policies / "doelpoort" / "deny.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\ndeny contains if {\n", encoding="utf-8")


def unknown_dataset(policies: Path) -> None:
    edit_register(
        policies,
        lambda r: r["purposes"]["vertrek"]["datasets"].update(
            {"dji/detentoin": {"field_ops": {"name": "keep"}}}
        ),
    )


def probe_fails(policies: Path) -> None:
    (policies / "doelpoort" / "extra.rego").write_text(
        "package doelpoort.disclosure\n\nimport rego.v1\n\n"
        "zero := count(input.subject_keys) - count(input.subject_keys)\n\n"
        'deny contains sprintf("%d", [1 / zero]) if true\n',
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (syntax_error, "doelpoort/deny.rego:"),
        (unknown_dataset, "purpose vertrek, dataset dji/detentoin: the connector catalog"),
        (probe_fails, "the policy gives no valid decision for a probe input"),
    ],
    ids=lambda value: getattr(value, "__name__", "reason"),
)
def test_a_broken_set_is_refused_on_sighup_and_the_old_one_keeps_serving(
    served: Served, breakage: Callable[[Path], None], reason: str
) -> None:
    digest = served.serving_digest()
    before = len(served.policy_changes())
    breakage(served.policies)
    try:
        line = served.hang_up()
        assert REFUSED + digest in line, line
        assert reason in line
        assert served.serving_digest() == digest  # still answered, by the old set
        changes = served.policy_changes()
        assert len(changes) == before + 1
        change = changes[-1]
        assert (change["trigger"], change["outcome"], change["old_digest"]) == (
            "sighup",
            "refused",
            digest,
        )
        assert any(reason in r for r in change["reasons"])
    finally:
        served.restore()


def test_a_tightened_register_is_swapped_in_on_sighup_while_requests_flow(
    served: Served,
) -> None:
    old = served.serving_digest()
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with served.client() as client:
            while not stop.is_set():
                response = served.ask(client)
                digest = response.json().get("disclosure", {}).get("policy_digest")
                answers.append((response.status_code, digest))

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        while not answers and asking.is_alive():
            stop.wait(0.05)  # asking already when the set changes
        edit_register(served.policies, tighten)
        new = compile_bundle(served.policies, demo_catalog()).digest
        line = served.hang_up()
        assert f"now serving {new} (was {old})" in line, line
        asked_before = len(answers)
        while len(answers) < asked_before + 5 and asking.is_alive():
            stop.wait(0.05)
    finally:
        stop.set()
        asking.join(timeout=60)
    assert answers
    assert {status for status, _ in answers} == {200}  # no request failed for the swap
    assert {digest for _, digest in answers} == {old, new}
    assert answers[-1][1] == new
    with served.client() as client:
        after = served.ask(client).json()["disclosure"]
    assert after["policy_digest"] == new
    assert "nationality" not in after["results"][0]["field_ops"]
    change = served.policy_changes()[-1]
    assert (change["trigger"], change["outcome"], change["old_digest"], change["new_digest"]) == (
        "sighup",
        "swapped",
        old,
        new,
    )


def test_a_change_of_the_files_is_swapped_in_without_a_signal(tmp_path: Path) -> None:
    with serve(tmp_path, DOELPOORT_POLICY_WATCH_S="0.2") as served:
        old = served.serving_digest()
        edit_register(served.policies, tighten)
        new = compile_bundle(served.policies, demo_catalog()).digest
        line = served.lines.read_until(lambda line: "policy reload (file-change)" in line)
        assert line is not None, "\n".join(served.lines)
        assert f"now serving {new} (was {old})" in line
        assert served.serving_digest() == new


def test_a_gateway_pinned_to_another_digest_does_not_start(tmp_path: Path) -> None:
    pinned = "sha256:" + "0" * 64
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--setup"],
        env={
            **os.environ,
            "DOELPOORT_VAR_DIR": str(tmp_path / "var"),
            "DOELPOORT_PORT": "0",
            "DOELPOORT_OPS_PORT": "0",
            "DOELPOORT_POLICY_DIGEST": pinned,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    digest = compile_bundle(PROJECT_ROOT / "policies", demo_catalog()).digest
    assert "the policy set is refused" in output
    assert f"its digest {digest} is not the pinned {pinned}" in output
    assert "Traceback" not in output
    assert "Doelpoort serves" not in output
