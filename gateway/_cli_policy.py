"""``doelpoort policy``: the policy authors' tools (check, test, eval, replay, diff, bundle).

Each command is a thin shell over a module of `gateway.policy`; this file only parses
arguments and prints. `gateway._cli` adds the group to the ``doelpoort`` command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

policy_app = typer.Typer(
    help="Policy authors' tools: check, test, explain, replay, diff and bundle policy sets.",
    no_args_is_help=True,
)


# -- bundle, keygen (OPA bundles: gateway.policy.opa_bundle) ---------------------------

_BUNDLE_FILE = Path("doelpoort-policy.tar.gz")


@policy_app.command("bundle")
def policy_bundle(
    policies: Annotated[
        Path | None, typer.Option(help="Policy directory; default DOELPOORT_POLICIES_DIR.")
    ] = None,
    connectors: Annotated[
        Path | None, typer.Option(help="Connector catalog; default DOELPOORT_CONNECTORS_DIR.")
    ] = None,
    output: Annotated[Path, typer.Option(help="The bundle to write (.tar.gz).")] = _BUNDLE_FILE,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="PEM private key (EC or RSA) to sign the bundle with, OPA's format."),
    ] = None,
    key_id: Annotated[
        str, typer.Option(help="The key id the signature names (OPA's keys configuration).")
    ] = "doelpoort",
) -> None:
    """Write the policy set as an OPA bundle: its revision is the policy digest."""
    from gateway.connectors.catalog import Catalog
    from gateway.policy.bundle import compile_bundle
    from gateway.policy.opa_bundle import write_bundle
    from gateway.settings import Settings

    settings = Settings.from_env()
    policies_dir = policies or settings.policies_dir
    bundle = compile_bundle(policies_dir)
    # Only a set that would start is worth shipping: the register must fit the catalog.
    bundle.register.check_against(
        Catalog.load(connectors or settings.connectors_dir, settings.var_dir)
    )
    key = signing_key.read_bytes() if signing_key is not None else None
    write_bundle(bundle, output, signing_key=key, key_id=key_id)
    signed = f", signed as {key_id}" if key is not None else ", unsigned"
    typer.echo(f"wrote {output}: revision {bundle.digest}{signed}")


@policy_app.command("keygen")
def policy_keygen(
    private_key: Annotated[
        Path, typer.Option(help="Where the private key goes (mode 0600, never overwritten).")
    ] = Path("bundle-signing.pem"),
    public_key: Annotated[
        Path, typer.Option(help="Where the public key goes (for OPA and the gateway).")
    ] = Path("bundle-signing.pub.pem"),
) -> None:
    """Make an ECDSA P-256 key pair (ES256) for signing policy bundles."""
    from gateway.policy.opa_bundle import generate_signing_key

    if private_key.exists():
        typer.echo(f"{private_key} exists already: not overwritten", err=True)
        raise typer.Exit(1)
    generate_signing_key(private_key, public_key)
    typer.echo(f"wrote {private_key} (private, 0600) and {public_key} (public)")
