"""Policy sets as OPA bundles: ``.tar.gz`` files an OPA server loads, signed in OPA's format.

`write_bundle` writes one policy set (a compiled :class:`~gateway.policy.bundle.PolicyBundle`)
as an OPA bundle; `read_bundle` reads one back, refusing anything it cannot vouch for. The
archive holds, at the bundle's root::

    .manifest           {"revision": <policy digest>, "roots": [...], "rego_version": 1}
    data.json           {"register": ...}: what the policy reads as data
    <every source>      the files the digest covers, under their own paths: the .rego
                        modules (which OPA loads) and register.yaml, catalog.json … (which
                        OPA reads, checks against the signature and otherwise ignores)
    .signatures.json    with a signing key only: {"signatures": [<one JWT>]}

So the bundle *is* the reviewed policy set: its revision is the digest of exactly the
sources it carries, and `read_bundle` recomputes it. OPA gives meaning to some names
(``data.json``, ``data.yaml``, ``data.yml``, ``patch.json``, ``policy.wasm``,
``plan.json``, any ``*.manifest``, any ``*signatures.json``); a source named so would be
read by OPA as something else, so writing one is refused.

**Signatures** follow OPA's bundle signing (``opa sign``/``opa build --signing-key``): the
JWT's payload lists every other file of the bundle as ``{"name", "hash", "algorithm":
"SHA-256"}`` with the key id as ``keyid`` (and ``kid`` in the protected header) and an
optional ``scope``. A file's hash is SHA-256 over its bytes, except for ``data.json`` and
``.manifest``, which OPA hashes as JSON: objects with their keys sorted, each key and
primitive encoded as Go's encoder writes it (`_json_hash`), so that whitespace and key
order do not matter. Only asymmetric keys are taken (a shared HMAC secret would let every
verifier sign): ECDSA P-256/P-384/P-521 (ES256/ES384/ES512, what ``doelpoort policy
keygen`` makes) and RSA (RS256, ``opa sign``'s default); OPA verifies all of them.

`read_bundle` refuses, as ConfigurationError of one line: an archive that is not a gzip
tar, members that are not plain files or directories (links, devices), absolute paths,
``..``, duplicate or over-long names, a member over :data:`MAX_FILE_BYTES` or an archive
over :data:`MAX_BUNDLE_BYTES` unpacked (a gzip bomb), a missing or malformed manifest, a
revision that is not the digest of the sources, a ``data.json`` other than the one the
register gives; and with a key (or ``require_signature``): no signature, a signature by
another key, a file the signature does not list or lists with another hash.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.atomic_files import PRIVATE, PUBLIC, create_file, replace_file
from gateway.config_yaml import parse_yaml
from gateway.errors import ConfigurationError
from gateway.policy.bundle import PolicyBundle, policy_digest
from gateway.policy.memo import code_of
from gateway.policy.register import REGISTER_FILE, Register

__all__ = [
    "DATA_FILE",
    "MANIFEST_FILE",
    "MAX_BUNDLE_BYTES",
    "MAX_FILE_BYTES",
    "SIGNATURES_FILE",
    "OpaBundle",
    "generate_signing_key",
    "read_bundle",
    "write_bundle",
]

MANIFEST_FILE = ".manifest"
DATA_FILE = "data.json"
SIGNATURES_FILE = ".signatures.json"
#: No policy file comes near these; anything larger is refused before it is unpacked.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 1000
_MAX_NAME = 255
_HASH = "SHA-256"
#: What OPA's manifest says of the modules' syntax: Rego v1, as regopy compiles them.
_REGO_VERSION = 1

# Names OPA gives a meaning of its own (github.com/open-policy-agent/opa, bundle.go).
_OPA_BASENAMES = frozenset(
    {"data.json", "data.yaml", "data.yml", "patch.json", "policy.wasm", "plan.json"}
)
_OPA_SUFFIXES = (".manifest", "signatures.json")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_ALGORITHMS = frozenset({*_CURVE_ALGORITHMS.values(), "RS256", "RS384", "RS512"})
#: What reading JSON from a bundle may raise: a nesting deep enough to exhaust the
#: stack is as unreadable as a syntax error, and refused the same way.
_JSON_ERRORS = (ValueError, RecursionError)
_SIGNATURE_ERROR = "its signature does not verify with the configured key (signed by another key?)"


@dataclass(frozen=True)
class OpaBundle:
    """What `read_bundle` vouches for: the policy set's sources and its manifest."""

    #: (relative path, content) of every source file, sorted by path: the policy set.
    sources: tuple[tuple[str, str], ...]
    #: The bundle's ``.manifest``; ``revision`` is the policy digest of ``sources``.
    manifest: Mapping[str, Any]
    #: The key id the verified signature names; None when no signature was verified.
    key_id: str | None

    @property
    def digest(self) -> str:
        return str(self.manifest["revision"])


