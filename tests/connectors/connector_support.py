"""Helpers of the connector tests: tmp deployments and a real local provider.

Plain functions rather than a ``conftest.py``: test directories carry no ``__init__.py``,
so a second ``conftest`` module elsewhere would collide under mypy.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import gzip
import ipaddress
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "doelpoort-test"
CLIENT_SECRET = "correct-horse-battery-staple"
SCOPE = "records:read"
#: A marker the provider puts in error bodies; it must never reach an exception message.
BODY_MARKER = "provider-internal-detail-7f3a"

#: The provider's records; ``internal_note`` is not declared and must be stripped.
PROVIDER_RECORDS: list[dict[str, Any]] = [
    {
        "bsn": "999900018",
        "name": "Sam Fictief-9001",
        "date_of_birth": "1980-04-01",
        "score": 7,
        "ratio": 0.5,
        "flagged": True,
        "address": {"street": "Voorbeeldstraat", "house_number": "1", "municipality": "Breda"},
        "internal_note": "not declared",
    },
    {
        "bsn": "999900031",
        "name": "Kim Fictief-9002",
        "date_of_birth": "1991-12-31",
        "score": None,
        "ratio": 3,
        "flagged": False,
        "address": None,
    },
]


# ---------------------------------------------------------------------------
# Temporary deployments
# ---------------------------------------------------------------------------

#: A dataset exercising every field type and a compound identity key.
TEST_FIELDS: dict[str, dict[str, str]] = {
    "bsn": {"type": "string", "category": "identifier"},
    "iban": {"type": "string", "category": "identifier"},
    "name": {"type": "string", "category": "identity"},
    "date_of_birth": {"type": "date", "category": "identity"},
    "score": {"type": "integer", "category": "indicator"},
    "ratio": {"type": "number", "category": "financial"},
    "flagged": {"type": "boolean", "category": "indicator"},
    "address": {"type": "address", "category": "address"},
}
TEST_KEYS = [["bsn"], ["iban"], ["name", "date_of_birth"]]


def partner_doc(
    partner: str = "provider",
    *,
    connector: dict[str, Any] | None = None,
    fields: dict[str, dict[str, str]] | None = None,
    identity_keys: list[list[str]] | None = None,
    domain: str = "police",
) -> dict[str, Any]:
    """A partner document with one dataset, ``records``."""
    return {
        "partner": partner,
        "name": f"Test partner {partner} (synthetic)",
        "roles": ["ct-infobox"],
        "datasets": {
            "records": {
                "description": "Synthetic test records",
                "domain": domain,
                "identity_keys": identity_keys if identity_keys is not None else TEST_KEYS,
                "connector": connector or {"kind": "file", "path": "demo/records.jsonl"},
                "fields": fields if fields is not None else TEST_FIELDS,
            }
        },
    }


def write_partners(directory: Path, *docs: dict[str, Any], names: list[str] | None = None) -> Path:
    """Write partner documents as ``<directory>/<partner>.yaml`` (or ``names``), beside
    the demo's vocabulary (unless the directory has one)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = directory / "vocabulary.yaml"
    if not vocabulary.exists():
        shutil.copyfile(REPO / "connectors" / "vocabulary.yaml", vocabulary)
    for i, doc in enumerate(docs):
        name = names[i] if names else f"{doc['partner']}.yaml"
        (directory / name).write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return directory


# ---------------------------------------------------------------------------
# A real local provider (uvicorn + Starlette in a thread)
# ---------------------------------------------------------------------------


