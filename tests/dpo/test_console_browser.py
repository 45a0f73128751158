"""The DPO console in a real browser: Debian's Chromium, driven by Playwright, holding the
DPO's client certificate, against a running gateway whose log was seeded through its
partner API (issue 14, point 1).

It clicks through as a DPO would: the overview, the decision list and its filters, the
next page, a request, an entry with its explanation, the policy set that decided it, and
the integrity page's "verify now". Each main page is saved to build/screenshots/<page>.png
on every run; the assertions are on what the pages say, never on pixels. A browser with a
partner's certificate gets 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.routing import iter_route_contexts
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.dpo.console_support import (
    CHROMIUM_ARGS,
    Seeded,
    require_chromium,
    screenshot_path,
)
from tests.gateway_support import Deployment

pytestmark = pytest.mark.browser

# The other parts' console pages that need no input, screenshotted when this build has them.
OTHER_PAGES = {
    "statistics": "/dpo/statistics",
    "annual-report": "/dpo/reports/{year}",
    "exports": "/dpo/exports",
}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = require_chromium()
    launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


def context_as(browser: Browser, deployment: Deployment, cert: str, key: str) -> BrowserContext:
    # The gateway's server certificate comes from the deployment's own development CA,
    # which this browser profile does not trust; the client certificate is what is tested.
    return browser.new_context(
        ignore_https_errors=True,
        client_certificates=[
            {"origin": deployment.base_url, "certPath": cert, "keyPath": key},
        ],
        viewport={"width": 1280, "height": 900},
    )


@pytest.fixture
def dpo_page(browser: Browser, seeded_console: tuple[Deployment, Seeded]) -> Iterator[Page]:
    deployment, _seeded = seeded_console
    paths = deployment.paths
    context = context_as(browser, deployment, str(paths.dpo_cert("dpo")), str(paths.dpo_key("dpo")))
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


def visit(page: Page, url: str) -> int:
    """Open ``url``; the status of its answer."""
    response = page.goto(url)
    assert response is not None
    return response.status


def snap(page: Page, name: str) -> None:
    page.screenshot(path=screenshot_path(name), full_page=True)


def test_a_dpo_clicks_through_the_console(
    dpo_page: Page, seeded_console: tuple[Deployment, Seeded]
) -> None:
    deployment, seeded = seeded_console
    page = dpo_page
    base = deployment.base_url
    # What the browser refused (CSP: no inline script or style, nothing from elsewhere).
    complaints: list[str] = []
    page.on("console", lambda message: complaints.append(message.text))
    page.on("pageerror", lambda error: complaints.append(str(error)))

    # The overview: the log, its checkpoint, its integrity, requests vs dataset decisions.
    assert visit(page, f"{base}/dpo/") == 200
    expect(page.locator("h1")).to_have_text("The audit log at a glance")
    counts = page.locator("table.counts")
    expect(counts).to_contain_text("Requests")
    expect(counts).to_contain_text("Dataset decisions")
    expect(page.locator("main")).to_contain_text("Latest signed checkpoint")
    snap(page, "overview")

    # The decision list, grouped by request, then filtered to the denials.
    page.get_by_role("link", name="Decisions, grouped by request").click()
    expect(page.locator("h1")).to_have_text("Decisions, grouped by request")
    expect(page.locator("#summary")).to_contain_text("25 requests")
    snap(page, "requests")
    page.select_option("select[name=decision]", "deny")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"decision=deny"))
    rows = page.locator("table.requests tr.request")
    assert rows.count() > 0
    for index in range(rows.count()):
        expect(rows.nth(index).locator(".decision.deny").first).to_be_visible()
    summary = page.locator("#summary").inner_text()
    requests, decisions = map(int, re.findall(r"(\d+) (?:requests|dataset decisions)", summary))
    assert decisions > requests, "the denials of a request are one request, several entries"
    snap(page, "requests-denied")

    # Paging: the unfiltered list has more requests than one page holds.
    page.goto(f"{base}/dpo/requests")
    first_page = page.locator("table.requests tr.request td").first.inner_text()
    page.get_by_role("link", name="Older requests →").click()
    expect(page).to_have_url(re.compile(r"before=\d+"))
    expect(page.locator("table.requests tr.request").first).to_be_visible()
    assert page.locator("table.requests tr.request td").first.inner_text() <= first_page

    # A request of a partly denied disclosure (IND asked for FIU data it is not granted).
    page.goto(f"{base}/dpo/requests?requester=ind&decision=deny")
    page.locator("table.requests tr.request").first.get_by_role("link", name="request").click()
    expect(page.locator("h1")).to_contain_text("Request urn:uuid:")
    detail = page.locator("main")
    expect(detail).to_contain_text("ind")
    expect(detail).to_contain_text("fiu/transactions")
    expect(detail.locator(".decision.allow").first).to_be_visible()
    expect(detail.locator(".decision.deny").first).to_be_visible()
    snap(page, "request")

    # An allowed entry of it: its input, decision, explanation, evidence and checkpoint.
    page.locator("tr", has=page.locator(".decision.allow")).first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("Entry")
    explanation = page.locator("#explanation")
    expect(explanation).to_contain_text("reproduces")
    expect(explanation).to_contain_text("Decided by")
    expect(explanation.locator("table.explanation")).to_contain_text("register.yaml")
    main = page.locator("main")
    expect(main).to_contain_text("Leaf hash")
    expect(main).to_contain_text("records_sha256")
    expect(main).to_contain_text("The checkpoint covering it")
    expect(page.locator("pre.policy-input")).to_contain_text('"purpose"')
    snap(page, "entry")

    # The policy set that made the decision, from the log's archive.
    page.locator("a[href^='/dpo/policy-sets/']").first.click()
    expect(page.locator("h1")).to_contain_text("Policy set sha256:")
    expect(page.locator("main")).to_contain_text("register.yaml")
    expect(page.locator("section.policy-file").first).to_be_visible()
    snap(page, "policy-set")

    # Integrity: verify now, and the page comes back with the result.
    page.get_by_role("link", name="Integrity", exact=True).click()
    expect(page.locator("h1")).to_have_text("Integrity of the audit log")
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("p.ok")).to_contain_text("Intact", timeout=60_000)
    expect(page.locator("p.ok")).to_contain_text(f"{deployment.runtime.audit.size} entries")
    expect(page.locator("main")).to_contain_text("dpo")  # who asked: the DPO, not start-up
    expect(page.locator("table.cosignatures")).to_contain_text(seeded.witness)
    snap(page, "integrity")
    assert seeded.disclosures > 0
    assert complaints == []


def served_paths(deployment: Deployment) -> set[str]:
    return {route.path or "" for route in iter_route_contexts(deployment.app.routes)}


def test_subject_access_and_pseudonym_search_in_the_browser(
    dpo_page: Page, seeded_console: tuple[Deployment, Seeded]
) -> None:
    deployment, seeded = seeded_console
    served = served_paths(deployment)
    if "/dpo/subjects" not in served or "/dpo/search" not in served:
        pytest.fail("this build has no subject access pages: the console would link to 404s")
    page = dpo_page
    base = deployment.base_url
    # Subject access: the identifier goes in the form's body, never the address.
    bsn = deployment.subjects["ct_subject"]["bsn"]
    assert visit(page, f"{base}/dpo/subjects") == 200
    page.fill("input[name=bsn]", bsn)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("main")).to_contain_text("politie")
    expect(page.locator("main")).to_contain_text("ct-assessment")
    assert bsn not in page.url
    snap(page, "subject-access")
    # Pseudonym search: which decisions released a pseudonym, without opening escrows.
    assert seeded.pseudonyms, "the seeded disclosures released pseudonyms"
    assert visit(page, f"{base}/dpo/search") == 200
    page.fill("input[name=pseudonym]", seeded.pseudonyms[0])
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.search-results tbody tr").first).to_be_visible()
    assert seeded.pseudonyms[0] not in page.url
    snap(page, "pseudonym-search")


def test_the_other_parts_pages_open_in_the_browser(
    dpo_page: Page, seeded_console: tuple[Deployment, Seeded]
) -> None:
    deployment, _seeded = seeded_console
    served = served_paths(deployment)
    year = datetime.now(UTC).year  # the seeded log's year
    for name, path in OTHER_PAGES.items():
        if path not in served:
            continue  # that part of the console is not in this build
        url = path.format(year=year)
        assert visit(dpo_page, f"{deployment.base_url}{url}") == 200, url
        expect(dpo_page.locator("h1").first).to_be_visible()
        snap(dpo_page, name)


def test_a_bad_filter_shows_an_error_page(
    dpo_page: Page, seeded_console: tuple[Deployment, Seeded]
) -> None:
    deployment, _seeded = seeded_console
    assert visit(dpo_page, f"{deployment.base_url}/dpo/requests?since=yesterday") == 422
    expect(dpo_page.locator("[role=alert]")).to_contain_text("since")
    expect(dpo_page.locator("header.top")).to_be_visible()  # still the console, with its nav


def test_a_browser_with_a_partner_certificate_gets_403(
    browser: Browser, gateway: Deployment
) -> None:
    # The shared gateway, not the seeded one: each 403 is one of the partner's refusals
    # in the log, which would change what the seeded log's tests count.
    deployment = gateway
    paths = deployment.paths
    context = context_as(
        browser,
        deployment,
        str(paths.partner_cert("politie")),
        str(paths.partner_key("politie")),
    )
    try:
        page = context.new_page()
        for path in ("/dpo/", "/dpo/requests", "/dpo/integrity", "/dpo/static/console.css"):
            assert visit(page, f"{deployment.base_url}{path}") == 403, path
            assert "dpo-only" in page.content(), path
            assert "Decisions, grouped by request" not in page.content()
    finally:
        context.close()
