"""C2SP tlog-cosignature (cosignature/v1, Ed25519): sign, parse, verify.

The spec (c2sp.org/tlog-cosignature) publishes one cosigned checkpoint but not the
witness's public key, so its line is a vector for parsing and for the signed message;
signing and verifying are held to round trips and to every way a cosignature can be
wrong.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint, split_note, verifier_key
from audit.cosignature import (
    add_cosignature,
    cosign,
    cosignatures_of,
    cosigned_message,
    cosigner_key_id,
    cosigner_verifier_key,
    parse_cosignature,
    parse_cosigner_key,
    verify_cosignature,
)
from audit.errors import ProofError

# The example of c2sp.org/tlog-cosignature: a checkpoint with the log's signature and
# one witness's cosignature, and the message that witness signed.
SPEC_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

ORIGIN = "test.doelpoort.local/audit"
WITNESS = "dpo.test.doelpoort.local/witness"
LOG_KEY = Ed25519PrivateKey.generate()
WITNESS_KEY = Ed25519PrivateKey.generate()
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 42, bytes(range(32))), ORIGIN, LOG_KEY)
TEXT = split_note(NOTE)[0]


def test_the_spec_example_parses_and_its_message_is_the_spec_one() -> None:
    text, lines = split_note(SPEC_NOTE)
    cosignature = parse_cosignature(lines[1])
    assert cosignature.name == "witness.example.com/w1"
    assert cosignature.key_id.hex() == "8d66cf3f"
    assert cosignature.timestamp == 1679315147
    assert len(cosignature.signature) == 64
    assert cosignature.line() == lines[1]  # encodes back to the same bytes
    assert cosigned_message(text, cosignature.timestamp) == SPEC_MESSAGE.encode()


def test_a_cosignature_round_trips_and_verifies() -> None:
    cosignature = cosign(TEXT, WITNESS, WITNESS_KEY, 1_765_000_000)
    assert cosignature.key_id == cosigner_key_id(WITNESS, WITNESS_KEY.public_key())
    parsed = parse_cosignature(cosignature.line())
    assert parsed == cosignature
    verify_cosignature(TEXT, parsed, WITNESS, WITNESS_KEY.public_key())
    raw = base64.b64decode(cosignature.line().split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1_765_000_000
    # The signature is Ed25519 over the spec's message, checked without our verifier.
    WITNESS_KEY.public_key().verify(raw[12:], f"cosignature/v1\ntime 1765000000\n{TEXT}".encode())


def test_cosigning_leaves_the_log_signature_untouched() -> None:
    cosigned = add_cosignature(NOTE, cosign(TEXT, WITNESS, WITNESS_KEY, 1_765_000_000))
    assert cosigned.startswith(NOTE)
    text, lines = split_note(cosigned)
    assert text == TEXT
    assert lines[0] == split_note(NOTE)[1][0]
    assert len(lines) == 2
    # The log's signature still opens the note, and the witness's line is ignored there.
    assert open_checkpoint(cosigned, ORIGIN, LOG_KEY.public_key(), ORIGIN).size == 42
    (found,) = cosignatures_of(cosigned, WITNESS, WITNESS_KEY.public_key())
    assert found.timestamp == 1_765_000_000
    # A second cosignature (a later run) is one more line; both verify.
    twice = add_cosignature(cosigned, cosign(TEXT, WITNESS, WITNESS_KEY, 1_765_000_060))
    assert [c.timestamp for c in cosignatures_of(twice, WITNESS, WITNESS_KEY.public_key())] == [
        1_765_000_000,
        1_765_000_060,
    ]


def test_a_note_without_this_witness_has_no_cosignature() -> None:
    assert cosignatures_of(NOTE, WITNESS, WITNESS_KEY.public_key()) == []
    other = Ed25519PrivateKey.generate()
    cosigned = add_cosignature(NOTE, cosign(TEXT, "someone.else/w", other, 1))
    assert cosignatures_of(cosigned, WITNESS, WITNESS_KEY.public_key()) == []


def test_a_cosignature_of_another_checkpoint_does_not_verify() -> None:
    other_text = Checkpoint(ORIGIN, 43, bytes(range(32))).text()
    cosignature = cosign(other_text, WITNESS, WITNESS_KEY, 1_765_000_000)
    with pytest.raises(ProofError, match="does not verify over this checkpoint"):
        verify_cosignature(TEXT, cosignature, WITNESS, WITNESS_KEY.public_key())
    forged = add_cosignature(NOTE, cosignature)
    with pytest.raises(ProofError, match="does not verify"):
        cosignatures_of(forged, WITNESS, WITNESS_KEY.public_key())


def test_a_changed_time_or_signature_does_not_verify() -> None:
    good = cosign(TEXT, WITNESS, WITNESS_KEY, 1_765_000_000)
    later = parse_cosignature(good.line().replace(good.line().split(" ")[2], _blob(good, 1)))
    assert later.timestamp == 1_765_000_001
    with pytest.raises(ProofError, match="time 1765000001"):
        verify_cosignature(TEXT, later, WITNESS, WITNESS_KEY.public_key())
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    bad = parse_cosignature(good.line().replace(good.line().split(" ")[2], _blob(good, 0, flipped)))
    with pytest.raises(ProofError, match="does not verify"):
        verify_cosignature(TEXT, bad, WITNESS, WITNESS_KEY.public_key())


def _blob(c: object, add: int, signature: bytes | None = None) -> str:
    assert hasattr(c, "key_id")
    raw = (
        c.key_id
        + (c.timestamp + add).to_bytes(8, "big")  # type: ignore[attr-defined]
        + (signature or c.signature)  # type: ignore[attr-defined]
    )
    return base64.b64encode(raw).decode()


def test_another_witness_or_name_is_refused() -> None:
    good = cosign(TEXT, WITNESS, WITNESS_KEY, 1)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ProofError, match="cosignature key: got"):
        verify_cosignature(TEXT, good, WITNESS, other.public_key())
    with pytest.raises(
        ProofError,
        match=f"want other/name {cosigner_key_id('other/name', WITNESS_KEY.public_key()).hex()}",
    ):
        verify_cosignature(TEXT, good, "other/name", WITNESS_KEY.public_key())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("— w/1", "malformed signature line"),
        ("- w/1 AAAA", "malformed signature line"),
        ("— w/1 not-base64!", "not valid base64"),
        ("— w/1 " + base64.b64encode(bytes(4 + 8 + 63)).decode(), "is 75 bytes, want 76"),
        ("— w/1 " + base64.b64encode(bytes(4 + 64)).decode(), "is 68 bytes, want 76"),
        (
            "— w/1 " + base64.b64encode(bytes(4) + b"\xff" * 8 + bytes(64)).decode(),
            "beyond 2\\^63 - 1",
        ),
    ],
)
def test_malformed_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        parse_cosignature(line)


def test_the_verifier_key_is_type_0x04_and_round_trips() -> None:
    public = WITNESS_KEY.public_key()
    vkey = cosigner_verifier_key(WITNESS, public)
    name, hex_id, encoded = vkey.split("+", 2)
    assert name == WITNESS
    assert hex_id == cosigner_key_id(WITNESS, public).hex()
    blob = base64.b64decode(encoded)
    assert blob == b"\x04" + public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    parsed_name, parsed = parse_cosigner_key(vkey + "\n")
    assert parsed_name == WITNESS
    assert parsed.public_bytes(Encoding.Raw, PublicFormat.Raw) == blob[1:]
    # The key ID differs from the same key's as a log key (type 0x01).
    assert verifier_key(WITNESS, public).split("+")[1] != hex_id
    with pytest.raises(ValueError, match="signature type 0x04: got type 0x01"):
        parse_cosigner_key(verifier_key(WITNESS, public))


def test_times_outside_the_spec_range_are_refused() -> None:
    with pytest.raises(ProofError, match="outside 0 to 2\\^63 - 1"):
        cosign(TEXT, WITNESS, WITNESS_KEY, -1)
    with pytest.raises(ProofError, match="outside"):
        cosign(TEXT, WITNESS, WITNESS_KEY, 2**63)