def write_bundle(
    bundle: PolicyBundle,
    path: Path,
    *,
    signing_key: bytes | None = None,
    key_id: str = "doelpoort",
    scope: str | None = None,
) -> None:
    """Write ``bundle`` to ``path`` as an OPA bundle (``.tar.gz``), replacing it atomically.

    ``signing_key`` is a PEM private key (EC or RSA); with it the bundle carries
    ``.signatures.json``. Raises ConfigurationError for a source OPA would misread, a
    policy set without sources, or an unusable key.
    """
    files = bundle_files(bundle)
    if signing_key is not None:
        token = _sign(files, signing_key, key_id, scope)
        files[SIGNATURES_FILE] = _json_bytes({"signatures": [token]})
    replace_file(path, _tar_gz(files), PUBLIC)


def bundle_files(bundle: PolicyBundle) -> dict[str, bytes]:
    """The unsigned bundle's files, by path: manifest, data and the sources."""
    if not bundle.sources:
        raise ConfigurationError("the policy set has no source files to bundle")
    files: dict[str, bytes] = {
        MANIFEST_FILE: _json_bytes(
            {
                "revision": bundle.digest,
                "roots": _roots(bundle.modules, bundle.data),
                "rego_version": _REGO_VERSION,
            }
        ),
        DATA_FILE: _json_bytes(dict(bundle.data)),
    }
    for name, content in bundle.sources:
        _check_source_name(name)
        files[name] = content.encode()
    return files


def read_bundle(
    path: Path,
    *,
    verify_key: bytes | None = None,
    require_signature: bool = False,
    scope: str | None = None,
) -> OpaBundle:
    """Read, check and (with ``verify_key``, a PEM public key) verify an OPA bundle.

    Raises ConfigurationError of one line naming the bundle and why it is refused.
    """
    try:
        return _read(path, verify_key, require_signature, scope)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc.detail}") from exc


