"""C2SP signed-note checkpoints: the Go sumdb/note vector, round trips, every refusal."""

from __future__ import annotations

import base64
import stat
from hashlib import sha256
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from audit.checkpoint import (
    Checkpoint,
    key_id,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)
from audit.errors import CheckpointError
from audit.keys import load_log_public_key
from gateway.errors import ConfigurationError
from gateway.keys import create_log_key, load_log_key

ORIGIN = "example.com/doelpoort/audit"
NAME = "example.com/doelpoort/audit"
ROOT = sha256(b"root").digest()

# golang.org/x/mod/sumdb/note: the documented example note and its keys.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def log_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log key in ``keys_dir``, created on first use."""
    create_log_key(keys_dir)
    return load_log_key(keys_dir)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _go_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert seed[0] == 1  # the Ed25519 type byte
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_go_note_vector_signs_byte_for_byte() -> None:
    go_key = _go_key()
    assert key_id("PeterNeumann", go_key.public_key()).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", go_key.public_key()) == GO_VERIFIER
    assert sign_note(GO_TEXT, "PeterNeumann", go_key) == GO_NOTE
    assert open_note(GO_NOTE, "PeterNeumann", go_key.public_key()) == GO_TEXT


def test_go_verifier_key_parses(key: Ed25519PrivateKey) -> None:
    name, public = parse_verifier_key(GO_VERIFIER + "\n")
    assert name == "PeterNeumann"
    raw = Encoding.Raw, PublicFormat.Raw
    assert public.public_bytes(*raw) == _go_key().public_key().public_bytes(*raw)
    assert parse_verifier_key(verifier_key(NAME, key.public_key()))[0] == NAME


def test_verifier_key_whose_base64_holds_a_plus() -> None:
    public = next(
        k.public_key()
        for k in iter(Ed25519PrivateKey.generate, None)
        if "+" in verifier_key(NAME, k.public_key()).split("+", 2)[2]
    )
    name, parsed = parse_verifier_key(verifier_key(NAME, public))
    raw = Encoding.Raw, PublicFormat.Raw
    assert (name, parsed.public_bytes(*raw)) == (NAME, public.public_bytes(*raw))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("PeterNeumann+c74f20a3", "<name>"),
        (GO_VERIFIER.replace("c74f20a3", "c74f20a4"), "does not match"),
        (GO_VERIFIER.replace("c74f20a3", "c74f20"), "4-byte key ID"),
        (GO_VERIFIER.replace("+ARpc", "+AhPc"), "Ed25519"),
        (GO_VERIFIER.replace("+ARpc", "+A!pc"), "hex and base64"),
        (GO_VERIFIER.replace("PeterNeumann", "Peter Neumann"), "key names"),
    ],
)
def test_malformed_verifier_keys(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_verifier_key(text)


def test_checkpoint_note_format(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, key)
    text, signature_line = note.split("\n\n")
    assert text == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}"
    assert signature_line.startswith(f"\u2014 {NAME} ")
    assert signature_line.endswith("\n")
    blob = base64.b64decode(signature_line.split(" ")[2])
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert blob[:4] == sha256(NAME.encode() + b"\n\x01" + raw).digest()[:4]
    key.public_key().verify(blob[4:], (text + "\n").encode())
    assert len(blob) == 4 + 64


@pytest.mark.parametrize("size", [0, 1, 2**40])
def test_round_trip(key: Ed25519PrivateKey, size: int) -> None:
    cp = Checkpoint(ORIGIN, size, ROOT)
    assert open_checkpoint(sign_checkpoint(cp, NAME, key), NAME, key.public_key(), ORIGIN) == cp


def test_signatures_of_unknown_keys_are_ignored(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, key)
    witness = sign_note(Checkpoint(ORIGIN, 5, ROOT).text(), "witness.example", _go_key())
    cosigned = note + witness.split("\n\n")[1]
    assert open_checkpoint(cosigned, NAME, key.public_key(), ORIGIN).size == 5


def _flip_signature_bit(note: str) -> str:
    text, line = note.split("\n\n")
    dash, name, blob = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    return f"{text}\n\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"


def test_bad_signature(key: Ed25519PrivateKey) -> None:
    note = _flip_signature_bit(sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, key))
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note, NAME, key.public_key(), ORIGIN)


def test_changed_text(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, key).replace("\n5\n", "\n6\n")
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note, NAME, key.public_key(), ORIGIN)


