"""The DPO's statistics, annual report and exports (``doelpoort audit report``,
``doelpoort audit export``): offline, from the audit log opened read-only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gateway._cli_common import fail, open_reader, settings_for

VarDir = Annotated[
    Path | None, typer.Option("--var-dir", help="Runtime state directory (default: var/).")
]


def _progress(line: str) -> None:
    typer.echo(f"· {line}", err=True)


def report(
    year: Annotated[int, typer.Option("--year", help="The calendar year (UTC) to report on.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory to write annual-report-YEAR.html and .pdf into.",
            file_okay=False,
        ),
    ] = Path(),
    log_key: Annotated[
        Path | None,
        typer.Option(
            "--log-key",
            help="Your own copy of the log's public key (PEM or verifier key): the report "
            "then verifies the whole log and says so; without it, it says the log was not "
            "verified.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    var_dir: VarDir = None,
) -> None:
    """Write the DPO's annual report for a year as HTML and PDF, with charts."""
    from audit.clock import utc_now
    from gateway.dpo.annual_report import write_annual_report

    if not 1970 <= year <= 9998:
        raise fail("--year must be a year between 1970 and 9998", 2)
    settings = settings_for(var_dir)
    with open_reader(settings) as reader:
        html_path, pdf_path = write_annual_report(
            reader,
            year,
            out,
            now=utc_now(),
            origin=settings.origin,
            log_key=log_key,
            progress=_progress,
        )
    typer.echo(f"wrote {html_path} and {pdf_path}")


def register(audit_app: typer.Typer) -> None:
    """Add this module's commands to the ``audit`` group."""
    audit_app.command("report")(report)


def _is_terminal() -> bool:
    return sys.stderr.isatty()