def generate_signing_key(private_path: Path, public_path: Path) -> None:
    """Make an ECDSA P-256 key pair for signing bundles (ES256): the private key as PKCS#8
    PEM, mode 0600, never overwriting a file; the public key as SubjectPublicKeyInfo PEM
    (what OPA's ``keys`` configuration and `read_bundle` take)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    create_file(private_path, private, PRIVATE)
    replace_file(public_path, public, PUBLIC)


# -- writing --------------------------------------------------------------------------


def _check_source_name(name: str) -> None:
    _check_member_name(name)
    base = PurePosixPath(name).name
    if base in _OPA_BASENAMES or name.endswith(_OPA_SUFFIXES):
        raise ConfigurationError(
            f"policy file {name}: OPA reads a file of that name as bundle data or metadata;"
            " rename it"
        )


def _roots(modules: tuple[tuple[str, str], ...], data: Mapping[str, Any]) -> list[str]:
    """The manifest's roots: the first segment of every module's package and every top
    key of the data. OPA refuses a module or data outside them, and overlapping roots."""
    roots = set(data)
    for name, source in modules:
        package = _PACKAGE.search(code_of(source))
        if package is None:
            raise ConfigurationError(f"policy file {name}: no package declaration")
        roots.add(package.group(1).split(".")[0])
    return sorted(roots)


def _sign(files: Mapping[str, bytes], pem: bytes, key_id: str, scope: str | None) -> str:
    key, algorithm = _private_key(pem)
    payload: dict[str, Any] = {
        "files": [
            {"name": name, "hash": _file_hash(name, content).hex(), "algorithm": _HASH}
            for name, content in sorted(files.items())
        ],
        # OPA reads the key id from the header's kid, or (deprecated) this claim.
        "keyid": key_id,
    }
    if scope is not None:
        payload["scope"] = scope
    header = {"alg": algorithm, "kid": key_id}
    try:
        return jws.serialize_compact(header, _json_bytes(payload), key, algorithms=[algorithm])
    except JoseError as exc:
        raise ConfigurationError(f"the bundle could not be signed: {exc.error}") from None


def _private_key(pem: bytes) -> tuple[ECKey | RSAKey, str]:
    try:
        loaded = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError("the signing key is not an unencrypted PEM private key") from None
    return _jose_key(loaded, pem, "signing")


def _public_key(pem: bytes) -> tuple[ECKey | RSAKey, str]:
    try:
        loaded = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigurationError("the verification key is not a PEM public key") from None
    return _jose_key(loaded, pem, "verification")


def _jose_key(loaded: object, pem: bytes, role: str) -> tuple[ECKey | RSAKey, str]:
    if isinstance(loaded, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        algorithm = _CURVE_ALGORITHMS.get(loaded.curve.name)
        if algorithm is None:
            raise ConfigurationError(
                f"the {role} key's curve {loaded.curve.name} is not one OPA takes"
            )
        return ECKey.import_key(pem), algorithm
    if isinstance(loaded, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if loaded.key_size < 2048:
            raise ConfigurationError(f"the {role} key is an RSA key under 2048 bits")
        return RSAKey.import_key(pem), "RS256"
    raise ConfigurationError(f"the {role} key is neither an EC nor an RSA key")


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A deterministic archive: sorted, no owners, no times (the same set, the same bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1).encode() + b"\n"


# -- reading --------------------------------------------------------------------------


def _read(
    path: Path, verify_key: bytes | None, require_signature: bool, scope: str | None
) -> OpaBundle:
    if require_signature and verify_key is None:
        raise ConfigurationError("a signed bundle is required, but no verification key is set")
    files = _members(path)
    signatures = files.pop(SIGNATURES_FILE, None)
    key_id: str | None = None
    if signatures is None:
        if verify_key is not None or require_signature:
            raise ConfigurationError("the bundle is not signed (no .signatures.json)")
    else:
        listed, key_id = _signed_files(signatures, verify_key, scope)
        _check_hashes(files, listed)
    manifest = _manifest(files.pop(MANIFEST_FILE, None))
    data = files.pop(DATA_FILE, None)
    if data is None:
        raise ConfigurationError("the bundle has no data.json")
    sources = tuple(sorted((name, _text(name, content)) for name, content in files.items()))
    for name, _content in sources:
        _check_source_name(name)
    digest = policy_digest(sources)
    if manifest["revision"] != digest:
        raise ConfigurationError(
            f"the manifest's revision {manifest['revision']} is not the digest of the policy"
            f" files it carries ({digest}): the bundle was altered"
        )
    _check_data(data, dict(sources))
    return OpaBundle(sources=sources, manifest=manifest, key_id=key_id)


def _members(path: Path) -> dict[str, bytes]:
    """Every regular file of the archive, by name, within the limits; refuses the rest."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(_gunzip(path)), mode="r:") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise ConfigurationError(f"the bundle has over {MAX_MEMBERS} members")
                name = member.name
                _check_member_name(name)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise ConfigurationError(f"member {name} is not a plain file (a link?)")
                if name in files:
                    raise ConfigurationError(f"member {name} is in the bundle twice")
                if member.size > MAX_FILE_BYTES:
                    raise ConfigurationError(f"member {name} is over {MAX_FILE_BYTES} bytes")
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - isreg() members always extract
                    raise ConfigurationError(f"member {name} cannot be read")
                files[name] = extracted.read()
    except (tarfile.TarError, EOFError, UnicodeError) as exc:
        raise ConfigurationError(f"not a readable tar archive ({type(exc).__name__})") from None
    return files


