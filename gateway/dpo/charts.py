"""Charts for the DPO's statistics and annual report, as SVG (matplotlib, Agg).

Pages and reports embed a chart as ``<img src="data:image/svg+xml;base64,…">``
(`svg_data_uri`): matplotlib's SVG styles its shapes with ``style`` attributes and a
``<style>`` element, which the console's Content-Security-Policy (``style-src 'self'``)
would block in an inline ``<svg>``, while an image is its own document and the policy
allows ``img-src data:``. WeasyPrint draws the same images into the PDF.
The SVG is made reproducible (no date, fixed element ids), so one set of statistics
gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from audit.statistics import Statistics

__all__ = [
    "Chart",
    "bar_chart_svg",
    "grouped_bar_svg",
    "stacked_bar_svg",
    "statistics_charts",
    "svg_data_uri",
]

_COLOURS = (
    "#2f5d8a",
    "#e08a00",
    "#1d6b2f",
    "#9b1c1c",
    "#6b4c9a",
    "#4a8f9e",
    "#8a6d3b",
    "#c2577a",
    "#5c5c5c",
    "#9aa83a",
    "#3b6bd6",
    "#d65f3b",
)


def _figure() -> Figure:
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    matplotlib.rcParams["svg.hashsalt"] = "doelpoort"  # fixed element ids
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (smaller, searchable)
    from matplotlib.figure import Figure

    return Figure(figsize=(7.2, 3.0))


def _svg(figure: Figure) -> str:
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def bar_chart_svg(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """A bar chart as an SVG document."""
    figure = _figure()
    axes = figure.subplots()
    axes.bar(list(labels), list(values), color=_COLOURS[0])
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _svg(figure)


def stacked_bar_svg(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str
) -> str:
    """Bars of ``labels``, each stacked from ``series`` (name → one value per label)."""
    figure = _figure()
    axes = figure.subplots()
    bottom = [0.0] * len(labels)
    for i, (name, values) in enumerate(series.items()):
        axes.bar(
            list(labels), list(values), bottom=bottom, label=name, color=_COLOURS[i % len(_COLOURS)]
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _finish(axes, title, ylabel, legend=bool(series))
    return _svg(figure)


def grouped_bar_svg(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str
) -> str:
    """Bars of ``labels`` side by side, one per series (name → one value per label)."""
    figure = _figure()
    axes = figure.subplots()
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [x + i * width for x in range(len(labels))]
        axes.bar(positions, list(values), width=width, label=name, color=_COLOURS[i])
    axes.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))])
    axes.set_xticklabels(list(labels))
    _finish(axes, title, ylabel, legend=bool(series))
    return _svg(figure)


def _finish(axes: object, title: str, ylabel: str, *, legend: bool) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    if legend:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def svg_data_uri(svg: str) -> str:
    """``data:image/svg+xml;base64,…`` for an ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


class Chart(dict[str, str]):
    """One chart for a template: ``title``, ``alt`` (its numbers in words, for people who
    cannot see it) and ``src`` (the data URI)."""


def statistics_charts(stats: Statistics) -> list[Chart]:
    """The four charts of the statistics page and the annual report: requests per month
    by requester, refusal rates, fields in clear versus minimised, re-identifications
    per month."""
    months = stats.months or ["(none)"]
    requesters = sorted(stats.requests_by_requester_month)
    per_month = {
        requester: [float(stats.requests_by_requester_month[requester].get(m, 0)) for m in months]
        for requester in requesters
    }
    rows = stats.by_requester
    rates = {
        "requests refused (%)": [100 * row.requests.refusal_rate for row in rows],
        "dataset decisions denied (%)": [100 * row.decisions.denial_rate for row in rows],
    }
    purposes = sorted(stats.fields.by_purpose)
    forms = {
        form: [float(stats.fields.by_purpose[p][form]) for p in purposes]
        for form in ("clear", "minimised")
    }
    reid_months = stats.months or sorted(stats.reidentifications.by_month) or ["(none)"]
    reids = [float(stats.reidentifications.by_month.get(m, 0)) for m in reid_months]
    return [
        _chart(
            "Requests per month, by requester",
            stacked_bar_svg(months, per_month, "Requests per month, by requester", "requests"),
            "; ".join(
                f"{m}: {sum(int(per_month[r][i]) for r in requesters)} requests"
                for i, m in enumerate(months)
            ),
        ),
        _chart(
            "Refusal rates, by requester",
            grouped_bar_svg(
                [row.key for row in rows], rates, "Refusal rates, by requester", "per cent"
            ),
            "; ".join(
                f"{row.key}: {row.requests.refusal_rate:.0%} of requests refused, "
                f"{row.decisions.denial_rate:.0%} of dataset decisions denied"
                for row in rows
            ),
        ),
        _chart(
            "Fields released in clear and minimised, by purpose",
            grouped_bar_svg(
                purposes, forms, "Fields released: in clear and minimised", "fields released"
            ),
            "; ".join(
                f"{p}: {int(forms['clear'][i])} in clear, {int(forms['minimised'][i])} minimised"
                for i, p in enumerate(purposes)
            ),
        ),
        _chart(
            "Re-identifications per month",
            bar_chart_svg(reid_months, reids, "Re-identifications per month"),
            f"{stats.reidentifications.total} re-identifications in all",
        ),
    ]


def _chart(title: str, svg: str, alt: str) -> Chart:
    return Chart(title=title, alt=alt or "no data", src=svg_data_uri(svg))
