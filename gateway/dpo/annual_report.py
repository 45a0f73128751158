"""The DPO's annual report: the year's statistics, charts, flags, policy versions and the
log's integrity, as HTML and PDF (``doelpoort audit report``, ``/dpo/reports/{year}``).

Made offline from the audit log read-only: statistics (`audit.statistics`), charts
(`gateway.dpo.charts`), and, given the DPO's own copy of the log key, a full
verification (`audit.verify.verify_log`); without a key the report says the log was not
verified rather than trust the gateway's own copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.reader import AuditReader
from audit.statistics import Statistics, statistics
from gateway.dpo.charts import statistics_charts
from gateway.dpo.render import html_to_pdf, render_html

__all__ = ["Integrity", "check_integrity", "render_annual_report", "write_annual_report"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Integrity:
    """What the report says of the log's integrity: True intact, False not, None not
    checked; ``summary`` in words."""

    verified: bool | None
    summary: str


NOT_VERIFIED = Integrity(
    None,
    "not verified: no copy of the log's public key was given, and the gateway's own copy "
    "proves nothing against someone who can change the log there",
)


def check_integrity(reader: AuditReader, log_key: Path | None, origin: str) -> Integrity:
    """Verify the whole log with the DPO's copy of the public key (PEM or verifier key);
    `NOT_VERIFIED` without one."""
    if log_key is None:
        return NOT_VERIFIED
    from audit.errors import AuditVerificationError, CheckpointError, ConfigurationError
    from audit.keys import read_public_key_file
    from audit.verify import verify_log

    try:
        public_key = read_public_key_file(log_key, origin)
        report = verify_log(reader, public_key, origin=origin)
    except ConfigurationError as exc:
        return Integrity(None, f"not verified: {exc}")
    except (AuditVerificationError, CheckpointError) as exc:
        return Integrity(False, f"NOT intact: {exc}")
    return Integrity(
        True,
        f"intact: {report.entries} entries under {report.checkpoints} signed "
        f"checkpoint{'' if report.checkpoints == 1 else 's'}, "
        f"verified with the DPO's copy of the log key ({log_key.name})",
    )


def report_context(
    stats: Statistics, year: int, integrity: Integrity, origin: str | None
) -> dict[str, Any]:
    """What the template shows."""
    return {
        "s": stats.as_json(),
        "year": year,
        "integrity": integrity,
        "origin": origin,
        "charts": statistics_charts(stats),
    }


def render_annual_report(context: dict[str, Any], *, inline_style: bool = True) -> str:
    """The report as HTML: standalone (its own styles, for the file and the PDF), or for
    the console (the console's stylesheet, as the Content-Security-Policy requires)."""
    return render_html("annual_report.html", inline_style=inline_style, **context)


def write_annual_report(
    reader: AuditReader,
    year: int,
    out_dir: Path,
    *,
    now: datetime,
    origin: str,
    log_key: Path | None = None,
    progress: Progress = lambda _line: None,
) -> tuple[Path, Path]:
    """Write ``annual-report-<year>.html`` and ``.pdf`` into ``out_dir``; their paths."""
    progress(f"counting requests and dataset decisions of {year} …")
    stats = statistics(reader, year=year, now=now)
    progress(
        f"{stats.requests.requests} requests, {stats.decisions.decisions} dataset decisions, "
        f"{len(stats.flags)} flags"
    )
    if log_key is not None:
        progress(f"verifying the whole log ({reader.count()} entries) with {log_key} …")
    integrity = check_integrity(reader, log_key, origin)
    progress(f"integrity: {integrity.summary}")
    progress("drawing the charts …")
    html = render_annual_report(report_context(stats, year, integrity, origin))
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"annual-report-{year}.html"
    pdf_path = out_dir / f"annual-report-{year}.pdf"
    html_path.write_text(html, encoding="utf-8")
    progress("rendering the PDF …")
    pdf_path.write_bytes(html_to_pdf(html))
    return html_path, pdf_path
