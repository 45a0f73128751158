"""Charts for the DPO's statistics and annual report, as inline SVG (matplotlib, Agg)."""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["bar_chart_svg"]


def bar_chart_svg(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """A bar chart as an SVG document, for inlining in HTML and PDF alike."""
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.8))
    axes = figure.subplots()
    axes.bar(list(labels), list(values), color="#2f5d8a")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    return out.getvalue()
