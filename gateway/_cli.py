"""The ``doelpoort`` command: serve, set up, PKI, keys, audit and the demo."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gateway.settings import Settings

app = typer.Typer(
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

VarDir = Annotated[
    Path | None, typer.Option("--var-dir", help="Runtime state directory (default: var/).")
]


def _settings(var_dir: Path | None = None) -> Settings:
    settings = Settings.from_env()
    return settings.with_var_dir(var_dir) if var_dir is not None else settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def setup(var_dir: VarDir = None) -> None:
    """Create the development PKI, keys and synthetic demo records (never overwrites)."""
    from gateway.bootstrap import bootstrap

    bootstrap(_settings(var_dir), echo=typer.echo)


@app.command()
def serve(
    var_dir: VarDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    do_setup: Annotated[bool, typer.Option("--setup", help="Run `doelpoort setup` first.")] = False,
) -> None:
    """Serve the gateway over mutual TLS."""
    from dataclasses import replace

    from gateway.app import create_app
    from gateway.bootstrap import bootstrap
    from gateway.demo import curl_example
    from gateway.pki import PkiPaths
    from gateway.tls import build_server

    settings = _settings(var_dir)
    settings = replace(
        settings, host=host or settings.host, port=port if port is not None else settings.port
    )
    if do_setup:
        bootstrap(settings, echo=typer.echo)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = build_server(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        paths=PkiPaths(settings.pki_dir),
        log_level="warning",
    )
    typer.echo("")
    typer.secho(f"Doelpoort serves {settings.base_url} (mutual TLS).", bold=True)
    typer.echo("Try it as the police, asking for a ct-assessment of a synthetic subject:\n")
    typer.echo(curl_example(settings))
    typer.echo("")
    typer.echo("Scripted exchange between partners:  make demo   (in another terminal)")
    typer.echo(
        "DPO: no web console yet (a later issue); verify the log with "
        "`doelpoort audit verify`. Stop with Ctrl-C."
    )
    server.run()


@pki_app.command("init")
def pki_init(var_dir: VarDir = None) -> None:
    """Create the CA, server, partner and DPO certificates and an empty CRL."""
    from gateway.connectors.catalog import Catalog
    from gateway.pki import init_pki

    settings = _settings(var_dir)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    report = init_pki(settings.pki_dir, sorted(catalog.partners))
    for path in report.created:
        typer.echo(f"created {path}")
    for path in report.refreshed:
        typer.echo(f"re-signed {path}")
    typer.echo(
        f"{len(report.created)} created, {len(report.refreshed)} re-signed, "
        f"{len(report.kept)} kept in {settings.pki_dir}"
    )


@pki_app.command("revoke")
def pki_revoke(partner: str, var_dir: VarDir = None) -> None:
    """Revoke a partner's certificate: add it to the CRL the gateway honours."""
    from gateway.errors import ConfigurationError
    from gateway.pki import revoke

    settings = _settings(var_dir)
    try:
        serial = revoke(settings.pki_dir, partner)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"revoked {partner} (serial {serial:x}); the gateway rejects it from now on")


@keys_app.command("rotate")
def keys_rotate(var_dir: VarDir = None) -> None:
    """Start signing receipts with a new key; the old one stays published as retired."""
    from gateway.signing import rotate_signing_key

    kid = rotate_signing_key(_settings(var_dir).keys_dir)
    typer.echo(f"new receipt signing key {kid}; restart the gateway to use it")


@audit_app.command("verify")
def audit_verify(var_dir: VarDir = None) -> None:
    """Recompute the Merkle tree, check every checkpoint; name the first bad entry."""
    from audit.keys import load_log_public_key
    from audit.store import AuditReader
    from audit.verify import AuditVerificationError, verify_log
    from gateway.runtime import LOG_KEY_NAME

    settings = _settings(var_dir)
    if not settings.audit_db_path.exists():
        raise _fail(f"no audit log at {settings.audit_db_path}", 2)
    reader = AuditReader(settings.audit_db_path)
    try:
        report = verify_log(
            reader,
            load_log_public_key(settings.keys_dir),
            origin=settings.origin,
            key_name=LOG_KEY_NAME,
        )
    except AuditVerificationError as exc:
        raise _fail(
            f"audit log NOT intact: first bad entry is seq {exc.first_bad_seq}: {exc}"
        ) from exc
    finally:
        reader.close()
    typer.echo(
        f"audit log intact: {report.entries} entries, {report.checkpoints} signed checkpoints"
        + (
            f", {report.uncovered_tail} newest entries not yet under a checkpoint"
            if report.uncovered_tail
            else ""
        )
    )


@app.command()
def demo(
    var_dir: VarDir = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL.")] = None,
) -> None:
    """Play a scripted exchange between partners against the running gateway."""
    from gateway.demo import run_demo

    settings = _settings(var_dir)
    code = asyncio.run(run_demo(settings, url or settings.base_url, echo=typer.echo))
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
