"""A scripted exchange between demo partners, to see purpose binding at work.

Every subject, record and partner in it is synthetic. Each step calls the running
gateway as one partner (with that partner's own client certificate) and prints what
came back: which datasets were released, in what form, and what was refused and why.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.dev.demo_data import subjects_path
from gateway.errors import ConfigurationError, InvalidReceipt
from gateway.keys import ESCROW_PRIVATE_KEY_FILE
from gateway.settings import Settings
from gateway.signing import verify_receipt
from gateway.transport.pki_paths import PkiPaths
from gateway.transport.tls import client_ssl_context

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    partner: str
    purpose: str
    subject_key: str
    story: str
    datasets: list[str] | None = None
    expect: int = 200
    justification: str = "synthetic demo: assess whether the subject is involved in terrorism"


def load_subjects(settings: Settings) -> dict[str, dict[str, str]]:
    """The synthetic subjects `doelpoort setup` wrote, by name."""
    path = subjects_path(settings.var_dir)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return {name: entry["subject"] for name, entry in data["subjects"].items()}
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise ConfigurationError(
            f"no synthetic demo subjects in {path} ({type(exc).__name__}): run `doelpoort setup`"
        ) from exc


STEPS = [
    Step(
        "politie",
        "ct-assessment",
        "ct_subject",
        "The police ask the CT Infobox for a multidisciplinary assessment.",
    ),
    Step(
        "ind",
        "ct-assessment",
        "ct_subject",
        "IND asks for the same subject, including FIU transactions it is not granted.",
        datasets=["ind/residence", "kmar/border-crossings", "fiu/transactions"],
    ),
    Step(
        "dtv",
        "vertrek",
        "departure_subject",
        "DT&V prepares the departure of a convict without lawful residence (LAOV).",
    ),
    Step(
        "kmar",
        "vertrek",
        "lawful_resident",
        "KMar asks under the departure purpose about a lawful resident: not a departure case.",
        expect=403,
    ),
    Step(
        "dtv",
        "vertrek",
        "departure_subject",
        "DT&V asks for intelligence and police data under the departure purpose.",
        datasets=["aivd/ct-signals", "politie/incidents", "fiu/transactions"],
        expect=403,
    ),
    Step(
        "voorbeeldbank",
        "tf-screening",
        "bank_customer",
        "A bank in the terrorist-financing pilot screens a customer's IBAN.",
    ),
    Step(
        "voorbeeldbank",
        "ct-assessment",
        "bank_customer",
        "The same bank tries the CT Infobox purpose.",
        expect=403,
    ),
    Step(
        "kmar",
        "pnr-request",
        "passenger",
        "KMar demands passenger data for a specific threat.",
        justification="synthetic demo: imminent threat, travel movements strictly necessary",
    ),
]


def client_for(settings: Settings, partner: str, base_url: str) -> httpx.AsyncClient:
    paths = PkiPaths(settings.pki_dir)
    context = client_ssl_context(
        paths.ca_cert, paths.partner_cert(partner), paths.partner_key(partner)
    )
    return httpx.AsyncClient(base_url=base_url, verify=context, timeout=10.0)


def _format_records(records: list[Mapping[str, Any]], echo: Echo) -> None:
    for record in records[:3]:
        echo("        " + ", ".join(f"{k}={v}" for k, v in sorted(record.items())))
    if len(records) > 3:
        echo(f"        … and {len(records) - 3} more")


def _report(step: Step, response: httpx.Response, jwks: Mapping[str, Any], echo: Echo) -> bool:
    body = response.json()
    ok = response.status_code == step.expect
    mark = "as the story expects" if ok else "UNEXPECTED"
    echo(f"   → HTTP {response.status_code} ({mark})")
    if response.status_code != 200:
        echo(f"     refused: {body.get('detail')}")
        for reason in body.get("reasons", []):
            echo(f"       - {reason}")
        return ok
    try:
        verify_receipt(body["jws"], jwks)
        echo("     receipt: JWS verified against /.well-known/jwks.json")
    except InvalidReceipt:
        echo("     receipt: DOES NOT VERIFY")
        ok = False
    for result in body["disclosure"]["results"]:
        dataset, decision = result["dataset"], result["decision"]
        if decision == "allow":
            echo(f"     {dataset}: released {len(result['records'])} record(s), as")
            ops = ", ".join(f"{k}:{v}" for k, v in result["field_ops"].items())
            echo(f"        [{ops}]")
            _format_records(result["records"], echo)
        elif decision == "deny":
            echo(f"     {dataset}: denied — {'; '.join(result['reasons'])}")
        else:
            echo(f"     {dataset}: withheld — {result['error']['title']}")
    return ok


async def run_demo(settings: Settings, base_url: str, echo: Echo = print) -> int:
    """Play :data:`STEPS`; 0 when every step got the answer the story expects."""
    subjects = load_subjects(settings)
    failures = 0
    async with client_for(settings, "politie", base_url) as any_client:
        try:
            jwks = (await any_client.get("/.well-known/jwks.json")).json()
        except httpx.TransportError as exc:
            echo(f"Cannot reach the gateway at {base_url} ({type(exc).__name__}).")
            echo("Start it first with `make run`.")
            return 2
        except ValueError:
            echo(f"The server at {base_url} did not answer as a Doelpoort gateway.")
            return 2
    echo("Doelpoort demo — every partner, subject and record here is synthetic.\n")
    escrowed: int | None = None  # an audit entry whose dataset released pseudonyms
    for number, step in enumerate(STEPS, start=1):
        subject = subjects[step.subject_key]
        body: dict[str, Any] = {
            "purpose": step.purpose,
            "case_ref": f"DEMO-2026-{number:04d}",
            "justification": step.justification,
            "subject": subject,
        }
        if step.datasets:
            body["datasets"] = step.datasets
        echo(f"{number}. {step.story}")
        echo(f"   {step.partner} asks for purpose '{step.purpose}' by {', '.join(subject)}")
        try:
            async with client_for(settings, step.partner, base_url) as client:
                response = await client.post("/v1/disclosures", json=body)
        except httpx.TransportError as exc:
            # A revoked or untrusted certificate fails the TLS handshake: no HTTP answer.
            echo(f"   → no answer: the gateway closed the connection ({type(exc).__name__});")
            echo(f"     is the certificate of {step.partner} revoked? (UNEXPECTED)")
            failures += 1
            echo("")
            continue
        if not _report(step, response, jwks, echo):
            failures += 1
        if escrowed is None and response.status_code == 200:
            escrowed = _pseudonymised_seq(response.json())
        echo("")
    echo("Every decision above is in the audit log: `doelpoort audit verify`.")
    if escrowed is not None:
        key = settings.dpo_dir / ESCROW_PRIVATE_KEY_FILE
        echo(
            "Only the DPO can trace a pseudonym back: the gateway records the release with "
            "the DPO's reason, then the DPO opens it offline with their private escrow key "
            f"(here, in development, {key}):\n"
            f"  doelpoort audit reidentify {escrowed} --key {key} --url {base_url} "
            "--reason 'demo: a supervisor asks who this was'"
        )
    return 1 if failures else 0


def _pseudonymised_seq(body: dict[str, Any]) -> int | None:
    for result in body["disclosure"]["results"]:
        if result.get("records") and "pseudonymise" in result["field_ops"].values():
            return int(result["audit_seq"])
    return None


def curl_example(settings: Settings, partner: str = "politie") -> str:
    """A working curl line for the README and ``make run``."""
    paths = PkiPaths(settings.pki_dir)
    try:
        subject = load_subjects(settings)["ct_subject"]
    except (OSError, KeyError, ValueError):
        subject = {"bsn": "<a bsn from var/demo/subjects.json>"}
    body = json.dumps(
        {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0042",
            "justification": "synthetic demo request",
            "subject": subject,
        }
    )
    parts = [
        "curl",
        "--cacert",
        str(paths.ca_cert),
        "--cert",
        str(paths.partner_cert(partner)),
        "--key",
        str(paths.partner_key(partner)),
        "-H",
        "content-type: application/json",
        "-d",
        body,
        f"{settings.base_url}/v1/disclosures",
    ]
    return " ".join(shlex.quote(p) for p in parts)