def test_a_known_key_failing_rejects_the_note(key: Ed25519PrivateKey) -> None:
    good = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, key)
    bad_line = _flip_signature_bit(good).split("\n\n")[1]
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(good + bad_line, NAME, key.public_key(), ORIGIN)


def test_other_key_same_name(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="no signature of key"):
        open_checkpoint(note, NAME, key.public_key(), ORIGIN)


def test_same_key_other_name(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), "someone.else/log", key)
    with pytest.raises(CheckpointError, match="no signature of key"):
        open_checkpoint(note, NAME, key.public_key(), ORIGIN)


def test_wrong_origin(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint("other.example/log", 5, ROOT), NAME, key)
    with pytest.raises(CheckpointError, match=r"origin: got 'other\.example/log'"):
        open_checkpoint(note, NAME, key.public_key(), ORIGIN)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (f"{ORIGIN}\n05\n{base64.b64encode(ROOT).decode()}\n", "leading zeros"),
        (f"{ORIGIN}\n-5\n{base64.b64encode(ROOT).decode()}\n", "decimal"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n5\nnot*base64\n", "base64"),
        (f"{ORIGIN}\n5\n", "origin, size and root"),
    ],
)
def test_signed_but_malformed_checkpoint_text(
    key: Ed25519PrivateKey, text: str, complaint: str
) -> None:
    with pytest.raises(CheckpointError, match=complaint):
        open_checkpoint(sign_note(text, NAME, key), NAME, key.public_key(), ORIGIN)


def test_extension_lines_are_allowed(key: Ed25519PrivateKey) -> None:
    text = Checkpoint(ORIGIN, 5, ROOT).text() + "extension\n"
    assert open_checkpoint(sign_note(text, NAME, key), NAME, key.public_key(), ORIGIN).size == 5


@pytest.mark.parametrize(
    ("mangle", "complaint"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no signature block"),
        (lambda n: n.split("\n\n")[0] + "\n\n", "no signature lines"),
        (lambda n: n.rstrip("\n"), "no signature block"),
        (lambda n: n.replace("\u2014 ", "- "), "malformed signature line"),
        (lambda n: n.replace(f"{NAME} ", f"{NAME}  "), "malformed signature line"),
        (lambda n: n[: n.rindex(" ") + 1] + "!!!!\n", "not valid base64"),
        (lambda n: n[: n.rindex(" ") + 1] + "AAAA\n", "too short"),
        (lambda n: n.replace("\n", "\r\n", 1), "control characters"),
        (lambda n: n + "x" * 70_000, "limit"),
        (lambda n: "", "no signature block"),
    ],
)
def test_malformed_notes(key: Ed25519PrivateKey, mangle: object, complaint: str) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NAME, key)
    assert callable(mangle)
    with pytest.raises(CheckpointError, match=complaint):
        open_checkpoint(mangle(note), NAME, key.public_key(), ORIGIN)


@pytest.mark.parametrize("name", ["", "has space", "has+plus"])
def test_bad_key_names_are_refused(key: Ed25519PrivateKey, name: str) -> None:
    with pytest.raises(ValueError, match="key names"):
        sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), name, key)


def test_checkpoint_values_are_validated() -> None:
    with pytest.raises(ValueError, match="root"):
        Checkpoint(ORIGIN, 1, b"short")
    with pytest.raises(ValueError, match="size"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(ValueError, match="origin"):
        Checkpoint("two\nlines", 1, ROOT)


def test_log_key_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = log_key(keys)
    assert stat.S_IMODE((keys / "audit-log.key").stat().st_mode) == 0o600
    again = log_key(keys)
    raw = Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    assert again.private_bytes(*raw) == created.private_bytes(*raw)
    public = load_log_public_key(keys)
    pub_raw = Encoding.Raw, PublicFormat.Raw
    assert public.public_bytes(*pub_raw) == created.public_key().public_bytes(*pub_raw)
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), NAME, again)
    assert open_checkpoint(note, NAME, public, ORIGIN).size == 1


def test_missing_public_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="public key"):
        load_log_public_key(tmp_path)


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    ec = generate_private_key(SECP256R1())
    (tmp_path / "audit-log.key").write_bytes(
        ec.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    (tmp_path / "audit-log.key").chmod(0o600)
    (tmp_path / "audit-log.pub").write_bytes(
        ec.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="not an Ed25519"):
        log_key(tmp_path)
    with pytest.raises(ConfigurationError, match="not an Ed25519"):
        load_log_public_key(tmp_path)
