"""A seeded gateway for the console's tests, and Debian's Chromium driven by Playwright.

The log is seeded the way a log fills up: real disclosures made through the running
gateway with the partners' certificates (the demo's stories, a few rounds of them:
allowed, partly denied and denied requests), and requests the gateway refuses
(malformed, an unknown dataset, a partner on the DPO's console), so every kind of entry
the console lists is there.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import split_note
from audit.cosignature import cosign
from audit.witness import WitnessKey
from gateway.dev.demo import STEPS
from gateway.dpo.proofs import WITNESS_KEYS_FILE
from gateway.settings import PROJECT_ROOT
from tests.gateway_support import Deployment

CHROMIUM = Path("/usr/bin/chromium")
# Debian's build, headless, and quiet: nothing is fetched from the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
ROUNDS = 4


@dataclass
class Seeded:
    """What the seeding did: the answers' statuses, and the requests it made."""

    statuses: Counter[int] = field(default_factory=Counter)
    disclosures: int = 0
    refusals: int = 0
    pseudonyms: list[str] = field(default_factory=list)
    """Pseudonyms the disclosures released (synthetic subjects), for the search."""
    witness: str = ""
    cosigned_size: int = 0


def seed_log(deployment: Deployment) -> Seeded:
    """ROUNDS rounds of the demo's stories, and four refused requests per round."""
    subjects = deployment.subjects
    seeded = Seeded()
    number = 0
    for _round in range(ROUNDS):
        for step in STEPS:
            number += 1
            body: dict[str, Any] = {
                "purpose": step.purpose,
                "case_ref": f"DEMO-2026-{number:04d}",
                "justification": step.justification,
                "subject": subjects[step.subject_key],
            }
            if step.datasets:
                body["datasets"] = step.datasets
            response = deployment.disclose(step.partner, body)
            seeded.statuses[response.status_code] += 1
            seeded.disclosures += 1
            if response.status_code == 200:
                seeded.pseudonyms.extend(_pseudonyms(response.json()))
        with deployment.client("politie") as politie:
            refused = [
                politie.post(
                    "/v1/disclosures",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                ),
                politie.post(
                    "/v1/disclosures",
                    json={
                        "purpose": "ct-assessment",
                        "case_ref": "CTI-2026-0042",
                        "justification": "synthetic: a dataset that does not exist",
                        "subject": subjects["ct_subject"],
                        "datasets": ["nope/none"],
                    },
                ),
                politie.post(
                    "/v1/disclosures", content=b"x", headers={"content-type": "text/plain"}
                ),
            ]
        with deployment.client("kmar") as kmar:
            refused.append(kmar.get("/dpo/"))
        for response in refused:
            seeded.statuses[response.status_code] += 1
            seeded.refusals += 1
    return seeded


def cosign_latest(deployment: Deployment, seeded: Seeded) -> None:
    """A witness of the DPO's cosigns the latest checkpoint, handed in through the DPO's
    API as `doelpoort witness` does."""
    witness = WitnessKey("dpo.example/witness", Ed25519PrivateKey.generate())
    (deployment.settings.keys_dir / WITNESS_KEYS_FILE).write_text(witness.verifier_key + "\n")
    with deployment.dpo_client() as dpo:
        note = dpo.get("/v1/audit/checkpoint").text
        text = split_note(note)[0]
        size = int(text.splitlines()[1])
        line = cosign(text, witness.name, witness.private_key, int(time.time())).line()
        handed_in = dpo.post("/v1/audit/cosignatures", json={"size": size, "cosignature": line})
    assert handed_in.status_code == 201, handed_in.text
    seeded.witness, seeded.cosigned_size = witness.name, size


def _pseudonyms(answer: dict[str, Any]) -> list[str]:
    return [
        value
        for result in answer["disclosure"]["results"]
        for record in result.get("records") or []
        for value in record.values()
        if isinstance(value, str) and value.startswith("psn:")
    ]


def require_chromium() -> Path:
    """Debian's Chromium, or a failure that says how to get it (never a skip)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    if found is not None:
        return Path(found)
    raise AssertionError(
        f"Debian's chromium is not installed ({CHROMIUM} is missing): the DPO console's "
        "browser tests need it. `make test` installs it (apt-get install -y "
        "--no-install-recommends chromium)."
    )


def screenshot_path(page: str) -> Path:
    """Where the run's screenshot of ``page`` goes (build/ is not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{page}.png"