def _gunzip(path: Path) -> bytes:
    """The archive's tar bytes, never more than :data:`MAX_BUNDLE_BYTES` of them: the
    whole stream is bounded before tarfile reads a header (a gzip bomb stops here)."""
    try:
        with path.open("rb") as fh:
            compressed = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(compressed) > MAX_BUNDLE_BYTES:
        raise ConfigurationError(f"the bundle is over {MAX_BUNDLE_BYTES} bytes")
    inflate = zlib.decompressobj(wbits=31)  # gzip framing
    try:
        raw = inflate.decompress(compressed, MAX_BUNDLE_BYTES + 1)
    except zlib.error:
        raise ConfigurationError("not a gzip file") from None
    if len(raw) > MAX_BUNDLE_BYTES or inflate.unconsumed_tail:
        raise ConfigurationError(f"the bundle unpacks to over {MAX_BUNDLE_BYTES} bytes")
    if not inflate.eof or inflate.unused_data:
        raise ConfigurationError("the gzip stream is truncated or followed by other data")
    return raw


def _check_member_name(name: str) -> None:
    parts = name.split("/")
    if (
        not name
        or len(name) > _MAX_NAME
        or name.startswith("/")
        or "\\" in name
        or not name.isprintable()
        or any(part in ("", ".", "..") for part in parts)
    ):
        # No absolute paths, no climbing out, nothing a file system would read otherwise.
        raise ConfigurationError(f"member name {name[:80]!r} is not a plain relative path")


def _signed_files(
    signatures: bytes, verify_key: bytes | None, scope: str | None
) -> tuple[dict[str, tuple[str, str]], str | None]:
    """name → (algorithm, hex hash) as the signature lists them, and the key id; the JWT
    verified with ``verify_key`` when one is given."""
    try:
        document = json.loads(signatures)
        tokens = document["signatures"]
    except (*_JSON_ERRORS, TypeError, KeyError):
        raise ConfigurationError(".signatures.json is not a signatures document") from None
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        raise ConfigurationError(".signatures.json must hold exactly one JWT, as OPA requires")
    token = tokens[0]
    if verify_key is not None:
        key, algorithm = _public_key(verify_key)
        try:
            signed = jws.deserialize_compact(token, key, algorithms=[algorithm])
        except (JoseError, ValueError):
            raise ConfigurationError(_SIGNATURE_ERROR) from None
        header, payload_bytes = signed.protected, signed.payload
    else:
        header, payload_bytes = _unverified(token)
    try:
        payload = json.loads(payload_bytes)
    except _JSON_ERRORS:
        raise ConfigurationError("the signature's payload is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("files"), list):
        raise ConfigurationError("the signature's payload lists no files")
    if payload.get("scope", "") != (scope or ""):
        raise ConfigurationError("the signature's scope is not the expected one")
    listed: dict[str, tuple[str, str]] = {}
    for entry in payload["files"]:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("name", "hash", "algorithm")
        ):
            raise ConfigurationError("the signature's payload has a malformed file entry")
        listed[entry["name"]] = (entry["algorithm"], entry["hash"])
    kid = header.get("kid") or payload.get("keyid")
    return listed, kid if isinstance(kid, str) and kid else None


def _unverified(token: str) -> tuple[dict[str, Any], bytes]:
    """Header and payload of a JWT whose signature no key was given to check."""
    try:
        signed = jws.extract_compact(token.encode())
    except (JoseError, ValueError):
        raise ConfigurationError(".signatures.json holds no readable JWT") from None
    return dict(signed.protected), signed.payload


