"""Schemathesis against a running gateway, over mutual TLS with a partner's certificate.

The fuzzer runs as a deployment's operator would run it (README, "The contract"): the
`schemathesis run` command against ``/openapi.json``, with the police's certificate, every
check, the examples, coverage and fuzzing phases in positive and negative mode, a fixed
seed and one worker, so the run and its figures are the same every time. It must find
nothing: no 5xx, no status, content type, header or body the document does not declare,
no request the document calls valid refused and none it calls invalid accepted. Of the
disclosure requests it sends, a share must get past validation to a policy decision (a
200, or a 403 purpose-denied): a fuzzer whose requests all end in 422 tests only the
validation. The purpose list must be fetched and revalidated (a 304) as well. The
figures are printed, by phase, mode and status.

The gateway is a deployment of its own (the requests fill an audit log), served by the
real TLS server in this process; schemathesis runs in a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.api_models import bsn_is_valid
from gateway.settings import PROJECT_ROOT
from tests.contract_hooks import complete_bsn
from tests.gateway_support import make_settings, running_gateway

pytestmark = pytest.mark.slow

PARTNER = "politie"
MAX_EXAMPLES = 300  # per operation and mode, in the fuzzing phase
SEED = 20261122
MIN_DECISION_SHARE = 0.20
DISCLOSURES = ("POST", "/v1/disclosures")


@dataclass
class Figures:
    """What the run sent and got, from schemathesis's own event log."""

    #: (method, path, phase, mode, status, problem code or "") → requests
    requests: Counter[tuple[str, str, str, str, int, str]] = field(default_factory=Counter)

    @classmethod
    def from_events(cls, ndjson: Path) -> Figures:
        figures = cls()
        for line in ndjson.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = recorder["cases"][case_id]["value"]
                response = interaction.get("response")
                if response is None:  # the request never got an answer
                    status, code = 0, "no-response"
                else:
                    status, code = response["status_code"], _problem_code(response)
                meta = case["meta"]
                key = (
                    case["method"],
                    case["path"],
                    meta["phase"]["name"],
                    meta["generation"]["mode"],
                    status,
                    code,
                )
                figures.requests[key] += 1
        return figures

    def total(self, **where: Any) -> int:
        names = ("method", "path", "phase", "mode", "status", "code")
        return sum(
            count
            for key, count in self.requests.items()
            if all(key[names.index(name)] == value for name, value in where.items())
        )

    def reaching_a_decision(self, **where: Any) -> int:
        method, path = DISCLOSURES
        decided = self.total(method=method, path=path, status=200, **where)
        return decided + self.total(
            method=method, path=path, status=403, code="purpose-denied", **where
        )

    def report(self) -> str:
        method, path = DISCLOSURES
        disclosures = self.total(method=method, path=path)
        positive = self.total(method=method, path=path, mode="positive")
        lines = [
            f"schemathesis: {self.total()} requests, {disclosures} to {method} {path}"
            f" ({positive} positive, {disclosures - positive} negative)",
            f"  reaching a policy decision (200, 403 purpose-denied):"
            f" {self.reaching_a_decision()} of {disclosures}"
            f" ({self.reaching_a_decision() / disclosures:.0%});"
            f" of the positive: {self.reaching_a_decision(mode='positive')} of {positive}",
        ]
        by_status = Counter[tuple[int, str]]()
        for (m, p, _phase, _mode, status, code), count in self.requests.items():
            if (m, p) == DISCLOSURES:
                by_status[status, code] += count
        lines.append(
            "  disclosures by status: "
            + ", ".join(
                f"{s}{' ' + c if c else ''}: {n}" for (s, c), n in sorted(by_status.items())
            )
        )
        others = Counter[int]()
        for (m, p, *_rest, status, _code), count in self.requests.items():
            if (m, p) != DISCLOSURES:
                others[status] += count
        lines.append(
            "  other operations and methods by status: "
            + ", ".join(f"{s}: {n}" for s, n in sorted(others.items()))
        )
        return "\n".join(lines)


def _problem_code(response: dict[str, Any]) -> str:
    content = response.get("content") or {}
    if "$base64" not in content:
        return ""
    try:
        body = json.loads(base64.b64decode(content["$base64"]))
    except ValueError:
        return ""
    kind = body.get("type", "") if isinstance(body, dict) else ""
    return str(kind).rsplit(":", 1)[-1] if kind.startswith("urn:doelpoort:problem:") else ""


def test_every_bsn_the_hooks_draw_passes_the_eleven_test() -> None:
    drawn = [complete_bsn(n) for n in range(0, 99_999_999, 99_991)]
    valid = [bsn for bsn in drawn if bsn is not None]
    assert len(valid) > len(drawn) * 0.85  # one start in eleven has no check digit
    assert all(bsn_is_valid(bsn) for bsn in valid)


def test_the_running_gateway_keeps_its_contract_under_schemathesis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    with running_gateway(make_settings(tmp_path / "var")) as gateway:
        pki = gateway.paths
        command = [
            *(sys.executable, "-m", "schemathesis.cli", "run"),
            f"{gateway.base_url}/openapi.json",
            *("--request-cert", str(pki.partner_cert(PARTNER))),
            *("--request-cert-key", str(pki.partner_key(PARTNER))),
            *("--tls-verify", str(pki.ca_cert)),
            *("--checks", "all"),
            *("--phases", "examples,coverage,fuzzing"),
            *("--mode", "all"),
            *("--max-examples", str(MAX_EXAMPLES)),
            *("--seed", str(SEED)),
            *("--workers", "1"),
            *("--report", "ndjson,json", "--report-dir", str(reports)),
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.contract_hooks",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        bugs = [line for line in gateway.log.lines if "request failed" in line]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    (summary_file,) = reports.glob("json-*.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["complete"]
    assert summary["stop_reason"] == "completed"
    assert summary["test_cases"]["with_failures"] == 0
    assert summary["failures"] == []
    assert summary["errors"] == []
    # No regex it cannot generate from, no operation whose valid requests all fail, ...
    assert not any(summary["warnings"].values()), summary["warnings"]
    assert not bugs  # and the gateway never met a bug (a 500 it contained)

    (events,) = reports.glob("ndjson-*.ndjson")
    figures = Figures.from_events(events)
    with capsys.disabled():
        print(
            f"\n{figures.report()}\n  (seed {SEED}, {MAX_EXAMPLES} examples,"
            f" {summary['running_time']:.1f} s)"
        )
    assert figures.total() == summary["test_cases"]["generated"]
    assert not [key for key in figures.requests if key[4] >= 500 or key[4] == 0]
    method, path = DISCLOSURES
    disclosures = figures.total(method=method, path=path)
    assert figures.reaching_a_decision() >= MIN_DECISION_SHARE * disclosures
    # Every example of the document (one per purpose) was sent and decided.
    assert figures.total(method=method, path=path, phase="examples") >= 4
    # The purpose list was asked for, and revalidated (If-None-Match) with a 304 too.
    assert figures.total(method="GET", path="/v1/purposes", status=200) > 0
    assert figures.total(method="GET", path="/v1/purposes", status=304) > 0
