"""What the DPO's commands share when they talk to a running gateway over mutual TLS
(`doelpoort witness`, `receipt verify`, `audit reidentify`): the client, its options, the
log key the caller holds, and one check that an entry the gateway shows is in the log
its own signed checkpoint vouches for.

Exit codes, for scripts: 0 all verified; 1 something does not verify; 2 a usage or setup
problem (a key, a file, a directory); 3 the gateway could not be reached or answered with
an error.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway._cli_common import fail

if TYPE_CHECKING:
    import httpx

    from audit.witness import LogKey
    from gateway.settings import Settings

VERIFIED, NOT_VERIFIED, SETUP, UNREACHABLE = 0, 1, 2, 3
TIMEOUT_S = 120.0

LogKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--log-key",
        help="Your own copy of the log's public key: PEM, or a verifier key "
        "<origin>+<hex key ID>+<base64>.",
        dir_okay=False,
    ),
]
Url = Annotated[str | None, typer.Option("--url", help="The gateway (default: this deployment's).")]
Cert = Annotated[
    Path | None,
    typer.Option(
        "--cert", help="Your client certificate (default: var/'s DPO one).", dir_okay=False
    ),
]
TlsKey = Annotated[
    Path | None,
    typer.Option("--tls-key", help="Its private key (default: var/'s DPO one).", dir_okay=False),
]
Ca = Annotated[
    Path | None,
    typer.Option("--ca", help="The gateway's CA certificate (default: var/'s).", dir_okay=False),
]


class GatewayError(Exception):
    """The gateway could not be reached, or answered with an error."""


@dataclass
class Gateway:
    """A mutual-TLS client of the gateway's `/v1/audit/…` routes and its JWKS."""

    client: httpx.Client

    @classmethod
    def connect(
        cls,
        settings: Settings,
        url: str | None,
        cert: Path | None,
        key: Path | None,
        ca: Path | None,
    ) -> Gateway:
        import httpx

        from gateway.transport.pki_paths import PkiPaths
        from gateway.transport.tls import client_ssl_context

        paths = PkiPaths(settings.pki_dir)
        if (cert is None) != (key is None):
            raise fail("give --cert and --tls-key together", SETUP)
        try:
            context = client_ssl_context(
                ca or paths.ca_cert,
                cert or paths.dpo_cert("dpo"),
                key or paths.dpo_key("dpo"),
            )
        except (OSError, ValueError) as exc:
            raise fail(f"cannot load the certificates for TLS: {exc}", SETUP) from exc
        base = (url or settings.base_url).rstrip("/")
        # The first proof after a gateway's start builds its tree from the whole log.
        return cls(httpx.Client(base_url=base, verify=context, timeout=TIMEOUT_S))

    def close(self) -> None:
        self.client.close()

    def _send(
        self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> httpx.Response:
        """One request; `GatewayError` when it cannot be sent or its status is not `ok`."""
        import httpx

        try:
            response = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.client.base_url}: {exc}"
            ) from exc
        if response.status_code not in ok:
            raise GatewayError(problem_line(response))
        return response

    def _get(self, path: str, **params: int) -> httpx.Response:
        return self._send("GET", path, params=params)

    def checkpoint(self) -> str:
        return self._get("/v1/audit/checkpoint").text

    def consistency(self, first: int, last: int) -> list[bytes]:
        body = self._get("/v1/audit/consistency", **{"from": first, "to": last}).json()
        return [base64.b64decode(node) for node in body["consistency_proof"]]

    def proof(self, seq: int) -> dict[str, Any]:
        body: dict[str, Any] = self._get(f"/v1/audit/proof/{seq}").json()
        return body

    def jwks(self) -> dict[str, Any]:
        body: dict[str, Any] = self._get("/.well-known/jwks.json").json()
        return body

    def release_escrow(self, seq: int, reason: str) -> dict[str, Any]:
        """``POST /dpo/api/escrows/{seq}``: the gateway records the release, then answers
        with the entry and its escrow."""
        response = self._send("POST", f"/dpo/api/escrows/{seq}", json={"reason": reason})
        try:
            answer = response.json()
        except ValueError as exc:
            raise GatewayError("the gateway did not answer with JSON") from exc
        if not isinstance(answer, dict):
            raise GatewayError(
                f"the gateway's answer for entry {seq} is not one this version reads"
            )
        return answer

    def hand_in(self, size: int, line: str) -> bool:
        """POST a cosignature; whether the gateway stored it now (False: it had it)."""
        response = self._send(
            "POST",
            "/v1/audit/cosignatures",
            ok=(200, 201),
            json={"size": size, "cosignature": line},
        )
        return response.status_code == 201