@dataclass
class ProviderState:
    expires_in: int = 3600
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    subjects_seen: list[dict[str, Any]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    accept_encodings: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.expires_in = 3600
        self.tokens_issued = 0
        self.valid_tokens.clear()
        self.subjects_seen.clear()
        self.token_requests.clear()
        self.accept_encodings.clear()


def _matches(record: dict[str, Any], subject: dict[str, Any]) -> bool:
    if "bsn" in subject and record["bsn"] == subject["bsn"]:
        return True
    return (
        "name" in subject
        and "date_of_birth" in subject
        and (record["name"], record["date_of_birth"]) == (subject["name"], subject["date_of_birth"])
    )


def build_provider(state: ProviderState) -> Starlette:
    async def token(request: Request) -> Response:
        # Parsed by hand: Starlette's form parser needs python-multipart.
        form = dict(parse_qsl((await request.body()).decode("ascii")))
        state.token_requests.append(form)
        state.accept_encodings.append(request.headers.get("accept-encoding", ""))
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "client_credentials" or form.get("scope") != SCOPE:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        state.tokens_issued += 1
        access_token = f"token-{state.tokens_issued}"
        state.valid_tokens.add(access_token)
        document = {"access_token": access_token, "token_type": "Bearer"}
        if request.url.path == "/token/padded":  # a valid token in an oversized answer
            document["padding"] = BODY_MARKER * (4096 // len(BODY_MARKER))
        return JSONResponse({**document, "expires_in": state.expires_in})

    async def slow_token(request: Request) -> Response:
        state.token_requests.append(dict(parse_qsl((await request.body()).decode("ascii"))))
        await asyncio.sleep(2.0)
        return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)

    async def records(request: Request) -> Response:
        body = await request.json()
        subject = body["subject"]
        state.subjects_seen.append(subject)
        state.accept_encodings.append(request.headers.get("accept-encoding", ""))
        return JSONResponse({"records": [r for r in PROVIDER_RECORDS if _matches(r, subject)]})

    async def compressed(request: Request) -> Response:
        # A valid answer, gzip-compressed whatever the request asked for. A small one
        # here; from a hostile provider, a few KB that unpack to gigabytes.
        subject = (await request.json())["subject"]
        document = {"records": [r for r in PROVIDER_RECORDS if _matches(r, subject)]}
        return Response(
            gzip.compress(json.dumps(document).encode()),
            media_type="application/json",
            headers={"content-encoding": "gzip"},
        )

    async def fails_with_marked_header(request: Request) -> Response:
        return Response(b"", status_code=500, headers={"x-provider-debug": BODY_MARKER})

    async def everyone(request: Request) -> Response:
        # A provider that answers with every candidate it has, matching or not.
        state.subjects_seen.append((await request.json())["subject"])
        return JSONResponse({"records": PROVIDER_RECORDS})

    async def secure_records(request: Request) -> Response:
        scheme, _, token_value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token_value not in state.valid_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return await records(request)

    async def refuses_tokens(request: Request) -> Response:
        return JSONResponse({"error": "invalid_token", "detail": BODY_MARKER}, status_code=401)

    async def fails(request: Request) -> Response:
        return PlainTextResponse(f"Internal error: {BODY_MARKER}", status_code=500)

    async def not_json(request: Request) -> Response:
        return PlainTextResponse(f"<html>{BODY_MARKER}</html>")

    async def wrong_shape(request: Request) -> Response:
        return JSONResponse({"data": [{"bsn": BODY_MARKER}]})

    async def record_not_object(request: Request) -> Response:
        return JSONResponse({"records": [BODY_MARKER]})

    async def wrong_type(request: Request) -> Response:
        return JSONResponse({"records": [{"bsn": "999900018", "score": BODY_MARKER}]})

    async def repeated_records(request: Request) -> Response:
        # Two "records" members: a reader that keeps the last one finds the match (the
        # record carries the marker, which must never show in a message or the log).
        record = {**PROVIDER_RECORDS[0], "internal_note": BODY_MARKER}
        body = '{"records": [], "records": [' + json.dumps(record) + "]}"
        return Response(body.encode(), media_type="application/json")

    async def repeated_field(request: Request) -> Response:
        # One record naming two people: the first name matches, the second wins elsewhere.
        body = (
            '{"records": [{"bsn": "999900018", "name": "Sam Fictief-9001", '
            f'"name": "{BODY_MARKER}"}}]}}'
        )
        return Response(body.encode(), media_type="application/json")

    async def large(request: Request) -> Response:
        # Valid JSON of about 4 KiB, once with a Content-Length and once streamed without.
        document = {"records": [], "padding": BODY_MARKER * (4096 // len(BODY_MARKER))}
        if request.query_params.get("streamed"):
            payload = json.dumps(document).encode()
            chunks = (payload[i : i + 512] for i in range(0, len(payload), 512))
            return StreamingResponse(chunks, media_type="application/json")
        return JSONResponse(document)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(1.0)
        return JSONResponse({"records": []})

    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/token/padded", token, methods=["POST"]),
            Route("/token/slow", slow_token, methods=["POST"]),
            Route("/compressed", compressed, methods=["POST"]),
            Route("/fails/marked-header", fails_with_marked_header, methods=["POST"]),
            Route("/records", records, methods=["POST"]),
            Route("/everyone", everyone, methods=["POST"]),
            Route("/secure/records", secure_records, methods=["POST"]),
            Route("/secure/refuses", refuses_tokens, methods=["POST"]),
            Route("/fails", fails, methods=["POST"]),
            Route("/not-json", not_json, methods=["POST"]),
            Route("/wrong-shape", wrong_shape, methods=["POST"]),
            Route("/record-not-object", record_not_object, methods=["POST"]),
            Route("/wrong-type", wrong_type, methods=["POST"]),
            Route("/repeated-records", repeated_records, methods=["POST"]),
            Route("/repeated-field", repeated_field, methods=["POST"]),
            Route("/large", large, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
        ]
    )


@dataclass
class Provider:
    base_url: str
    state: ProviderState


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: ``(ca, cert, key)``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def build(
        name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.CertificateBuilder:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer), False)
        )
        return builder

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Doelpoort test CA")])
    ca_cert = (
        build("Doelpoort test CA", ca_key, ca_name, ca_key.public_key(), ca=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        build("127.0.0.1", key, ca_name, ca_key.public_key(), ca=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@contextmanager
def running_provider(tls: tuple[Path, Path] | None = None) -> Iterator[Provider]:
    """Serve :func:`build_provider` on a free local port in a thread, for the block.

    ``tls`` is ``(certificate, key)`` to serve HTTPS instead of HTTP.
    """
    state = ProviderState()
    config = uvicorn.Config(
        build_provider(state),
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test provider did not start")
            time.sleep(0.01)
        yield Provider(f"{'https' if tls else 'http'}://127.0.0.1:{port}", state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
