"""The DPO's independent witness (``doelpoort witness``) and receipt verification
(``doelpoort receipt verify``): both talk to a running gateway over mutual TLS and check
what it says with keys the caller holds, never the gateway's own copies.

Exit codes, for scripts: 0 all verified (and cosigned); 1 something does not verify —
a receipt, an entry, a proof, a signature, or (the witness) a rollback or fork of the log,
which it refuses to cosign, its state unchanged; 2 a usage or setup problem (a key, a
file, a directory); 3 the gateway could not be reached or answered with an error.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway._cli_common import fail, settings_for

if TYPE_CHECKING:
    import httpx

    from audit.witness import LogKey, WitnessKey
    from gateway.settings import Settings

VERIFIED, NOT_VERIFIED, SETUP, UNREACHABLE = 0, 1, 2, 3
TIMEOUT_S = 120.0

VarDir = Annotated[
    Path | None, typer.Option("--var-dir", help="Runtime state directory (default: var/).")
]
StateDir = Annotated[
    Path,
    typer.Option(
        "--state",
        help="The witness's own directory (its key and memory); never inside the gateway's.",
        file_okay=False,
    ),
]
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


def register(app: typer.Typer, receipt_app: typer.Typer) -> None:
    """Add the ``witness`` group to ``app`` and ``verify`` to the ``receipt`` group."""
    witness_app = typer.Typer(
        help="The DPO's independent witness: checks and cosigns the audit log's checkpoints."
    )
    app.add_typer(witness_app, name="witness")
    witness_app.command("init")(witness_init)
    witness_app.command("run")(witness_run)
    receipt_app.command("verify")(receipt_verify)


# -- talking to the gateway -----------------------------------------------------------


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

    def _get(self, path: str, **params: int) -> httpx.Response:
        import httpx

        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.client.base_url}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise GatewayError(_problem(response))
        return response

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

    def hand_in(self, size: int, line: str) -> bool:
        """POST a cosignature; whether the gateway stored it now (False: it had it)."""
        import httpx

        try:
            response = self.client.post(
                "/v1/audit/cosignatures", json={"size": size, "cosignature": line}
            )
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.client.base_url}: {exc}"
            ) from exc
        if response.status_code not in (200, 201):
            raise GatewayError(_problem(response))
        return response.status_code == 201


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"the gateway answered {response.status_code}" + (f": {detail}" if detail else "")


def _log_key(settings: Settings, path: Path | None) -> LogKey:
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


# -- doelpoort witness ----------------------------------------------------------------


def witness_init(
    state: StateDir,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="The witness's name in its cosignatures (default: <origin>/witness).",
        ),
    ] = None,
    var_dir: VarDir = None,
) -> None:
    """Make the witness's Ed25519 key in its own directory (never overwrites), and print
    its verifier key: put that line in the gateway's keys/witnesses.txt."""
    from gateway.errors import ConfigurationError
    from gateway.witness_state import (
        KEY_FILE,
        VERIFIER_KEY_FILE,
        create_witness,
        refuse_gateway_dir,
    )

    settings = settings_for(var_dir)
    try:
        refuse_gateway_dir(state, settings)
        witness = create_witness(state, name or f"{settings.origin}/witness")
    except ConfigurationError as exc:
        raise fail(str(exc), SETUP) from exc
    if witness is None:
        raise fail(f"a witness key exists already in {state}; nothing was written", SETUP)
    typer.echo(
        f"wrote {state / KEY_FILE} (mode 0600: keep it here, off the gateway host)", err=True
    )
    typer.echo(f"wrote {state / VERIFIER_KEY_FILE}", err=True)
    typer.echo(
        f"verifier key (add this line to {settings.keys_dir / 'witnesses.txt'} on the "
        "gateway, and keep a copy for `audit verify --witness`):",
        err=True,
    )
    typer.echo(witness.verifier_key)


def witness_run(
    state: StateDir,
    log_key: LogKeyFile = None,
    url: Url = None,
    cert: Cert = None,
    tls_key: TlsKey = None,
    ca: Ca = None,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            min=1.0,
            help="Run again every SECONDS until stopped (default: once).",
            metavar="SECONDS",
        ),
    ] = None,
    var_dir: VarDir = None,
) -> None:
    """Fetch the gateway's latest checkpoint, check its signature and that it extends
    the last one this witness cosigned (a consistency proof), cosign it, keep it, and
    hand the cosignature to the gateway. A rollback or fork is refused: exit 1, the
    state unchanged."""
    from gateway.errors import ConfigurationError
    from gateway.witness_state import load_witness, refuse_gateway_dir

    settings = settings_for(var_dir)
    try:
        refuse_gateway_dir(state, settings)
        witness = load_witness(state)
    except ConfigurationError as exc:
        raise fail(str(exc), SETUP) from exc
    log = _log_key(settings, log_key)
    gateway = Gateway.connect(settings, url, cert, tls_key, ca)
    try:
        while True:
            try:
                typer.echo(witness_round(gateway, state, log, witness, now=time.time))
            except GatewayError as exc:
                if every is None:
                    raise fail(f"witness: {exc}", UNREACHABLE) from exc
                typer.secho(f"witness: {exc}; trying again in {every:g} s", err=True)
            if every is None:
                return
            _wait(every)
    finally:
        gateway.close()