def problem_line(response: httpx.Response) -> str:
    """A refusal in one line: the status, and the problem document's detail and errors."""
    try:
        problem = response.json()
        detail = problem.get("detail") or problem.get("title")
        errors = "; ".join(str(e.get("msg")) for e in problem.get("errors", []))
    except (ValueError, AttributeError, TypeError):
        detail, errors = None, ""
    line = f"the gateway answered {response.status_code}" + (f": {detail}" if detail else "")
    if errors:
        line += f" ({errors})"
    if response.status_code == 403:
        line += " (is --cert a DPO certificate?)"
    return line


def log_key_for(settings: Settings, path: Path | None) -> LogKey:
    """The log's key: the caller's copy, or (with a warning) the gateway's own file."""
    from audit.keys import load_log_public_key, read_public_key_file
    from audit.witness import LogKey
    from gateway.errors import ConfigurationError

    try:
        if path is not None:
            return LogKey(settings.origin, read_public_key_file(path, settings.origin))
        public_key = load_log_public_key(settings.keys_dir)
    except ConfigurationError as exc:
        raise fail(str(exc), SETUP) from exc
    typer.secho(
        f"warning: the log's public key was read from {settings.keys_dir}, the gateway's own "
        "state directory; pass your own copy with --log-key",
        fg=typer.colors.YELLOW,
        err=True,
    )
    return LogKey(settings.origin, public_key)


@dataclass(frozen=True)
class ProvenEntry:
    """An entry the gateway showed, proved to be in the tree of a checkpoint that the
    log key signed."""

    seq: int
    prev: bytes
    body: bytes
    size: int
    root: bytes


class NotProven(Exception):
    """The gateway's entry or proof does not hold up; the message says why."""


def proven_entry(gateway: Gateway, log: LogKey, seq: int) -> ProvenEntry:
    """Entry `seq` with its inclusion proof (``GET /v1/audit/proof/{seq}``), checked: the
    checkpoint's signature by the caller's log key, and the entry's leaf in its tree.
    Raises `NotProven`, or `GatewayError` when the gateway refuses or cannot be reached."""
    from audit.entry import entry_leaf_hash
    from audit.errors import CheckpointError, ProofError
    from audit.proof import verify_inclusion

    answer = gateway.proof(seq)
    try:
        entry = answer["entry"]
        prev, body = base64.b64decode(entry["prev"]), base64.b64decode(entry["body"])
        proof = [base64.b64decode(node) for node in answer["inclusion_proof"]]
        size = int(answer["size"])
        note = answer["checkpoint"]
        if entry["seq"] != seq or not isinstance(note, str):
            raise ValueError("the answer is for another entry")
    except (KeyError, TypeError, ValueError) as exc:
        raise NotProven(f"the gateway's answer is not a proof: {exc}") from exc
    try:
        checkpoint = log.open(note)
    except CheckpointError as exc:
        raise NotProven(f"its checkpoint does not verify with the log key: {exc}") from exc
    if checkpoint.size != size:
        raise NotProven(f"checkpoint size got {checkpoint.size}, want {size}")
    try:
        verify_inclusion(seq - 1, size, entry_leaf_hash(seq, prev, body), proof, checkpoint.root)
    except ProofError as exc:
        raise NotProven(f"not in the checkpoint's tree: {exc}") from exc
    return ProvenEntry(seq, prev, body, size, checkpoint.root)
