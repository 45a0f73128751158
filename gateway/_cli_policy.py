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


# --- doelpoort policy check -------------------------------------------------------------------


@policy_app.command("check")
def check(
    policies: Annotated[
        Path | None,
        typer.Option("--policies", help="Policy directory (default: the configured one)."),
    ] = None,
    connectors: Annotated[
        Path | None,
        typer.Option("--connectors", help="Connector catalog directory (default: configured)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a policy set as `serve` does before it starts: register, catalog, syntax,
    undefined names and paths, unknown built-ins, rules that never apply, the probe.

    Exit 0 when clean, 1 on any finding.
    """
    import asyncio
    import json

    from gateway.connectors.catalog import Catalog
    from gateway.policy.check import check_policy_set
    from gateway.settings import Settings

    settings = Settings.from_env()
    policies_dir = policies or settings.policies_dir
    if not policies_dir.is_dir():
        typer.echo(f"error: {policies_dir}: no such policy directory", err=True)
        raise typer.Exit(2)
    catalog = Catalog.load(connectors or settings.connectors_dir, settings.var_dir)
    try:
        findings = check_policy_set(policies_dir, catalog)
    finally:
        asyncio.run(catalog.aclose())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "policies": str(policies_dir),
                    "clean": not findings,
                    "findings": [
                        {
                            "path": f.path,
                            "line": f.line,
                            "column": f.column,
                            "code": f.code,
                            "message": f.message,
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        for finding in findings:
            typer.echo(f"{policies_dir / finding.path}{str(finding)[len(finding.path) :]}")
        count = len(findings)
        typer.echo(
            f"{policies_dir}: "
            + ("clean" if not findings else f"{count} finding{'s' if count != 1 else ''}")
        )
    if findings:
        raise typer.Exit(1)
