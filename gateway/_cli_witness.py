"""The DPO's independent witness (``doelpoort witness``) and receipt verification
(``doelpoort receipt verify``): both talk to a running gateway over mutual TLS and check
what it says with keys the caller holds, never the gateway's own copies.

Exit codes, for scripts: 0 all verified (and cosigned); 1 something does not verify —
a receipt, an entry, a proof, a signature, or (the witness) a rollback or fork of the log,
which it refuses to cosign, its state unchanged; 2 a usage or setup problem (a key, a
file, a directory); 3 the gateway could not be reached or answered with an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway._cli_common import VarDir, fail, settings_for
from gateway._cli_gateway import (
    NOT_VERIFIED,
    SETUP,
    UNREACHABLE,
    Ca,
    Cert,
    Gateway,
    GatewayError,
    LogKeyFile,
    NotProven,
    TlsKey,
    Url,
    log_key_for,
    proven_entry,
)

if TYPE_CHECKING:
    from audit.witness import LogKey, WitnessKey


StateDir = Annotated[
    Path,
    typer.Option(
        "--state",
        help="The witness's own directory (its key and memory); never inside the gateway's.",
        file_okay=False,
    ),
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
    log = log_key_for(settings, log_key)
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
    log = log_key_for(settings, log_key)
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
    from audit.entry import AuditRecord, record_from_body
    from gateway.canonical import canonical_json

    seq = result.get("audit_seq") if isinstance(result, dict) else None
    if type(seq) is not int or seq < 1:
        raise fail("receipt NOT verified: a result has no audit_seq", NOT_VERIFIED)
    dataset = result.get("dataset")

    def refuse(reason: str) -> typer.Exit:
        return fail(f"receipt NOT verified: audit entry {seq} ({dataset}): {reason}", NOT_VERIFIED)

    try:
        entry = proven_entry(gateway, log, seq)
    except GatewayError as exc:
        if "answered 404" in str(exc):
            raise refuse(
                "the gateway shows no such entry to this certificate (entries are shown to "
                "their requester and the DPO)"
            ) from exc
        raise
    except NotProven as exc:
        raise refuse(str(exc)) from exc
    try:
        record = record_from_body(entry.body)
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
    return (
        f"audit entry {seq} ({dataset}, {record.decision}): matches the receipt; included in "
        f"the checkpoint at size {entry.size} (root {entry.root.hex()[:16]}…), signed by the "
        "log key"
    )
