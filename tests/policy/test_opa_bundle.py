"""OPA bundles: written in OPA's format, read back only when they are what they claim.

The format is OPA's (a gzip tar with ``.manifest``, ``data.json``, the modules and, when
signed, ``.signatures.json`` holding one JWT that lists every other file's SHA-256); the
checks are the gateway's: the manifest's revision must be the digest of the sources the
bundle carries, data.json must be the register's, the signature must be by the configured
key and cover every file, and the archive must hold nothing but plain relative files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from gateway._cli import app
from gateway.errors import ConfigurationError
from gateway.policy import compile_bundle
from gateway.policy.bundle import PolicyBundle
from gateway.policy.opa_bundle import (
    MAX_BUNDLE_BYTES,
    MAX_FILE_BYTES,
    _file_hash,
    generate_signing_key,
    read_bundle,
    write_bundle,
)
from tests.policy.policy_support import copy_policies, demo_catalog, real_bundle

runner = CliRunner()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    where = tmp_path_factory.mktemp("keys")
    generate_signing_key(where / "ours.pem", where / "ours.pub.pem")
    generate_signing_key(where / "theirs.pem", where / "theirs.pub.pem")
    return {p.name: p.read_bytes() for p in where.iterdir()}


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        found = {}
        for m in tar.getmembers():
            handle = tar.extractfile(m)
            assert handle is not None
            found[m.name] = handle.read()
        return found


def pack(
    path: Path, files: dict[str, bytes], *, extra: Callable[[tarfile.TarFile], None] | None = None
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if extra is not None:
            extra(tar)
    path.write_bytes(gzip.compress(raw.getvalue()))


def jwt_part(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def refused(path: Path, match: str, **kwargs: object) -> None:
    with pytest.raises(ConfigurationError, match=match) as caught:
        read_bundle(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in caught.value.detail
    assert caught.value.detail.startswith(f"{path}: ")


# -- the format -------------------------------------------------------------------------


def test_an_unsigned_bundle_round_trips(tmp_path: Path) -> None:
    bundle = real_bundle()
    write_bundle(bundle, tmp_path / "b.tar.gz")
    read = read_bundle(tmp_path / "b.tar.gz")
    assert read.sources == bundle.sources
    assert read.digest == bundle.digest
    assert read.key_id is None
    assert read.manifest == {
        "revision": bundle.digest,
        "roots": ["doelpoort", "register"],
        "rego_version": 1,
    }


def test_the_archive_is_laid_out_as_opa_reads_it(tmp_path: Path, keys: dict[str, bytes]) -> None:
    bundle = real_bundle()
    write_bundle(bundle, tmp_path / "b.tar.gz", signing_key=keys["ours.pem"], key_id="k1")
    files = members(tmp_path / "b.tar.gz")
    # Root-relative names, the modules under their own paths, data at the root.
    assert set(files) == {".manifest", ".signatures.json", "data.json"} | {
        name for name, _ in bundle.sources
    }
    assert json.loads(files["data.json"]) == {"register": bundle.register.as_data()}
    assert {name for name in files if name.endswith(".rego")} == {n for n, _ in bundle.modules}
    # Exactly one JWT, as OPA requires, whose payload lists every other file.
    (token,) = json.loads(files[".signatures.json"])["signatures"]
    assert jwt_part(token, 0) == {"alg": "ES256", "kid": "k1"}
    payload = jwt_part(token, 1)
    assert payload["keyid"] == "k1"
    listed = {f["name"]: f for f in payload["files"]}  # type: ignore[attr-defined]
    assert set(listed) == set(files) - {".signatures.json"}
    assert {f["algorithm"] for f in listed.values()} == {"SHA-256"}
    for name in ("doelpoort/disclosure.rego", "register.yaml"):  # unstructured: the bytes
        assert listed[name]["hash"] == hashlib.sha256(files[name]).hexdigest()


def test_deterministic_bytes_for_the_same_set(tmp_path: Path) -> None:
    write_bundle(real_bundle(), tmp_path / "a.tar.gz")
    write_bundle(real_bundle(), tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_json_files_are_hashed_as_opa_hashes_them() -> None:
    # OPA hashes data.json and .manifest by structure: keys sorted, compact, strings as
    # Go writes them (no HTML escaping, UTF-8 as is), numbers as written.
    content = b'{ "b": [1.50, "\xce\xb1<&>"],\n  "a": {"y": null, "x": true, "t": "q\\"\\n"} }'
    expected = b'{"a":{"t":"q\\"\\n","x":true,"y":null},"b":[1.50,"\xce\xb1<&>"]}'
    assert _file_hash("data.json", content) == hashlib.sha256(expected).digest()
    assert _file_hash(".manifest", content) == hashlib.sha256(expected).digest()
    assert _file_hash("doelpoort/x.rego", content) == hashlib.sha256(content).digest()


def test_a_signed_bundle_verifies_with_its_key(tmp_path: Path, keys: dict[str, bytes]) -> None:
    write_bundle(real_bundle(), tmp_path / "b.tar.gz", signing_key=keys["ours.pem"], key_id="k1")
    read = read_bundle(
        tmp_path / "b.tar.gz", verify_key=keys["ours.pub.pem"], require_signature=True
    )
    assert (read.key_id, read.digest) == ("k1", real_bundle().digest)


def test_an_rsa_key_signs_rs256(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_bundle(real_bundle(), tmp_path / "b.tar.gz", signing_key=private)
    (token,) = json.loads(members(tmp_path / "b.tar.gz")[".signatures.json"])["signatures"]
    assert jwt_part(token, 0)["alg"] == "RS256"
    assert read_bundle(tmp_path / "b.tar.gz", verify_key=public).key_id == "doelpoort"


def test_a_scope_must_match(tmp_path: Path, keys: dict[str, bytes]) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path, signing_key=keys["ours.pem"], scope="production")
    assert read_bundle(path, verify_key=keys["ours.pub.pem"], scope="production").key_id
    refused(path, "scope", verify_key=keys["ours.pub.pem"])


def test_keygen_keeps_the_private_key_private(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with pytest.raises(FileExistsError):
        generate_signing_key(tmp_path / "k.pem", tmp_path / "other.pub.pem")


# -- refusals ---------------------------------------------------------------------------


def test_an_unsigned_bundle_is_refused_when_a_signature_is_required(
    tmp_path: Path, keys: dict[str, bytes]
) -> None:
    write_bundle(real_bundle(), tmp_path / "b.tar.gz")
    refused(
        tmp_path / "b.tar.gz",
        r"not signed \(no \.signatures\.json\)",
        verify_key=keys["ours.pub.pem"],
    )
    refused(
        tmp_path / "b.tar.gz",
        "no verification key",
        require_signature=True,
    )


def test_a_bundle_signed_by_another_key_is_refused(tmp_path: Path, keys: dict[str, bytes]) -> None:
    write_bundle(real_bundle(), tmp_path / "b.tar.gz", signing_key=keys["theirs.pem"])
    refused(
        tmp_path / "b.tar.gz",
        "does not verify with the configured key",
        verify_key=keys["ours.pub.pem"],
    )


@pytest.mark.parametrize("name", ["doelpoort/deny.rego", "register.yaml", "data.json", ".manifest"])
def test_a_signed_file_altered_afterwards_is_refused(
    tmp_path: Path, keys: dict[str, bytes], name: str
) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path, signing_key=keys["ours.pem"])
    files = members(path)
    files[name] = files[name].replace(b"retention", b"retentiox", 1) + b"\n"
    if name.endswith(".json") or name == ".manifest":
        files[name] = files[name].replace(b"{", b'{"extra": 1, ', 1)
    pack(path, files)
    refused(path, f"file {name} does not match its signed hash", verify_key=keys["ours.pub.pem"])


def test_a_file_added_to_a_signed_bundle_is_refused(tmp_path: Path, keys: dict[str, bytes]) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path, signing_key=keys["ours.pem"])
    files = members(path)
    files["doelpoort/allow_all.rego"] = b"package doelpoort.disclosure\n"
    pack(path, files)
    refused(
        path,
        "allow_all.rego is not covered by the bundle's signature",
        verify_key=keys["ours.pub.pem"],
    )


def test_a_file_dropped_from_a_signed_bundle_is_refused(
    tmp_path: Path, keys: dict[str, bytes]
) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path, signing_key=keys["ours.pem"])
    files = members(path)
    del files["doelpoort/deny.rego"]
    pack(path, files)
    refused(
        path, "lists file.s. the bundle lacks: doelpoort/deny.rego", verify_key=keys["ours.pub.pem"]
    )


def test_an_unsigned_bundle_altered_afterwards_fails_its_revision(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)
    files = members(path)
    files["doelpoort/deny.rego"] += b"\n# harmless?\n"
    pack(path, files)
    refused(path, "revision sha256:[0-9a-f]+ is not the digest of the policy files it carries")


def test_a_revision_that_is_not_the_digest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)
    files = members(path)
    manifest = json.loads(files[".manifest"])
    manifest["revision"] = "sha256:" + "0" * 64
    files[".manifest"] = json.dumps(manifest).encode()
    pack(path, files)
    refused(path, "is not the digest of the policy files it carries")


def test_data_that_is_not_the_registers_is_refused(tmp_path: Path) -> None:
    # OPA evaluates data.json; the digest covers register.yaml: they must agree.
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)
    files = members(path)
    data = json.loads(files["data.json"])
    data["register"]["purposes"]["vertrek"]["retention_days"] = 9999
    files["data.json"] = json.dumps(data).encode()
    pack(path, files)
    refused(path, "data.json is not the data of its register.yaml")


@pytest.mark.parametrize(
    "name", ["../evil.rego", "/etc/evil.rego", "doelpoort/../../evil.rego", "./x.rego", "a//b.rego"]
)
def test_a_member_outside_the_bundle_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)
    files = members(path)
    files[name] = b"package evil\n"
    pack(path, files)
    refused(path, "is not a plain relative path")


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)

    def link(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("doelpoort/linked.rego")
        info.type = kind
        info.linkname = "/etc/passwd"
        tar.addfile(info)

    pack(path, members(path), extra=link)
    refused(path, "is not a plain file")


def test_a_member_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    write_bundle(real_bundle(), path)

    def again(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("doelpoort/deny.rego")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))

    pack(path, members(path), extra=again)
    refused(path, "is in the bundle twice")


def test_size_bombs_are_refused_before_they_are_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    # A gzip of zeros far past the limit: a few hundred kilobytes on disk.
    path.write_bytes(gzip.compress(b"\0" * (MAX_BUNDLE_BYTES + 1024)))
    refused(path, "unpacks to over")
    files = members_of_real(tmp_path)
    files["big.rego"] = b"#" * (MAX_FILE_BYTES + 1)
    pack(path, files)
    refused(path, "big.rego is over")


def members_of_real(tmp_path: Path) -> dict[str, bytes]:
    write_bundle(real_bundle(), tmp_path / "real.tar.gz")
    return members(tmp_path / "real.tar.gz")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f.pop(".manifest"), "no .manifest"),
        (lambda f: f.update({".manifest": b"{not json"}), "not JSON"),
        (lambda f: f.update({".manifest": b'{"roots": []}'}), "no revision"),
        (lambda f: f.pop("data.json"), "no data.json"),
        (lambda f: f.update({"register.yaml": b"\xff\xfe"}), "not UTF-8"),
        (lambda f: f.update({"x/data.yaml": b"a: 1"}), "OPA reads a file of that name"),
        (
            lambda f: f.update({".signatures.json": b'{"signatures": ["a", "b"]}'}),
            "exactly one JWT",
        ),
        (lambda f: f.update({".signatures.json": b'{"signatures": ["a.b.c"]}'}), "no readable JWT"),
    ],
    ids=[
        "no-manifest",
        "manifest-not-json",
        "no-revision",
        "no-data",
        "not-utf8",
        "opa-name",
        "two-jwts",
        "bad-jwt",
    ],
)
def test_malformed_bundles_are_refused(
    tmp_path: Path, edit: Callable[[dict[str, bytes]], object], match: str
) -> None:
    path = tmp_path / "b.tar.gz"
    files = members_of_real(tmp_path)
    edit(files)
    pack(path, files)
    refused(path, match)


def test_not_a_bundle_at_all(tmp_path: Path) -> None:
    (tmp_path / "b.tar.gz").write_bytes(b"PK\x03\x04 a zip")
    refused(tmp_path / "b.tar.gz", "not a gzip file")
    refused(tmp_path / "missing.tar.gz", "cannot be read")


def test_keys_opa_cannot_verify_or_that_are_shared_are_refused(tmp_path: Path) -> None:
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigurationError, match="neither an EC nor an RSA key"):
        write_bundle(real_bundle(), tmp_path / "b.tar.gz", signing_key=ed)
    with pytest.raises(ConfigurationError, match="not an unencrypted PEM private key"):
        write_bundle(real_bundle(), tmp_path / "b.tar.gz", signing_key=b"a shared secret")
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_source_opa_would_misread_is_not_written(tmp_path: Path) -> None:
    bundle = real_bundle()
    odd = PolicyBundle(
        digest=bundle.digest,
        entrypoint=bundle.entrypoint,
        modules=bundle.modules,
        data=bundle.data,
        register=bundle.register,
        sources=(*bundle.sources, ("extra/data.json", "{}")),
    )
    with pytest.raises(ConfigurationError, match=r"extra/data\.json: OPA reads"):
        write_bundle(odd, tmp_path / "b.tar.gz")


# -- the commands -----------------------------------------------------------------------


def own_tests_only(policies: Path, test_body: str) -> None:
    """Replace the shipped Rego tests (which take tens of seconds) with one of our own."""
    for shipped in policies.rglob("*_test.rego"):
        shipped.unlink()
    if test_body:
        (policies / "doelpoort" / "ours_test.rego").write_text(
            "package doelpoort.ours_test\n\nimport rego.v1\n\n"
            f"test_ours if {{\n\t{test_body}\n}}\n",
            encoding="utf-8",
        )


RELEASES_NATIONALITY = (
    'data.register.purposes["ct-assessment"].datasets["ind/residence"]'
    '.field_ops.nationality == "keep"'
)


def test_the_bundle_command_writes_a_signed_bundle_of_the_policies(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    own_tests_only(policies, RELEASES_NATIONALITY)
    (policies / "doelpoort" / "deny.rego").write_text(
        (policies / "doelpoort" / "deny.rego").read_text() + "\n# reviewed\n"
    )
    key, pub, out = tmp_path / "k.pem", tmp_path / "k.pub.pem", tmp_path / "out.tar.gz"
    result = runner.invoke(
        app, ["policy", "keygen", "--private-key", str(key), "--public-key", str(pub)]
    )
    assert result.exit_code == 0, result.output
    args = ["policy", "bundle", "--policies", str(policies), "--output", str(out)]
    result = runner.invoke(app, [*args, "--signing-key", str(key), "--key-id", "ops-2026"])
    assert result.exit_code == 0, result.output
    digest = compile_bundle(policies, demo_catalog()).digest
    assert digest != real_bundle().digest
    assert result.output == f"wrote {out}: revision {digest}, signed as ops-2026\n"
    read = read_bundle(out, verify_key=pub.read_bytes(), require_signature=True)
    assert (read.digest, read.key_id) == (digest, "ops-2026")


@pytest.mark.parametrize(
    ("test_body", "breaks_check", "why"),
    [
        (RELEASES_NATIONALITY, True, "`doelpoort policy check` has 1 finding, the first: "),
        (
            RELEASES_NATIONALITY.replace('"keep"', '"drop"'),
            False,
            "its Rego tests do not pass: 1 failed, 0 errors",
        ),
        ("", False, "it has no Rego tests"),
    ],
    ids=["check-finding", "failing-test", "no-tests"],
)
def test_the_bundle_command_refuses_a_set_that_fails_check_or_its_tests(
    tmp_path: Path, test_body: str, breaks_check: bool, why: str
) -> None:
    # A reload from a signed bundle runs no Rego tests (the bundle carries none): the
    # signature stands for check and tests having passed, so neither may be skipped here.
    policies = copy_policies(tmp_path)
    own_tests_only(policies, test_body)
    if breaks_check:  # a misspelt rule reference: compiles, and denies everything
        deny = policies / "doelpoort" / "deny.rego"
        text = deny.read_text(encoding="utf-8")
        deny.write_text(text.replace("\tnot role_granted\n", "\tnot role_grantd\n", 1))
    key, out = tmp_path / "k.pem", tmp_path / "out.tar.gz"
    generate_signing_key(key, tmp_path / "k.pub.pem")
    args = ["policy", "bundle", "--policies", str(policies), "--output", str(out)]
    result = runner.invoke(app, [*args, "--signing-key", str(key)])
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"{policies}: not bundled: {why}"), line
    if breaks_check:
        assert "doelpoort/deny.rego:" in line
        assert "role_grantd" in line
    assert not out.exists()


def test_the_commands_fail_in_one_line(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    result = runner.invoke(app, ["policy", "keygen", "--private-key", str(tmp_path / "k.pem")])
    assert result.exit_code == 1
    assert "exists already" in result.output
    result = runner.invoke(
        app,
        ["policy", "bundle", "--policies", str(tmp_path / "none"), "--output", str(tmp_path / "b")],
    )
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert not (tmp_path / "b").exists()


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (".signatures.json", "not a signatures document"),
        (".manifest", "not JSON"),
        ("data.json", "not JSON"),
    ],
)
def test_a_member_nested_too_deeply_is_refused_in_one_line(
    tmp_path: Path, member: str, match: str
) -> None:
    # A nesting that exhausts the parser's stack is unreadable like a syntax error: one
    # line naming the bundle, never a RecursionError out of the reader.
    path = tmp_path / "b.tar.gz"
    files = members_of_real(tmp_path)
    files[member] = DEEP_JSON
    pack(path, files)
    refused(path, match)