def _wait(seconds: float) -> None:
    """The pause between two rounds of `witness run --every`."""
    time.sleep(seconds)


def witness_round(
    gateway: Gateway, state: Path, log: LogKey, witness: WitnessKey, now: Callable[[], float]
) -> str:
    """One round of the witness; its progress line. A refusal ends the command (exit 1)."""
    from audit.errors import CheckpointError, ProofError
    from audit.witness import Cosigned, check_advance, open_state
    from gateway.errors import ConfigurationError
    from gateway.witness_state import read_state, write_state

    try:
        kept = read_state(state)
    except ConfigurationError as exc:
        raise fail(str(exc), SETUP) from exc
    previous = None
    if kept is not None:
        try:
            previous = open_state(kept, log, witness.name, witness.public_key)
        except ProofError as exc:
            raise fail(
                f"witness: the state in {state} does not verify: {exc}", NOT_VERIFIED
            ) from exc
    note = gateway.checkpoint()
    try:
        latest = log.open(note)
    except CheckpointError as exc:
        raise fail(
            f"witness: the gateway's checkpoint does not verify with the log key: {exc}; "
            "nothing was cosigned",
            NOT_VERIFIED,
        ) from exc
    before = previous.checkpoint if previous is not None else None
    proof = None
    if before is not None and latest.size > before.size:
        proof = gateway.consistency(before.size, latest.size)
    try:
        check_advance(before, latest, proof)
    except ProofError as exc:
        raise fail(
            f"witness REFUSES to cosign: {exc}. Its state in {state} is unchanged (size "
            f"{before.size if before else 0}); investigate before anything else.",
            NOT_VERIFIED,
        ) from exc
    if previous is not None and before == latest:
        stored = gateway.hand_in(latest.size, previous.cosignature.line())
        return (
            f"witness: no new checkpoint (size {latest.size}); its cosignature was "
            f"{'handed in again' if stored else 'with the gateway already'}"
        )
    cosigned = Cosigned.sign(note, log, witness, int(now()))
    write_state(state, cosigned.note)
    grown = (
        "first checkpoint, trusted on first use"
        if before is None
        else (f"consistent with size {before.size}")
    )
    try:
        stored = gateway.hand_in(latest.size, cosigned.cosignature.line())
    except GatewayError as exc:
        raise GatewayError(
            f"cosigned size {latest.size} and kept it in {state}, but could not hand it in "
            f"({exc}); the next run hands it in again"
        ) from exc
    return (
        f"witness: cosigned size {latest.size} (root {latest.root.hex()[:16]}…; {grown}); "
        f"{'handed in' if stored else 'the gateway had it already'}"
    )


# -- doelpoort receipt verify -------------------------------------------------------------


def receipt_verify(
    receipt: Annotated[
        Path,
        typer.Argument(
            help="The receipt: the compact JWS, or the whole JSON answer of POST "
            "/v1/disclosures ('-' reads stdin).",
            allow_dash=True,
        ),
    ],
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks",
            help="The JWK Set to check the signature with (`doelpoort receipt jwks`); "
            "default: the gateway's /.well-known/jwks.json.",
            dir_okay=False,
        ),
    ] = None,
    log_key: LogKeyFile = None,
    url: Url = None,
    cert: Cert = None,
    tls_key: TlsKey = None,
    ca: Ca = None,
    var_dir: VarDir = None,
) -> None:
    """Check a receipt: its JWS against the receipt keys, then for each result its audit
    entry (fetched with its inclusion proof), that the entry says what the receipt says,
    that it is in the checkpoint's tree, and the checkpoint's signature by the log key."""
    from gateway.errors import InvalidReceipt
    from gateway.signing import verify_receipt

    settings = settings_for(var_dir)
    token = _read_receipt(receipt)
    log = _log_key(settings, log_key)
    gateway = Gateway.connect(settings, url, cert, tls_key, ca)
    try:
        keys = _read_jwks(jwks) if jwks is not None else gateway.jwks()
        try:
            disclosure = verify_receipt(token, keys)
        except InvalidReceipt as exc:
            raise fail(
                "receipt NOT verified: its signature does not verify with any key of the JWKS",
                NOT_VERIFIED,
            ) from exc
        results = disclosure.get("results")
        if not isinstance(results, list) or not results:
            raise fail("receipt NOT verified: it names no results", NOT_VERIFIED)
        for result in results:
            typer.echo(_check_result(gateway, log, disclosure, result))
    except GatewayError as exc:
        raise fail(f"receipt: {exc}", UNREACHABLE) from exc
    finally:
        gateway.close()
    typer.echo(
        f"receipt verified: {disclosure.get('id')}, {len(results)} audit entries in the signed log"
    )


