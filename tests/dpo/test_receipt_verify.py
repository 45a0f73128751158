"""`doelpoort receipt verify` against a real gateway over mutual TLS: as the partner that
asked, as the DPO, with a JWKS file, and every way a receipt can fail to hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from audit.checkpoint import verifier_key
from gateway._cli import app
from gateway.keys import load_receipt_keys
from gateway.signing import ReceiptSigner
from tests.gateway_support import Deployment

runner = CliRunner()
REQUESTER = "ind"


def cli(gateway: Deployment, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--var-dir", str(gateway.settings.var_dir)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def log_vkey(gateway: Deployment, tmp_path: Path) -> Path:
    code, out, _ = cli(gateway, "audit", "export-key")
    assert code == 0
    path = tmp_path / "log.vkey"
    path.write_text(out)
    return path


def answer(gateway: Deployment, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "test: a receipt to verify",
        "subject": gateway.subjects["ct_subject"],
        "datasets": ["ind/residence", "fiu/transactions"],  # IND may not see the FIU's
    }
    response = gateway.disclose(REQUESTER, body)
    assert response.status_code == 200, response.text
    path = tmp_path / "answer.json"
    path.write_text(response.text)
    document: dict[str, Any] = response.json()
    return document, path


def as_partner(gateway: Deployment, partner: str) -> list[str]:
    paths = gateway.paths
    return [
        *("--url", gateway.base_url),
        *("--cert", str(paths.partner_cert(partner))),
        *("--tls-key", str(paths.partner_key(partner))),
        *("--ca", str(paths.ca_cert)),
    ]


def test_the_requester_verifies_its_receipt(
    gateway: Deployment, tmp_path: Path, log_vkey: Path
) -> None:
    document, path = answer(gateway, tmp_path)
    code, out, err = cli(
        gateway,
        "receipt",
        "verify",
        str(path),
        "--log-key",
        str(log_vkey),
        *as_partner(gateway, REQUESTER),
    )
    assert code == 0, err
    results = document["disclosure"]["results"]
    for result in results:
        seq, dataset, decision = result["audit_seq"], result["dataset"], result["decision"]
        assert f"audit entry {seq} ({dataset}, {decision}): matches" in out
    assert {r["decision"] for r in results} == {"allow", "deny"}
    assert f"receipt verified: {document['disclosure']['id']}, 2 audit entries" in out


def test_the_dpo_verifies_a_bare_jws_with_a_jwks_file(
    gateway: Deployment, tmp_path: Path, log_vkey: Path
) -> None:
    document, _ = answer(gateway, tmp_path)
    jws = tmp_path / "receipt.jws"
    jws.write_text(document["jws"] + "\n")
    jwks = tmp_path / "jwks.json"
    assert cli(gateway, "receipt", "jwks", "-o", str(jwks))[0] == 0
    code, out, err = cli(
        gateway,
        "receipt",
        "verify",
        str(jws),
        "--jwks",
        str(jwks),
        "--log-key",
        str(log_vkey),
        "--url",
        gateway.base_url,
    )
    assert code == 0, err
    assert "receipt verified" in out


def test_another_partner_cannot_see_the_entries(
    gateway: Deployment, tmp_path: Path, log_vkey: Path
) -> None:
    _, path = answer(gateway, tmp_path)
    code, _, err = cli(
        gateway,
        "receipt",
        "verify",
        str(path),
        "--log-key",
        str(log_vkey),
        *as_partner(gateway, "kmar"),
    )
    assert code == 1
    assert "shows no such entry to this certificate" in err


def test_a_changed_receipt_does_not_verify(
    gateway: Deployment, tmp_path: Path, log_vkey: Path
) -> None:
    document, _ = answer(gateway, tmp_path)
    header, payload, signature = document["jws"].split(".")
    forged = tmp_path / "forged.jws"
    forged.write_text(f"{header}.{payload[:-4]}AAAA.{signature}")
    code, _, err = cli(
        gateway,
        "receipt",
        "verify",
        str(forged),
        "--log-key",
        str(log_vkey),
        "--url",
        gateway.base_url,
    )
    assert code == 1
    assert "its signature does not verify with any key of the JWKS" in err


def signed(gateway: Deployment, disclosure: dict[str, Any], tmp_path: Path) -> Path:
    """A receipt the gateway's own key signs (a test stand-in for a signing bug or a
    stolen key): it verifies as a JWS, so only the log can show it false."""
    receipt = ReceiptSigner(*load_receipt_keys(gateway.settings.keys_dir)).sign_disclosure(
        disclosure
    )
    path = tmp_path / "signed.jws"
    path.write_text(receipt.jws)
    return path


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ("records", "records_sha256 got"),
        ("decision", "decision got 'allow', want 'deny'"),
        ("dataset", "dataset got"),
        ("audit_seq", "disclosure_id got"),
    ],
)
def test_a_receipt_that_disagrees_with_its_audit_entry_does_not_verify(
    gateway: Deployment, tmp_path: Path, log_vkey: Path, change: str, complaint: str
) -> None:
    document, _ = answer(gateway, tmp_path)
    disclosure = json.loads(json.dumps(document["disclosure"]))
    allowed = next(r for r in disclosure["results"] if r["decision"] == "allow")
    if change == "records":
        allowed["records"] = [{**allowed["records"][0], "date_of_birth": "1901"}]
    elif change == "decision":
        allowed["decision"] = "deny"
    elif change == "dataset":
        allowed["dataset"] = "fiod/tax-records"
    else:  # an entry of another request by the same partner (not seq 1: the shared
        # gateway's first entry may be any test's, a refusal too)
        (tmp_path / "other").mkdir()
        other, _ = answer(gateway, tmp_path / "other")
        allowed["audit_seq"] = next(
            r["audit_seq"] for r in other["disclosure"]["results"] if r["decision"] == "allow"
        )
    code, _, err = cli(
        gateway,
        "receipt",
        "verify",
        str(signed(gateway, disclosure, tmp_path)),
        "--log-key",
        str(log_vkey),
        "--url",
        gateway.base_url,
    )
    assert code == 1, err
    assert "receipt NOT verified: audit entry" in err
    assert complaint in err


def test_another_log_key_does_not_verify_the_checkpoint(
    gateway: Deployment, tmp_path: Path
) -> None:
    _, path = answer(gateway, tmp_path)
    other = tmp_path / "other.vkey"
    other.write_text(
        verifier_key(gateway.settings.origin, Ed25519PrivateKey.generate().public_key())
    )
    code, _, err = cli(
        gateway, "receipt", "verify", str(path), "--log-key", str(other), "--url", gateway.base_url
    )
    assert code == 1
    assert "its checkpoint does not verify with the log key" in err


def test_setup_problems_and_an_unreachable_gateway_have_their_own_codes(
    gateway: Deployment, tmp_path: Path, log_vkey: Path
) -> None:
    _, path = answer(gateway, tmp_path)
    missing = tmp_path / "missing.json"
    code, _, err = cli(gateway, "receipt", "verify", str(missing), "--log-key", str(log_vkey))
    assert code == 2
    assert "cannot read the receipt" in err
    not_json = tmp_path / "odd.json"
    not_json.write_text('{"disclosure": {}}')
    assert cli(gateway, "receipt", "verify", str(not_json), "--log-key", str(log_vkey))[0] == 2
    code, _, err = cli(
        gateway,
        "receipt",
        "verify",
        str(path),
        "--log-key",
        str(log_vkey),
        "--url",
        "https://127.0.0.1:1",
    )
    assert code == 3
    assert "cannot reach the gateway" in err
