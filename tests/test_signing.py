"""Receipts: compact JWS over RFC 8785 canonical JSON, checked independently."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.canonical import canonical_json
from gateway.errors import InvalidReceipt
from gateway.keys import load_receipt_keys, rotate_receipt_key
from gateway.signing import ReceiptSigner, verify_receipt
from tests.gateway_support import b64url_decode, verify_with_plain_cryptography

DISCLOSURE: dict[str, Any] = {
    "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
    "issued_at": "2026-11-22T10:00:00Z",
    "requester": "politie",
    "purpose": "ct-assessment",
    "case_ref": "CTI-2026-0042",
    "policy_digest": "sha256:" + "0" * 64,
    "results": [{"dataset": "ind/residence", "decision": "allow", "records": [{"x": 1.5}]}],
}


def load_signer(keys_dir: Path) -> ReceiptSigner:
    """A signer over the receipt keys in ``keys_dir``, the first one made on first use."""
    if not (keys_dir / "receipts" / "current").exists():
        rotate_receipt_key(keys_dir)
    return ReceiptSigner(*load_receipt_keys(keys_dir))


def test_rfc8032_test_vector_1() -> None:
    # RFC 8032 §7.1, TEST 1: the primitive every receipt rests on.
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key = Ed25519PrivateKey.from_private_bytes(secret)
    assert key.public_key().public_bytes_raw() == public
    assert key.sign(b"") == signature


def test_receipt_verifies_with_plain_cryptography(tmp_path: Path) -> None:
    signer = load_signer(tmp_path)
    signed = signer.sign_disclosure(DISCLOSURE)
    receipt = signed.jws
    payload = verify_with_plain_cryptography(receipt, signer.jwks())
    assert payload == DISCLOSURE
    # The payload is exactly the RFC 8785 canonical form of the disclosure.
    assert b64url_decode(receipt.split(".")[1]) == canonical_json(DISCLOSURE) == signed.payload
    assert verify_receipt(receipt, signer.jwks()) == DISCLOSURE
    # The response body carries exactly the signed bytes.
    assert json.loads(signed.response_body()) == {"disclosure": DISCLOSURE, "jws": receipt}
    assert signed.response_body().startswith(b'{"disclosure":' + signed.payload + b",")


def test_tampered_receipt_is_rejected(tmp_path: Path) -> None:
    signer = load_signer(tmp_path)
    header, _, signature = signer.sign_disclosure(DISCLOSURE).jws.split(".")
    forged = dict(DISCLOSURE, requester="aivd")
    forged_payload = base64.urlsafe_b64encode(canonical_json(forged)).rstrip(b"=").decode()
    receipt = f"{header}.{forged_payload}.{signature}"
    with pytest.raises(InvalidSignature):
        verify_with_plain_cryptography(receipt, signer.jwks())
    with pytest.raises(InvalidReceipt):
        verify_receipt(receipt, signer.jwks())


def test_receipt_from_another_key_is_rejected(tmp_path: Path) -> None:
    ours = load_signer(tmp_path / "ours")
    theirs = load_signer(tmp_path / "theirs")
    with pytest.raises(InvalidReceipt):
        verify_receipt(theirs.sign_disclosure(DISCLOSURE).jws, ours.jwks())


def test_rotation_keeps_old_receipts_verifiable(tmp_path: Path) -> None:
    old = load_signer(tmp_path)
    receipt = old.sign_disclosure(DISCLOSURE).jws
    new_kid = rotate_receipt_key(tmp_path)
    new = load_signer(tmp_path)
    assert new.kid == new_kid != old.kid
    assert {k["kid"] for k in new.jwks()["keys"]} == {old.kid, new.kid}
    assert verify_receipt(receipt, new.jwks()) == DISCLOSURE
    assert json.loads(b64url_decode(new.sign_disclosure(DISCLOSURE).jws.split(".")[0]))["kid"] == (
        new_kid
    )


def test_jwks_publishes_no_private_material(tmp_path: Path) -> None:
    jwks = load_signer(tmp_path).jwks()
    assert all("d" not in key for key in jwks["keys"])
    mode = stat.S_IMODE(next((tmp_path / "receipts").glob("*.key")).stat().st_mode)
    assert mode == 0o600


def test_canonical_json_follows_rfc8785() -> None:
    assert canonical_json({"b": 1, "a": [1.0, "é", None, 1e21]}) == (
        '{"a":[1,"é",null,1e+21],"b":1}'.encode()
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_order_independent(value: Any) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert canonical_json(reordered) == encoded
