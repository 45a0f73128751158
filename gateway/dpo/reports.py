"""The console's statistics and annual report: ``/dpo/statistics?year=`` (tables, charts,
flags) with its JSON twin ``/dpo/api/statistics``, and ``/dpo/reports/{year}`` (HTML),
``/dpo/reports/{year}.pdf`` and ``/dpo/api/reports/{year}``.

The statistics page is served as two routes rather than through `pages.twin`: its
HTML carries four charts (as image data URIs) that do not belong in the JSON twin,
which is exactly `Statistics.as_json()`. Both are DPO only. The console's report does
not verify the log (a whole-log verification is the Integrity page's, and the DPO's own
``doelpoort audit report --log-key``); it says so.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from audit.clock import utc_now
from audit.statistics import Statistics, statistics
from gateway.dpo.annual_report import Integrity, render_annual_report, report_context
from gateway.dpo.charts import statistics_charts
from gateway.dpo.pages import CSP, NO_STORE, html_page, read_log
from gateway.dpo.render import html_to_pdf
from gateway.peers import require_dpo, rt

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_dpo)])

Year = Annotated[
    int | None, Query(ge=1970, le=9998, description="Calendar year (UTC); this year by default.")
]
YearPath = Annotated[int, Path(ge=1970, le=9998, description="Calendar year (UTC).")]

CONSOLE_INTEGRITY = Integrity(
    None,
    "not verified by this page: see the console's Integrity page, or run "
    "`doelpoort audit report --year YEAR --log-key YOUR-COPY` offline",
)


async def _statistics(request: Request, year: int) -> Statistics:
    return await read_log(request, lambda reader: statistics(reader, year=year, now=utc_now()))


def _this_year() -> int:
    return utc_now().year


@router.get("/dpo/statistics", include_in_schema=False)
async def statistics_page(request: Request, year: Year = None) -> Response:
    """Requests and dataset decisions of a year, charts and flags."""
    year = year or _this_year()
    stats = await _statistics(request, year)
    charts = await asyncio.to_thread(statistics_charts, stats)  # matplotlib: CPU-bound
    return html_page(
        "statistics.html", request, {"s": stats.as_json(), "year": year, "charts": charts}
    )


@router.get("/dpo/api/statistics", include_in_schema=False)
async def statistics_json(request: Request, year: Year = None) -> Response:
    stats = await _statistics(request, year or _this_year())
    return JSONResponse(stats.as_json(), headers=NO_STORE)


async def _report(request: Request, year: int) -> dict[str, Any]:
    stats = await _statistics(request, year)
    origin = rt(request).settings.origin
    return await asyncio.to_thread(report_context, stats, year, CONSOLE_INTEGRITY, origin)


# The PDF's route comes first: "/dpo/reports/{year}" would take "2026.pdf" as its year.
@router.get("/dpo/reports/{year}.pdf", include_in_schema=False)
async def report_pdf(request: Request, year: YearPath) -> Response:
    """The annual report as PDF, as `doelpoort audit report` writes it."""
    context = await _report(request, year)
    pdf = await asyncio.to_thread(lambda: html_to_pdf(render_annual_report(context)))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="annual-report-{year}.pdf"',
        },
    )


@router.get("/dpo/reports/{year}", include_in_schema=False)
async def report_page(request: Request, year: YearPath) -> Response:
    """The annual report in the console (the console's stylesheet; no inline style)."""
    context = await _report(request, year)
    html = render_annual_report(context, inline_style=False)
    return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": CSP})


@router.get("/dpo/api/reports/{year}", include_in_schema=False)
async def report_json(request: Request, year: YearPath) -> Response:
    stats = await _statistics(request, year)
    integrity = CONSOLE_INTEGRITY
    return JSONResponse(
        {
            "year": year,
            "statistics": stats.as_json(),
            "integrity": {"verified": integrity.verified, "summary": integrity.summary},
        },
        headers=NO_STORE,
    )
