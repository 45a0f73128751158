"""The DPO's statistics, annual report and exports (``doelpoort audit report``,
``doelpoort audit export``): offline, from the audit log opened read-only."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gateway._cli_common import VarDir, fail, open_reader, settings_for

T = TypeVar("T")


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


Filter = Annotated[str | None, typer.Option(show_default=False)]
PROGRESS_EVERY = 50_000
"""Entries between two progress lines of an export written to a file on a terminal."""


def export(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl (entries as logged), csv (flat columns) or logboek (Logboek "
            "Dataverwerkingen 1.0.0 records).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE (default: stdout).", dir_okay=False),
    ] = None,
    requester: Filter = None,
    provider: Filter = None,
    dataset: Filter = None,
    purpose: Filter = None,
    decision: Annotated[
        str | None,
        typer.Option(help="allow, deny, error, refused, policy-change or reidentification."),
    ] = None,
    refusal: Annotated[
        str | None, typer.Option(help='"policy" (deny), "error", or a refusal problem code.')
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time on (RFC 3339, or a date), inclusive.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time (RFC 3339, or a date), exclusive.")
    ] = None,
    case_ref: Annotated[str | None, typer.Option("--case-ref")] = None,
    policy_digest: Annotated[str | None, typer.Option("--policy-digest")] = None,
    disclosure_id: Annotated[str | None, typer.Option("--disclosure-id")] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="decision, refusal, refusal-summary, policy-change or reidentification."),
    ] = None,
    var_dir: VarDir = None,
) -> None:
    """Export a filtered selection of the audit log, streamed in constant memory."""
    from gateway.dpo.exports import exporter, selection
    from gateway.errors import InvalidRequest

    if fmt not in ("jsonl", "csv", "logboek"):
        raise fail("--format must be jsonl, csv or logboek", 2)
    try:
        flt = selection(
            requester, provider, dataset, purpose, decision, refusal, since, until,
            case_ref, policy_digest, disclosure_id, kind,
        )  # fmt: skip
    except InvalidRequest as exc:
        raise fail(exc.detail, 2) from exc
    settings = settings_for(var_dir)
    show_progress = output is not None and sys.stderr.isatty()
    with open_reader(settings) as reader:
        from audit.query import iter_selection

        entries = _counted(iter_selection(reader, flt), show_progress)
        chunks = exporter(fmt, settings.origin)(entries)
        if output is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        with output.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
    typer.echo(f"wrote {output} ({fmt})", err=True)


def _counted(entries: Iterable[T], show: bool) -> Iterator[T]:
    """``entries``, with a progress line on stderr every PROGRESS_EVERY when ``show``."""
    started = time.monotonic()
    n = 0
    for n, entry in enumerate(entries, start=1):
        if show and n % PROGRESS_EVERY == 0:
            rate = n / max(time.monotonic() - started, 1e-9)
            typer.echo(f"· {n:,} entries exported ({rate:,.0f} entries/s)", err=True)
        yield entry
    if show:
        typer.echo(f"· {n:,} entries exported in all", err=True)


def register(audit_app: typer.Typer) -> None:
    """Add this module's commands to the ``audit`` group."""
    audit_app.command("report")(report)
    audit_app.command("export")(export)