def _read_receipt(path: Path) -> str:
    try:
        text = (
            typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text("utf-8")
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the receipt {path}: {exc}", SETUP) from exc
    text = text.strip()
    if text.startswith("{"):
        try:
            token = json.loads(text).get("jws")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            raise fail(f'{path} is JSON without a "jws" member', SETUP)
        return token
    return text


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"cannot read the JWKS {path}: {exc}", SETUP) from exc
    if not isinstance(document, dict):
        raise fail(f"{path} is no JWK Set", SETUP)
    return document


def _check_result(gateway: Gateway, log: LogKey, disclosure: dict[str, Any], result: Any) -> str:
    """One result of the receipt against its audit entry; its line, or exit 1."""
    from audit.entry import AuditRecord, entry_leaf_hash, record_from_body
    from audit.errors import CheckpointError, ProofError
    from audit.proof import verify_inclusion
    from gateway.canonical import canonical_json

    seq = result.get("audit_seq") if isinstance(result, dict) else None
    if type(seq) is not int or seq < 1:
        raise fail("receipt NOT verified: a result has no audit_seq", NOT_VERIFIED)
    dataset = result.get("dataset")

    def refuse(reason: str) -> typer.Exit:
        return fail(f"receipt NOT verified: audit entry {seq} ({dataset}): {reason}", NOT_VERIFIED)

    try:
        answer = gateway.proof(seq)
    except GatewayError as exc:
        if "answered 404" in str(exc):
            raise refuse(
                "the gateway shows no such entry to this certificate (entries are shown to "
                "their requester and the DPO)"
            ) from exc
        raise
    try:
        entry = answer["entry"]
        prev, body = base64.b64decode(entry["prev"]), base64.b64decode(entry["body"])
        proof = [base64.b64decode(node) for node in answer["inclusion_proof"]]
        size = int(answer["size"])
        note = answer["checkpoint"]
        if entry["seq"] != seq or not isinstance(note, str):
            raise ValueError("the answer is for another entry")
    except (KeyError, TypeError, ValueError) as exc:
        raise refuse(f"the gateway's answer is not a proof: {exc}") from exc
    try:
        record = record_from_body(body)
    except (TypeError, ValueError) as exc:
        raise refuse("its body is not an audit record") from exc
    if not isinstance(record, AuditRecord):
        raise refuse("it records no dataset decision")
    want: dict[str, object] = {
        "disclosure_id": disclosure.get("id"),
        "requester": disclosure.get("requester"),
        "purpose": disclosure.get("purpose"),
        "case_ref": disclosure.get("case_ref"),
        "policy_digest": disclosure.get("policy_digest"),
        "dataset": dataset,
        "decision": result.get("decision"),
    }
    if "records" in result:
        digest = sha256(canonical_json(result["records"])).hexdigest()
        want["records_sha256"] = f"sha256:{digest}"
    for name, value in want.items():
        got = getattr(record, name)
        if got != value:
            raise refuse(f"{name} got {got!r}, want {value!r} (the receipt's)")
    try:
        checkpoint = log.open(note)
    except CheckpointError as exc:
        raise refuse(f"its checkpoint does not verify with the log key: {exc}") from exc
    if checkpoint.size != size:
        raise refuse(f"checkpoint size got {checkpoint.size}, want {size}")
    try:
        verify_inclusion(seq - 1, size, entry_leaf_hash(seq, prev, body), proof, checkpoint.root)
    except ProofError as exc:
        raise refuse(f"not in the checkpoint's tree: {exc}") from exc
    return (
        f"audit entry {seq} ({dataset}, {record.decision}): matches the receipt; included in "
        f"the checkpoint at size {size} (root {checkpoint.root.hex()[:16]}…), signed by the "
        "log key"
    )