def _check_hashes(files: Mapping[str, bytes], listed: Mapping[str, tuple[str, str]]) -> None:
    for name, content in sorted(files.items()):
        entry = listed.get(name)
        if entry is None:
            raise ConfigurationError(f"file {name} is not covered by the bundle's signature")
        algorithm, expected = entry
        if algorithm != _HASH:
            raise ConfigurationError(
                f"file {name} is signed with hash {algorithm[:20]}, not SHA-256"
            )
        if _file_hash(name, content).hex() != expected.lower():
            raise ConfigurationError(f"file {name} does not match its signed hash: it was altered")
    if missing := sorted(set(listed) - set(files)):
        raise ConfigurationError(
            f"the signature lists file(s) the bundle lacks: {', '.join(missing)}"
        )


def _manifest(content: bytes | None) -> dict[str, Any]:
    if content is None:
        raise ConfigurationError("the bundle has no .manifest")
    try:
        manifest = json.loads(content)
    except _JSON_ERRORS:
        raise ConfigurationError("its .manifest is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("revision"), str):
        raise ConfigurationError("its .manifest has no revision")
    roots = manifest.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ConfigurationError("its .manifest has no list of roots")
    return manifest


def _text(name: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"file {name} is not UTF-8 text") from None


def _check_data(data: bytes, sources: Mapping[str, str]) -> None:
    """data.json must be what the register in the bundle gives: OPA evaluates data.json,
    the digest covers register.yaml, and the two must not tell different stories."""
    register_text = sources.get(REGISTER_FILE)
    if register_text is None:
        raise ConfigurationError(f"the bundle has no {REGISTER_FILE}")
    register = Register.from_mapping(parse_yaml(register_text, REGISTER_FILE))
    try:
        loaded = json.loads(data)
    except _JSON_ERRORS:
        raise ConfigurationError("its data.json is not JSON") from None
    if loaded != {"register": register.as_data()}:
        raise ConfigurationError(f"its data.json is not the data of its {REGISTER_FILE}")


# -- OPA's file hashes ----------------------------------------------------------------


def _file_hash(name: str, content: bytes) -> bytes:
    """The SHA-256 OPA checks for one file: of its bytes, or of its JSON structure for
    the files OPA reads as structured documents (data.json, .manifest)."""
    base = PurePosixPath(name).name
    if base == DATA_FILE or name.endswith(_OPA_SUFFIXES):
        try:
            value = json.loads(content, parse_int=_Number, parse_float=_Number)
            h = hashlib.sha256()
            _json_hash(value, h)
        except _JSON_ERRORS:
            raise ConfigurationError(f"file {name} is not JSON") from None
        return h.digest()
    return hashlib.sha256(content).digest()


class _Number(str):
    """A JSON number as written: OPA hashes a number's text, not its value."""

    __slots__ = ()


def _json_hash(value: object, h: Any) -> None:
    """Feed ``value`` to ``h`` as OPA's bundle hasher does (bundle/hash.go): ``{`` keys in
    sorted order, each ``key:value``, ``,`` between, ``}``; arrays alike; primitives as
    Go's JSON encoder writes them without HTML escaping."""
    if isinstance(value, dict):
        h.update(b"{")
        for i, key in enumerate(sorted(value)):
            if i:
                h.update(b",")
            h.update(_go_string(key))
            h.update(b":")
            _json_hash(value[key], h)
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for i, item in enumerate(value):
            if i:
                h.update(b",")
            _json_hash(item, h)
        h.update(b"]")
    elif isinstance(value, _Number):
        h.update(value.encode())
    elif isinstance(value, str):
        h.update(_go_string(value))
    elif value is None:
        h.update(b"null")
    elif isinstance(value, bool):
        h.update(b"true" if value else b"false")
    else:  # pragma: no cover - json.loads gives nothing else here
        raise ConfigurationError("a JSON value of an unknown kind")


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_GO_ESCAPES["\f"] = "\\f"
_GO_ESCAPES["\u2028"] = "\\u2028"
_GO_ESCAPES["\u2029"] = "\\u2029"


def _go_string(text: str) -> bytes:
    """A string as Go's encoding/json writes it with SetEscapeHTML(false) (Go ≥ 1.22)."""
    out = ['"']
    for char in text:
        escaped = _GO_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            raise ConfigurationError("a JSON string holds a lone surrogate")
        else:
            out.append(char)
    out.append('"')
    return "".join(out).encode()
