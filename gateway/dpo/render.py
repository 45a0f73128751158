"""Server-side rendering for the DPO: one Jinja2 environment over ``templates/``, and
HTML to PDF with WeasyPrint.

Autoescaping is on for every template: entries hold names and digests, but a reason or a
case_ref is text someone typed, and it must never become markup.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

__all__ = ["environment", "html_to_pdf", "render_html"]


@cache
def environment() -> jinja2.Environment:
    """The one template environment (templates are read once and cached)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.dpo", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return environment().get_template(template).render(**context)


def html_to_pdf(html: str) -> bytes:
    """A PDF of ``html`` (WeasyPrint). Nothing is fetched from the network: the templates
    inline their styles and charts."""
    from weasyprint import HTML  # imported late: it loads Pango, which start-up needs not

    pdf: bytes = HTML(string=html, base_url=None).write_pdf()
    return pdf
