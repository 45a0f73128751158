"""A runaway policy evaluation delays no other request and holds up no shutdown.

Real regopy, a real Rego loop of hours (tests/policy/runaway.py), the scenarios in one
child process that the runaways die with. The bounds are coarse on purpose — seconds
against a runaway of hours — so they say "did not wait for the runaway", never how fast
anything is (SPEC §10: no timed performance tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.policy.policy_support import POLICIES, REPO
from tests.policy.runaway import RUNAWAY_REGO

#: Far below the runaway's hours, far above anything the scenarios wait for.
NOT_WAITING_S = 5.0


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    policies = tmp_path_factory.mktemp("runaway") / "policies"
    (policies / "doelpoort").mkdir(parents=True)
    shutil.copy(POLICIES / "register.yaml", policies / "register.yaml")
    (policies / "doelpoort" / "disclosure.rego").write_text(RUNAWAY_REGO, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.policy.runaway", str(policies)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            # A shutdown held up by the runaways would last hours: this is the bound.
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not end while runaway evaluations ran")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_a_runaway_times_out_and_others_are_answered_meanwhile(reports: dict[str, Any]) -> None:
    report = reports["timeout"]
    outcome, seconds = report["runaway"]
    assert outcome.startswith("PolicyEvaluationError: the policy did not decide within 0.5 s")
    assert seconds < NOT_WAITING_S
    # The second worker answered while the first was lost in the loop, and after.
    for key in ("meanwhile", "after"):
        assert report[key][0] == "ok"
        assert report[key][1] < NOT_WAITING_S
    assert report["ready"]  # one worker is still free


def test_with_every_worker_busy_a_request_is_refused_at_once(reports: dict[str, Any]) -> None:
    report = reports["busy"]
    assert report["runaway"][0].startswith("PolicyEvaluationError: the policy did not decide")
    # Who waited for the only worker is refused when it is written off, not hours later.
    waited, waited_s = report["waiting"]
    assert waited.startswith("PolicyUnavailable: every policy worker is busy")
    assert waited_s < NOT_WAITING_S
    # Who comes after is refused at once, without waiting at all.
    refused, refused_s = report["next"]
    assert refused.startswith("PolicyUnavailable: every policy worker (1) is still busy")
    assert refused_s < 1.0
    assert not report["ready"]  # /readyz fails while no worker can answer


def test_aclose_and_exit_do_not_wait_for_a_runaway(reports: dict[str, Any]) -> None:
    # `reports` fails unless the child process, runaways and all, also ended in time.
    report = reports["shutdown"]
    assert report["aclose_s"] < 1.0
    outcome, seconds = report["runaway"]
    assert outcome == "PolicyUnavailable: the policy engine is closed"
    assert seconds < NOT_WAITING_S
