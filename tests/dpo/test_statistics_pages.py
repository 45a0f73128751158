"""The console's statistics and annual report pages, over real mTLS, on the log of real
disclosures: numbers that follow the gateway's own decisions, charts as images the
Content-Security-Policy allows, a PDF, and 403 for a partner on every route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from audit.clock import utc_now
from tests.gateway_support import Deployment

YEAR = utc_now().year


def disclosure(purpose: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": subject,
    }


def stats(dpo: httpx.Client) -> dict[str, Any]:
    response = dpo.get("/dpo/api/statistics", params={"year": YEAR})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_statistics_follow_the_gateways_decisions(gateway: Deployment) -> None:
    with gateway.dpo_client() as dpo:
        before = stats(dpo)
        released = gateway.disclose(
            "politie", disclosure("ct-assessment", gateway.subjects["ct_subject"])
        )
        assert released.status_code == 200, released.text
        datasets = len(released.json()["disclosure"]["results"])
        refused = gateway.disclose(
            "voorbeeldbank", disclosure("ct-assessment", gateway.subjects["bank_customer"])
        )
        assert refused.status_code == 403
        after = stats(dpo)

    def delta(*path: str) -> int:
        old: Any = before
        new: Any = after
        for key in path:
            old, new = old[key], new[key]
        return int(new) - int(old)

    assert delta("requests", "requests") == 2
    assert delta("requests", "refused_by_policy") == 1
    assert delta("decisions", "decisions") >= datasets + 1
    assert delta("decisions", "allowed") >= 1
    rows = {row["key"]: row for row in after["by_requester"]}
    assert rows["voorbeeldbank"]["requests"]["refused_by_policy"] >= 1
    assert after["year"] == YEAR
    assert after["since"] == f"{YEAR}-01-01T00:00:00Z"


def test_the_statistics_page_shows_tables_charts_and_flags(gateway: Deployment) -> None:
    with gateway.dpo_client() as dpo:
        response = dpo.get("/dpo/statistics", params={"year": YEAR})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "style-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert f"<h1>Statistics {YEAR}</h1>" in page
    assert "Flags for attention" in page
    assert page.count('<img src="data:image/svg+xml;base64,') == 4
    assert "<svg" not in page  # no inline SVG: its style attributes would be blocked
    assert "<style" not in page


def test_the_annual_report_in_the_console_and_as_pdf(gateway: Deployment) -> None:
    with gateway.dpo_client() as dpo:
        page = dpo.get(f"/dpo/reports/{YEAR}")
        pdf = dpo.get(f"/dpo/reports/{YEAR}.pdf")
        data = dpo.get(f"/dpo/api/reports/{YEAR}")
    assert page.status_code == 200, page.text
    assert f"Annual report {YEAR} of the data protection officer" in page.text
    assert "<style" not in page.text  # the console's stylesheet, as the CSP requires
    assert '<span class="unknown" id="integrity">not verified</span>' in page.text
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="annual-report-{YEAR}.pdf"'
    assert pdf.content.startswith(b"%PDF-")
    assert data.json()["integrity"]["verified"] is None
    assert data.json()["statistics"]["year"] == YEAR


@pytest.mark.parametrize(
    "path",
    [
        "/dpo/statistics",
        "/dpo/api/statistics",
        f"/dpo/reports/{YEAR}",
        f"/dpo/reports/{YEAR}.pdf",
        f"/dpo/api/reports/{YEAR}",
    ],
)
def test_a_partner_gets_403_on_every_statistics_route(gateway: Deployment, path: str) -> None:
    with gateway.client("politie") as partner:
        response = partner.get(path)
    assert response.status_code == 403
    assert response.json()["type"].endswith("dpo-only")


@pytest.mark.parametrize("query", ["year=1800", "year=twenty"])
def test_a_bad_year_is_a_4xx(gateway: Deployment, query: str) -> None:
    with gateway.dpo_client() as dpo:
        response = dpo.get(f"/dpo/api/statistics?{query}")
    assert response.status_code == 422
