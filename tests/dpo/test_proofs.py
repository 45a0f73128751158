"""The log's proofs over mutual TLS (gateway/dpo/proofs.py): checkpoint, inclusion and
consistency proofs checked with audit.proof against the signed checkpoints, who may see
which entry, and the DPO's witness handing in cosignatures."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, open_checkpoint, split_note
from audit.cosignature import cosign, cosignatures_of
from audit.entry import entry_leaf_hash, record_from_body
from audit.keys import load_log_public_key
from audit.proof import verify_consistency, verify_inclusion
from audit.reader import AuditReader
from audit.witness import WitnessKey
from gateway.dpo.proofs import WITNESS_KEYS_FILE
from tests.gateway_support import Deployment

SUBJECT_REQUEST = {
    "purpose": "ct-assessment",
    "case_ref": "CTI-2026-0042",
    "justification": "test: proofs of a disclosure",
    "datasets": ["ind/residence", "kmar/border-crossings"],
}


def disclose(gateway: Deployment) -> dict[str, Any]:
    body = {**SUBJECT_REQUEST, "subject": gateway.subjects["ct_subject"]}
    response = gateway.disclose("politie", body)
    assert response.status_code == 200, response.text
    disclosure: dict[str, Any] = response.json()["disclosure"]
    return disclosure


def open_note(gateway: Deployment, note: str) -> Checkpoint:
    origin = gateway.settings.origin
    return open_checkpoint(note, origin, load_log_public_key(gateway.settings.keys_dir), origin)


def nodes(values: list[str]) -> list[bytes]:
    return [base64.b64decode(value) for value in values]


def test_the_checkpoint_is_the_latest_signed_one_for_any_known_peer(gateway: Deployment) -> None:
    disclose(gateway)
    for client in (gateway.client("politie"), gateway.client("kmar"), gateway.dpo_client()):
        with client:
            response = client.get("/v1/audit/checkpoint")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        checkpoint = open_note(gateway, response.text)
        with AuditReader(gateway.settings.audit_db_path) as reader:
            assert checkpoint.size <= reader.count()
            stored = reader.checkpoint(checkpoint.size)
        assert stored is not None
        assert stored.root == checkpoint.root


def test_a_requester_gets_its_entries_proved_against_the_signed_checkpoint(
    gateway: Deployment,
) -> None:
    disclosure = disclose(gateway)
    with gateway.client("politie") as client:
        for result in disclosure["results"]:
            seq = result["audit_seq"]
            response = client.get(f"/v1/audit/proof/{seq}")
            assert response.status_code == 200, response.text
            answer = response.json()
            entry = answer["entry"]
            assert entry["seq"] == seq == answer["leaf_index"] + 1
            prev, body = base64.b64decode(entry["prev"]), base64.b64decode(entry["body"])
            record = record_from_body(body)
            assert getattr(record, "disclosure_id", None) == disclosure["id"]
            assert getattr(record, "dataset", None) == result["dataset"]
            leaf = entry_leaf_hash(seq, prev, body)
            assert base64.b64decode(answer["leaf_hash"]) == leaf
            checkpoint = open_note(gateway, answer["checkpoint"])
            assert checkpoint.size == answer["size"] >= seq
            verify_inclusion(
                seq - 1, checkpoint.size, leaf, nodes(answer["inclusion_proof"]), checkpoint.root
            )


def test_another_partner_gets_the_same_404_as_for_a_missing_entry(gateway: Deployment) -> None:
    seq = disclose(gateway)["results"][0]["audit_seq"]
    with gateway.client("kmar") as client:
        theirs = client.get(f"/v1/audit/proof/{seq}")
        missing = client.get(f"/v1/audit/proof/{2**62}")
        missing_with_size = client.get(f"/v1/audit/proof/{2**62}?size=1")
        theirs_with_size = client.get(f"/v1/audit/proof/{seq}?size=1")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs_with_size.content == missing_with_size.content == missing.content


def test_the_dpo_gets_any_entry_and_an_earlier_tree(gateway: Deployment) -> None:
    first = disclose(gateway)["results"][0]["audit_seq"]
    disclose(gateway)  # the log grows: the first entry is in an older and a newer tree
    with AuditReader(gateway.settings.audit_db_path) as reader:
        older = next(cp for cp in reader.checkpoints() if cp.size >= first)
        below = max(cp.size for cp in reader.checkpoints() if cp.size < first)
    with gateway.dpo_client() as client:
        latest = client.get(f"/v1/audit/proof/{first}").json()
        earlier = client.get(f"/v1/audit/proof/{first}?size={older.size}").json()
        not_a_checkpoint = client.get(f"/v1/audit/proof/{first}?size={2**62}")
        before_the_entry = client.get(f"/v1/audit/proof/{first}?size={below}")
    assert earlier["size"] == older.size < latest["size"]
    for answer in (latest, earlier):
        checkpoint = open_note(gateway, answer["checkpoint"])
        leaf = base64.b64decode(answer["leaf_hash"])
        verify_inclusion(
            first - 1, checkpoint.size, leaf, nodes(answer["inclusion_proof"]), checkpoint.root
        )
    assert not_a_checkpoint.status_code == 404
    assert "no signed checkpoint at size" in not_a_checkpoint.json()["detail"]
    assert before_the_entry.status_code == 404
    assert before_the_entry.json()["detail"] == f"entry {first} is not in the tree of size {below}"


@pytest.mark.parametrize("seq", ["0", "-1", "abc", "01", str(2**63), "1.5"])
def test_a_malformed_seq_is_422(gateway: Deployment, seq: str) -> None:
    with gateway.dpo_client() as client:
        response = client.get(f"/v1/audit/proof/{seq}")
    assert response.status_code == 422
    assert response.json()["type"] == "urn:doelpoort:problem:invalid-request"


def test_consistency_proofs_link_stored_checkpoints(gateway: Deployment) -> None:
    disclose(gateway)
    with AuditReader(gateway.settings.audit_db_path) as reader:
        stored = reader.checkpoints()
    old, new = stored[len(stored) // 2], stored[-1]
    with gateway.client("politie") as client:
        response = client.get("/v1/audit/consistency", params={"from": old.size, "to": new.size})
        latest = client.get("/v1/audit/consistency", params={"from": old.size})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["from"], answer["to"]) == (old.size, new.size)
    first = open_note(gateway, answer["from_checkpoint"])
    last = open_note(gateway, answer["to_checkpoint"])
    verify_consistency(
        old.size, new.size, nodes(answer["consistency_proof"]), first.root, last.root
    )
    assert latest.status_code == 200
    assert latest.json()["to"] >= new.size


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"from": "3", "to": "2"}, 422, "from must not exceed to: got from 3, to 2"),
        ({"to": "2"}, 422, "from is required"),
        ({"from": "0"}, 422, "from must be a whole number"),
        ({"from": "x", "to": "2"}, 422, "from must be a whole number"),
        ({"from": str(2**61), "to": str(2**62)}, 404, f"no signed checkpoint at size {2**61}"),
    ],
)
def test_bad_consistency_requests(
    gateway: Deployment, params: dict[str, str], status: int, detail: str
) -> None:
    disclose(gateway)
    with gateway.client("politie") as client:
        response = client.get("/v1/audit/consistency", params=params)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_a_partner_cannot_hand_in_cosignatures(gateway: Deployment) -> None:
    with gateway.client("politie") as client:
        response = client.post("/v1/audit/cosignatures", json={"size": 1, "cosignature": "x"})
    assert response.status_code == 403
    assert response.json()["type"] == "urn:doelpoort:problem:dpo-only"


def _witness(gateway: Deployment, name: str) -> WitnessKey:
    witness = WitnessKey(name, Ed25519PrivateKey.generate())
    keys = gateway.settings.keys_dir / WITNESS_KEYS_FILE
    existing = keys.read_text() if keys.exists() else "# the DPO's witnesses\n"
    keys.write_text(existing + witness.verifier_key + "\n")
    return witness


def test_the_dpo_hands_in_a_cosignature_that_is_then_served(gateway: Deployment) -> None:
    disclose(gateway)
    witness = _witness(gateway, "dpo.test/witness-a")
    with gateway.dpo_client() as client:
        note = client.get("/v1/audit/checkpoint").text
        checkpoint = open_note(gateway, note)
        text = split_note(note)[0]
        line = cosign(text, witness.name, witness.private_key, int(time.time())).line()
        body = {"size": checkpoint.size, "cosignature": line}
        first = client.post("/v1/audit/cosignatures", json=body)
        again = client.post("/v1/audit/cosignatures", json=body)
        served = client.get("/v1/audit/checkpoint").text
        proof = client.get(f"/v1/audit/proof/{checkpoint.size}?size={checkpoint.size}").json()
    assert first.status_code == 201, first.text
    assert first.json() == {"size": checkpoint.size, "witness": witness.name, "stored": True}
    assert again.status_code == 200
    assert again.json()["stored"] is False
    if open_note(gateway, served).size == checkpoint.size:  # nothing appended meanwhile
        assert served == note + line + "\n"
    (found,) = cosignatures_of(proof["checkpoint"], witness.name, witness.public_key)
    assert found.line() == line


def _post(gateway: Deployment, body: object, **kwargs: Any) -> httpx.Response:
    with gateway.dpo_client() as client:
        if isinstance(body, bytes):
            return client.post("/v1/audit/cosignatures", content=body, **kwargs)
        return client.post("/v1/audit/cosignatures", json=body)


def test_cosignatures_that_do_not_hold_are_refused(gateway: Deployment) -> None:
    disclose(gateway)
    witness = _witness(gateway, "dpo.test/witness-b")
    stranger = WitnessKey("dpo.test/stranger", Ed25519PrivateKey.generate())
    with gateway.dpo_client() as client:
        note = client.get("/v1/audit/checkpoint").text
    checkpoint = open_note(gateway, note)
    text = split_note(note)[0]
    now = int(time.time())
    other_text = Checkpoint(checkpoint.origin, checkpoint.size, bytes(32)).text()
    cases = [
        (
            cosign(text, stranger.name, stranger.private_key, now).line(),
            checkpoint.size,
            "no witness key this gateway accepts",
        ),
        (
            cosign(other_text, witness.name, witness.private_key, now).line(),
            checkpoint.size,
            "does not verify",
        ),
        (
            cosign(text, witness.name, witness.private_key, now + 3600).line(),
            checkpoint.size,
            "in the future",
        ),
        (
            cosign(text, witness.name, witness.private_key, now).line(),
            2**62,
            f"no signed checkpoint at size {2**62}",
        ),
        ("— dpo.test/witness-b AAAA", checkpoint.size, "malformed"),
    ]
    for line, size, detail in cases:
        response = _post(gateway, {"size": size, "cosignature": line})
        assert response.status_code == 422, (detail, response.text)
        assert detail in response.json()["detail"]
    for body in (
        {"size": "1", "cosignature": "x"},
        {"size": 1},
        [1],
        {"size": 0, "cosignature": ""},
    ):
        assert _post(gateway, body).status_code == 422
    assert (
        _post(gateway, b"not json", headers={"content-type": "application/json"}).status_code == 422
    )
    assert _post(gateway, b"{}", headers={"content-type": "text/plain"}).status_code == 415
