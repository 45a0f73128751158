"""The ``doelpoort`` command: serve, set up, PKI, keys, audit and the demo."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from gateway import _cli_report, _cli_subject, _cli_witness
from gateway._cli_common import VarDir
from gateway._cli_common import fail as _fail
from gateway._cli_common import open_reader as _open_reader
from gateway._cli_common import settings_for as _settings
from gateway._cli_policy import policy_app
from gateway.errors import DoelpoortError
from gateway.settings import Settings

if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence

    from audit.reader import AuditReader
    from audit.verify import VerifyReport, WitnessCheck


class _ReportErrors(TyperGroup):
    """Every command's Doelpoort error (a missing key, an unknown partner, a bad setting),
    and an operating system or SQLite error about the state it works on, ends as one line
    and exit status 1, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # Typer's own (vendored) click.Context
        try:
            return super().invoke(ctx)
        except DoelpoortError as exc:
            raise _fail(str(exc)) from exc
        except OSError as exc:  # a path that is missing, a file, unreadable …: say which
            where = f": {exc.filename}" if exc.filename else ""
            raise _fail(f"{exc.strerror or type(exc).__name__}{where}") from exc
        except sqlite3.DatabaseError as exc:  # not SQLite at all, truncated, no tables …
            raise _fail(f"the audit database cannot be read: {exc}") from exc


app = typer.Typer(
    cls=_ReportErrors,
    name="doelpoort",
    help="Doelpoort — a purpose-binding gateway for counter-terrorism information sharing.",
    no_args_is_help=True,
    add_completion=False,
)
pki_app = typer.Typer(help="Development PKI: CA, server, partner and DPO certificates, CRL.")
keys_app = typer.Typer(help="Signing keys.")
audit_app = typer.Typer(help="The tamper-evident audit log (DPO tools).")
app.add_typer(pki_app, name="pki")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
receipt_app = typer.Typer(help="Receipts: the public keys that verify them.")
app.add_typer(receipt_app, name="receipt")
app.add_typer(policy_app, name="policy")
_cli_subject.register(audit_app, keys_app)
_cli_witness.register(app, receipt_app)
_cli_report.register(audit_app)


def _verify(
    settings: Settings,
    reader: AuditReader,
    log_key: Path | None,
    *,
    trusted: str | None = None,
    witness: WitnessCheck | None = None,
) -> VerifyReport:
    """`verify_log` with the DPO's key (or, with a warning, the gateway's own); a log that
    is not intact ends the command."""
    from audit.errors import (
        AuditVerificationError,
        CheckpointError,
        ConfigurationError,
        ProofError,
    )
    from audit.keys import load_log_public_key, read_public_key_file
    from audit.verify import verify_log

    try:
        if log_key is not None:
            public_key = read_public_key_file(log_key, settings.origin)
        else:
            public_key = load_log_public_key(settings.keys_dir)
            typer.secho(
                f"warning: the log's public key was read from {settings.keys_dir}, the "
                "gateway's own state directory: whoever can change the log there can "
                "also re-sign it, and this run would not notice. Pass your own copy with "
                "--log-key (and your last saved checkpoint with --trusted-checkpoint).",
                fg=typer.colors.YELLOW,
                err=True,
            )
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    try:
        return verify_log(
            reader, public_key, origin=settings.origin, trusted=trusted, witness=witness
        )
    except AuditVerificationError as exc:
        raise _fail(f"audit log NOT intact: {exc}") from exc
    except ProofError as exc:
        raise _fail(
            f"audit log NOT verified: the witness's state does not open: {exc} (is it this "
            "log's witness, and the right keys?)"
        ) from exc
    except CheckpointError as exc:
        raise _fail(
            f"audit log NOT verified: {exc} (is it a checkpoint of this log, and the right key?)"
        ) from exc


@app.command()
def setup(var_dir: VarDir = None) -> None:
    """Create the development PKI, keys and synthetic demo records (never overwrites)."""
    from gateway.dev.bootstrap import bootstrap

    bootstrap(_settings(var_dir), echo=typer.echo)


