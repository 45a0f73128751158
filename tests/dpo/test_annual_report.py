"""``doelpoort audit report --year Y``: the annual report as HTML and PDF, with the numbers
of the log, its flags and its integrity status."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway._cli import app
from gateway.keys import create_log_key, load_log_key
from gateway.settings import Settings
from tests.audit.audit_support import attack
from tests.audit.log_builder import LogBuilder

runner = CliRunner()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A var dir whose log holds a year of synthetic requests, and some of the next."""
    settings = Settings.from_env().with_var_dir(tmp_path / "var")
    create_log_key(settings.keys_dir)
    log = LogBuilder()
    for month in range(1, 13):
        for day in (3, 10, 17):
            log.request(f"2026-{month:02d}-{day:02d}T10:00:00Z", requester="politie")
    log.request(
        "2026-05-05T10:00:00Z",
        requester="nctv",
        decisions=(("ind", "ind/residence", "allow"), ("fiu", "fiu/transactions", "deny")),
        field_ops={"nationality": "keep", "bsn": "pseudonymise", "address": "drop"},
    )
    for _ in range(3):
        log.refusal("2026-06-06T23:00:00Z", "dji", "unknown-dataset")
    log.reidentification("2026-07-01T10:00:00Z")
    log.request("2027-01-05T10:00:00Z", requester="om")  # another year
    log.write(settings.audit_db_path, load_log_key(settings.keys_dir), settings.origin)
    return settings


def report(settings: Settings, out: Path, *args: str) -> tuple[int, str, str]:
    var_dir = str(settings.var_dir)
    result = runner.invoke(
        app,
        ["audit", "report", "--year", "2026", "--out", str(out), *args, "--var-dir", var_dir],
    )
    return result.exit_code, result.stdout, result.stderr


def pdf_pages_and_outline(data: bytes) -> tuple[int, list[bytes]]:
    """The page count and the bookmark titles of a PDF, read from its (deflated) objects."""
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    texts = [data]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            texts.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue  # not a deflated stream (an image, a font)
    counts = [
        int(n)
        for text in texts
        for n in re.findall(rb"/Type /Pages/Kids \[[^]]*\]/Count (\d+)", text)
    ]
    titles = [t for text in texts for t in re.findall(rb"/Title \(([^)]*)\)/Dest", text)]
    assert len(counts) == 1, counts
    return counts[0], titles


def test_the_report_holds_the_years_numbers_and_a_real_pdf(
    settings: Settings, tmp_path: Path
) -> None:
    pem = tmp_path / "dpo-copy.pem"
    pem.write_bytes((settings.keys_dir / "audit-log.pub").read_bytes())
    code, out, err = report(settings, tmp_path / "out", "--log-key", str(pem))
    assert code == 0, err
    html_path = tmp_path / "out" / "annual-report-2026.html"
    pdf_path = tmp_path / "out" / "annual-report-2026.pdf"
    assert f"wrote {html_path} and {pdf_path}" in out
    assert "· counting requests and dataset decisions of 2026" in err  # progress
    html = html_path.read_text()
    # 36 + 1 disclosure requests and 3 refused ones; 38 dataset decisions.
    assert '<td class="num" id="total-requests">40</td>' in html
    assert '<td class="num" id="total-decisions">38</td>' in html
    assert '<td class="num" id="request-refusal-rate">7.5%</td>' in html
    assert '<td class="num" id="fields-clear">37</td>' in html  # nationality kept 37 times
    assert '<span id="reidentifications">1</span>' in html
    assert '<span class="ok" id="integrity">verified</span>' in html
    assert "intact: 43 entries" in html  # the whole log, the next year's entry included
    assert "<strong>probing</strong> · dji" in html
    # dji came at night three times: under the minimum of five.
    assert "<strong>outside-office-hours</strong> · dji" not in html
    assert "<strong>outside-office-hours</strong> · politie" in html  # weekends
    assert html.count('<img src="data:image/svg+xml;base64,') == 4
    pages, outline = pdf_pages_and_outline(pdf_path.read_bytes())
    assert pages >= 3
    assert b"6. Flags for attention" in outline
    assert b"8. Integrity of the audit log" in outline


def test_without_a_key_the_report_says_the_log_was_not_verified(
    settings: Settings, tmp_path: Path
) -> None:
    code, _, err = report(settings, tmp_path)
    assert code == 0, err
    html = (tmp_path / "annual-report-2026.html").read_text()
    assert '<span class="unknown" id="integrity">not verified</span>' in html


def test_a_changed_log_is_reported_not_intact(settings: Settings, tmp_path: Path) -> None:
    pem = tmp_path / "dpo-copy.pem"
    pem.write_bytes((settings.keys_dir / "audit-log.pub").read_bytes())
    attack(
        settings.audit_db_path,
        "UPDATE entries SET body = replace(body, 'politie', 'poIitie') WHERE seq = 5",
    )
    code, _, err = report(settings, tmp_path, "--log-key", str(pem))
    assert code == 0, err
    html = (tmp_path / "annual-report-2026.html").read_text()
    assert '<span class="bad" id="integrity">NOT intact</span>' in html
    assert "5" in html.split('id="integrity">NOT intact</span>')[1].split("</p>")[0]


def test_a_year_out_of_range_is_refused(settings: Settings, tmp_path: Path) -> None:
    code, _, err = report(settings, tmp_path, "--year", "99999")
    assert code == 2
    assert "--year" in err