@app.command()
def serve(
    var_dir: VarDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Listen port (0: any free port)."),
    ] = None,
    do_setup: Annotated[bool, typer.Option("--setup", help="Run `doelpoort setup` first.")] = False,
    proxy_socket: Annotated[
        Path | None,
        typer.Option(
            "--proxy-socket",
            help="Serve behind a TLS-terminating proxy on this unix socket instead, trusting "
            "the RFC 9440 Client-Cert header it forwards (deploy/README.md).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the gateway over mutual TLS (or behind a TLS-terminating proxy), and the
    operations listener (health, readiness, JWKS; metrics to this host only) beside it.
    SIGHUP reloads the policy set once it passes vetting (deploy/README.md)."""
    import signal

    from gateway.app import create_app, request_policy_reload
    from gateway.dev.bootstrap import bootstrap
    from gateway.ops import create_ops_app
    from gateway.transport import security_log
    from gateway.transport.ops_listener import bind_tcp_socket, build_ops_server
    from gateway.transport.pki_paths import PkiPaths
    from gateway.transport.tls import build_server

    if hasattr(signal, "SIGHUP"):
        # A hangup never stops the gateway: ignored until it serves, a reload after.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = _settings(var_dir)
    settings = settings.replace(
        host=host or settings.host,
        port=port if port is not None else settings.port,
        proxy_socket=proxy_socket or settings.proxy_socket,
    )
    if settings.proxy_socket is not None and (host is not None or port is not None):
        raise _fail("a proxy socket is served alone; leave out --host and --port", 2)
    if do_setup:
        bootstrap(settings, echo=typer.echo)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    security_log.write_lines_to(sys.stderr)  # JSON lines alone: deploy/README.md
    _warn_of_development_origin(settings)
    # Bound first, so a taken operations port stops `serve` before anything starts.
    ops_socket = bind_tcp_socket(settings.ops_host, settings.ops_port)
    settings = settings.replace(ops_port=ops_socket.getsockname()[1])
    gateway_app = create_app(settings)
    # The announcements come from the server once it serves: after the app's start-up
    # (policies, keys, the audit log's writer lock) and the bind have succeeded.
    try:
        if settings.proxy_socket is not None:
            from gateway.transport.proxied import build_proxied_server

            server = build_proxied_server(
                gateway_app,
                socket_path=settings.proxy_socket,
                paths=PkiPaths(settings.pki_dir),
                on_serving=lambda _listeners: _announce_proxied(settings),
            )
        else:
            server = build_server(
                gateway_app,
                host=settings.host,
                port=settings.port,
                paths=PkiPaths(settings.pki_dir),
                log_level="warning",
                on_serving=lambda listeners: _announce(settings, listeners),
            )
    except BaseException:
        ops_socket.close()
        raise
    ops_app = create_ops_app(lambda: getattr(gateway_app.state, "runtime", None))
    server.serve_beside(build_ops_server(ops_app, ops_socket))
    server.on_hangup(lambda: request_policy_reload(gateway_app, "sighup"))
    server.run()


# The origin names the log in every checkpoint, and a log cannot change it once it holds
# one: a deployment should not keep the demo's by oversight.
_DEVELOPMENT_ORIGIN_WARNING = (
    "the audit log is named by the development origin %s; a deployment names its own "
    "log: set DOELPOORT_ORIGIN (e.g. gateway.example.nl/doelpoort/audit) before its first "
    "entry"
)


def _warn_of_development_origin(settings: Settings) -> None:
    if settings.uses_development_origin:
        logging.getLogger("doelpoort.settings").warning(
            _DEVELOPMENT_ORIGIN_WARNING, settings.origin
        )


def _announce(settings: Settings, listeners: Sequence[socket.socket]) -> None:
    """The banner, naming the port actually bound (the one chosen, for port 0)."""
    from gateway.dev.demo import curl_example
    from gateway.transport.pki_paths import PkiPaths

    bound = settings.replace(port=listeners[0].getsockname()[1]) if listeners else settings
    typer.echo("")
    typer.secho(f"Doelpoort serves {bound.base_url} (mutual TLS).", bold=True)
    typer.echo("Try it as the police, asking for a ct-assessment of a synthetic subject:\n")
    typer.echo(curl_example(bound))
    typer.echo("")
    _announce_ops(settings)
    typer.echo("Scripted exchange between partners:  make demo   (in another terminal)")
    dpo = PkiPaths(settings.pki_dir)
    typer.echo(
        f"DPO console: {bound.base_url}/dpo/ with the DPO's certificate"
        f' ({dpo.dpo_cert("dpo")}, key {dpo.dpo_key("dpo")}; docs/dpo.md, "The console").'
    )
    typer.echo("DPO: verify the log with `doelpoort audit verify`. Stop with Ctrl-C.")


def _announce_ops(settings: Settings) -> None:
    typer.echo(
        f"Operations (no client certificate): {settings.ops_url}/healthz, /readyz and "
        "/.well-known/jwks.json; /metrics to clients on this host only."
    )


def _announce_proxied(settings: Settings) -> None:
    _announce_ops(settings)
    typer.secho(
        f"Doelpoort serves unix:{settings.proxy_socket} (mode 0660) for a TLS-terminating "
        "proxy that forwards the verified client certificate as an RFC 9440 Client-Cert "
        "header; see deploy/README.md. Stop with Ctrl-C.",
        bold=True,
    )


@pki_app.command("init")
def pki_init(var_dir: VarDir = None) -> None:
    """Create the CA, server, partner and DPO certificates and an empty CRL."""
    from gateway.connectors.catalog import Catalog
    from gateway.dev.pki import init_pki

    settings = _settings(var_dir)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    report = init_pki(settings.pki_dir, sorted(catalog.partners))
    for path in report.created:
        typer.echo(f"created {path}")
    for path in report.backfilled:
        typer.echo(f"recorded {path} in the issuance register")
    if report.backfilled:
        typer.echo(
            "this PKI was made before the issuance register: the certificates above are "
            "recorded in it; any other certificate the CA issued is refused from now on"
        )
    for path in report.refreshed:
        typer.echo(f"re-signed {path}")
    typer.echo(
        f"{len(report.created)} created, {len(report.refreshed)} re-signed, "
        f"{len(report.kept)} kept in {settings.pki_dir}"
    )


def _serial(value: str | None) -> int | None:
    """A certificate serial number in hex, as `pki revoke` and OpenSSL print it (colons
    and a 0x prefix allowed)."""
    if value is None:
        return None
    digits = value.strip().lower().removeprefix("0x").replace(":", "")
    if not digits or digits.strip("0123456789abcdef") or int(digits, 16) == 0:
        raise typer.BadParameter("a serial number is a positive hex number, e.g. 5f0c3a")
    return int(digits, 16)


@pki_app.command("revoke")
def pki_revoke(
    partner: Annotated[
        str | None,
        typer.Argument(help="Revoke every certificate the CA ever issued to this partner."),
    ] = None,
    serial: Annotated[
        int | None,
        typer.Option(
            "--serial",
            metavar="HEX",
            parser=_serial,
            help="Revoke the one certificate with this serial number instead.",
        ),
    ] = None,
    var_dir: VarDir = None,
) -> None:
    """Revoke a partner (every certificate it was issued) or one certificate: put them
    on the CRL the gateway honours. Exit status 2 when all of them were revoked already."""
    from gateway.dev.pki import revoke, revoke_serial

    if (partner is None) == (serial is None):
        raise _fail("give a partner or --serial HEX (one of them)", 2)
    pki_dir = _settings(var_dir).pki_dir
    if partner is not None:
        done, what = revoke(pki_dir, partner), f"partner {partner}"
    else:
        assert serial is not None
        done, what = revoke_serial(pki_dir, serial), "certificate"
    already = ", ".join(f"{s:x}" for s in done.already)
    if not done.revoked:
        raise _fail(f"{what} already revoked (serial {already}); nothing changed", 2)
    revoked = ", ".join(f"{s:x}" for s in done.revoked)
    typer.echo(
        f"revoked {what} (serial {revoked}); the gateway refuses "
        f"{'them' if len(done.revoked) > 1 else 'it'} from its next request on"
    )
    if already:
        typer.echo(f"already revoked before: serial {already}")


@pki_app.command("reissue")
def pki_reissue(partner: str, var_dir: VarDir = None) -> None:
    """Revoke every certificate of a partner and issue a new key and certificate."""
    from gateway.dev.pki import reissue
    from gateway.transport.pki_paths import PkiPaths

    settings = _settings(var_dir)
    serial = reissue(settings.pki_dir, partner)
    paths = PkiPaths(settings.pki_dir)
    typer.echo(
        f"reissued {partner} (new serial {serial:x}); every earlier certificate is revoked. "
        f"Hand over {paths.partner_cert(partner)} and its key."
    )


@keys_app.command("init")
def keys_init(var_dir: VarDir = None) -> None:
    """Create the gateway's missing keys (never overwrites): for a production start."""
    from gateway.keys import create_keys

    settings = _settings(var_dir)
    create_keys(settings.keys_dir, settings.audit_db_path, echo=typer.echo)
    typer.echo("Give the DPO the audit log's public key: `doelpoort audit export-key`.")
    if settings.uses_development_origin:
        typer.secho(
            f"warning: {_DEVELOPMENT_ORIGIN_WARNING % settings.origin}",
            fg=typer.colors.YELLOW,
            err=True,
        )


@keys_app.command("rotate")
def keys_rotate(var_dir: VarDir = None) -> None:
    """Start signing receipts with a new key; the old one stays published as retired."""
    from gateway.keys import rotate_receipt_key

    kid = rotate_receipt_key(_settings(var_dir).keys_dir)
    typer.echo(f"new receipt signing key {kid}; restart the gateway to use it")


@keys_app.command("escrow")
def keys_escrow(
    private_dir: Annotated[
        Path,
        typer.Option(
            "--private-dir",
            help="Where the private half goes: the DPO's own (offline) storage, never the "
            "gateway's state directory. Install only the public half on the gateway.",
            file_okay=False,
        ),
    ],
    var_dir: VarDir = None,
) -> None:
    """Make the DPO's re-identification escrow key pair (never overwrites)."""
    from gateway.keys import create_escrow_keys

    settings = _settings(var_dir)
    if private_dir.resolve().is_relative_to(settings.var_dir.resolve()):
        raise _fail(
            f"{private_dir} is inside the gateway's state directory {settings.var_dir}: the "
            "DPO's private key must never be readable by the gateway",
            2,
        )
    files = create_escrow_keys(private_dir, settings.keys_dir)
    if files is None:
        raise _fail("an escrow key exists already; nothing was written", 2)
    typer.echo(f"wrote {files.public} (the gateway's; restart it to seal escrows)")
    typer.echo(f"wrote {files.private} (the DPO's: keep it offline, never on the gateway host)")


LogKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--log-key",
        help="Your own copy of the log's public key: PEM, or a verifier key "
        "<name>+<hex key ID>+<base64>. Without it, var/keys/audit-log.pub is used.",
        dir_okay=False,
    ),
]


TrustedCheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--trusted-checkpoint",
        help="A checkpoint you saved earlier (`doelpoort audit checkpoint`): the log "
        "must still hold it, unchanged.",
        dir_okay=False,
    ),
]


def _read_trusted(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read the trusted checkpoint {path}: {exc}", 2) from exc


def _witness_check(witness: Path | None, witness_state: Path | None) -> WitnessCheck | None:
    """The witness `audit verify` checks against: its verifier key file (and state)."""
    from audit.cosignature import parse_cosigner_key
    from audit.verify import WitnessCheck
    from gateway.errors import ConfigurationError
    from gateway.witness_state import read_state, read_verifier_key

    if witness is None:
        if witness_state is not None:
            raise _fail("--witness-state needs --witness (the witness's verifier key)", 2)
        return None
    try:
        text, _ = read_verifier_key(witness)
        state = read_state(witness_state) if witness_state is not None else None
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    if witness_state is not None and state is None:
        raise _fail(f"{witness_state} holds no cosigned checkpoint: has the witness run?", 2)
    name, public_key = parse_cosigner_key(text)
    return WitnessCheck(name, public_key, state)


@audit_app.command("verify")
def audit_verify(
    var_dir: VarDir = None,
    log_key: LogKeyOption = None,
    trusted_checkpoint: TrustedCheckpointOption = None,
    witness: Annotated[
        Path | None,
        typer.Option(
            "--witness",
            help="Your witness's verifier key file (witness.vkey): its stored cosignatures "
            "must match the entries, and there must be one.",
            dir_okay=False,
        ),
    ] = None,
    witness_state: Annotated[
        Path | None,
        typer.Option(
            "--witness-state",
            help="The witness's directory: the log must still hold the last checkpoint it "
            "cosigned (catches a rollback to a copy newer than your trusted checkpoint).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Recompute the Merkle tree, check every checkpoint, and that every entry is under
    one; name the first bad entry."""
    settings = _settings(var_dir)
    trusted = _read_trusted(trusted_checkpoint)
    checked = _witness_check(witness, witness_state)
    with _open_reader(settings) as reader:
        report = _verify(settings, reader, log_key, trusted=trusted, witness=checked)
    summary = f"audit log intact: {report.entries} entries, {report.checkpoints} signed checkpoints"
    if report.trusted_size is not None:
        summary += f", consistent with your trusted checkpoint at size {report.trusted_size}"
    if checked is not None:
        summary += f"; witness {checked.name} vouches for it up to size {report.witnessed_size}"
        if checked.state is not None:
            summary += " (and its latest cosigned checkpoint holds)"
    typer.echo(summary)


@audit_app.command("checkpoint")
def audit_checkpoint(
    var_dir: VarDir = None,
    log_key: LogKeyOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the note to FILE instead of stdout.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Verify the log, then print its latest signed checkpoint to keep as your next
    trusted checkpoint (a note from a log that does not verify is no anchor)."""
    settings = _settings(var_dir)
    with _open_reader(settings) as reader:
        _verify(settings, reader, log_key)
        stored = reader.checkpoints()
    if not stored:
        # A log that verifies has entries only under a checkpoint: this one is empty.
        raise _fail(
            "the audit log has no signed checkpoint yet: it has no entries (the gateway "
            "signs one with every commit)",
            2,
        )
    latest = stored[-1]
    if output is None:
        typer.echo(latest.note, nl=False)
    else:
        try:
            output.write_text(latest.note, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc}", 2) from exc
    typer.echo(
        f"checkpoint at size {latest.size}, signed {latest.created_at}. Keep it off the "
        "gateway host; run `doelpoort audit verify --log-key YOUR-COPY "
        "--trusted-checkpoint FILE` with it next time.",
        err=True,
    )


@audit_app.command("export-key")
def audit_export_key(var_dir: VarDir = None) -> None:
    """Write var/keys/audit-log.pub from the log key, and print its verifier key."""
    from audit.checkpoint import verifier_key
    from gateway.errors import ConfigurationError
    from gateway.keys import export_log_public_key

    settings = _settings(var_dir)
    try:
        exported = export_log_public_key(settings.keys_dir)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    done = "wrote" if exported.written else "kept (it matches the log key)"
    typer.echo(f"{done} {exported.path}", err=True)
    typer.echo("verifier key (give the DPO a copy for `audit verify --log-key`):", err=True)
    typer.echo(verifier_key(settings.origin, exported.public_key))


@receipt_app.command("jwks")
def receipt_jwks(
    var_dir: VarDir = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the JWKS to FILE instead of stdout.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Export the receipt keys' public halves (current and retired) as a JWK Set, from
    var/keys, without a running gateway: what a court or supervisor verifies with."""
    import json

    from gateway.keys import load_receipt_keys
    from gateway.signing import ReceiptSigner

    settings = _settings(var_dir)
    document = ReceiptSigner(*load_receipt_keys(settings.keys_dir)).jwks()
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror or exc}", 2) from exc
    kids = ", ".join(key["kid"] for key in document["keys"])
    typer.echo(f"wrote {output}: {len(document['keys'])} receipt key(s): {kids}", err=True)


@app.command()
def demo(
    var_dir: VarDir = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL.")] = None,
) -> None:
    """Play a scripted exchange between partners against the running gateway."""
    from gateway.dev.demo import run_demo

    settings = _settings(var_dir)
    code = asyncio.run(run_demo(settings, url or settings.base_url, echo=typer.echo))
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
