"""The DPO's statistics: requests and dataset decisions kept apart, field forms,
re-identifications, policy versions, and each flag shown to fire and not to fire."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.reader import AuditReader
from audit.statistics import (
    FISHING_MIN_REQUESTS,
    OFF_HOURS_MIN_REQUESTS,
    PROBING_MIN_REQUESTS,
    VOLUME_JUMP_MIN_REQUESTS,
    Flag,
    Statistics,
    statistics,
)
from tests.audit.log_builder import DIGEST_A, DIGEST_B, LogBuilder

NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
# A Wednesday, 12:00 UTC: 13:00 in Amsterdam, inside office hours.
WEEKDAY_NOON = "2026-03-04T12:00:00Z"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def stats_of(
    log: LogBuilder, tmp_path: Path, key: Ed25519PrivateKey, **period: object
) -> Statistics:
    path = log.write(tmp_path / "audit.sqlite3", key)
    with AuditReader(path) as reader:
        return statistics(reader, now=NOW, **period)  # type: ignore[arg-type]


def flags(result: Statistics, kind: str) -> dict[str, Flag]:
    return {flag.requester: flag for flag in result.flags if flag.kind == kind}


def test_requests_and_dataset_decisions_are_counted_apart(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    # One request, three dataset decisions: released, partly refused.
    log.request(
        WEEKDAY_NOON,
        decisions=(
            ("ind", "ind/residence", "allow"),
            ("kmar", "kmar/border-crossings", "allow"),
            ("politie", "politie/incidents", "deny"),
        ),
    )
    # One request refused by the policy: two denied decisions.
    log.request(
        WEEKDAY_NOON,
        requester="nctv",
        purpose="vertrek",
        decisions=(("ind", "ind/residence", "deny"), ("dji", "dji/detention", "deny")),
    )
    # Refused before any decision: one entry of its own, and four in a summary.
    log.refusal(WEEKDAY_NOON, "nctv")
    log.summary(WEEKDAY_NOON, "nctv", {"invalid-request": 3, "payload-too-large": 1})
    result = stats_of(log, tmp_path, key)

    assert result.requests.requests == 7
    assert result.requests.released == 1
    assert result.requests.partly_refused == 1
    assert result.requests.refused_by_policy == 1
    assert result.requests.refused_before_decision == 5
    assert result.requests.refusal_rate == pytest.approx(6 / 7)
    assert result.decisions.decisions == 5
    assert (result.decisions.allowed, result.decisions.denied) == (2, 3)
    assert result.decisions.denial_rate == pytest.approx(3 / 5)
    by_requester = {row.key: row for row in result.by_requester}
    assert by_requester["nctv"].requests.requests == 6
    assert by_requester["nctv"].decisions.decisions == 2
    by_provider = {row.key: row for row in result.by_provider}
    assert by_provider["ind"].requests.requests == 2  # two requests asked IND
    assert by_provider["ind"].requests.refused_by_policy == 1
    assert by_provider["ind"].decisions.decisions == 2
    assert by_provider["politie"].decisions.denied == 1
    assert result.refusals_by_problem == {
        "invalid-request": 4,
        "payload-too-large": 1,
    }
    assert [row.key for row in result.by_month] == ["2026-03"]
    assert result.legal_bases == {
        "ct-assessment": ["Convenant CT Infobox (synthetic test)"],
        "vertrek": ["Convenant CT Infobox (synthetic test)"],
    }
    assert result.requests_by_requester_month == {
        "nctv": {"2026-03": 6},
        "politie": {"2026-03": 1},
    }


def test_fields_in_clear_minimised_and_dropped_come_from_allowed_decisions(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    ops = {
        "bsn": "pseudonymise",
        "nationality": "keep",
        "address": "drop",
        "dob": "generalise:year",
    }
    log.request(WEEKDAY_NOON, field_ops=ops)
    log.request(WEEKDAY_NOON, purpose="vertrek", field_ops={"lawful_residence": "keep"})
    log.request(WEEKDAY_NOON, decisions=(("ind", "ind/residence", "deny"),))
    result = stats_of(log, tmp_path, key)

    assert (result.fields.clear, result.fields.minimised, result.fields.dropped) == (2, 2, 1)
    assert result.fields.by_op == {"drop": 1, "generalise:year": 1, "keep": 2, "pseudonymise": 1}
    assert result.fields.by_purpose["vertrek"] == {"clear": 1, "minimised": 0, "dropped": 0}


def test_reidentifications_policy_versions_and_the_year(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    log.request("2025-12-30T10:00:00Z", digest=DIGEST_A)  # before the year
    log.request("2026-02-02T10:00:00Z", digest=DIGEST_A)
    log.request("2026-06-02T10:00:00Z", digest=DIGEST_B)
    log.request("2026-07-02T10:00:00Z", digest=DIGEST_B)
    log.reidentification("2025-12-31T10:00:00Z", "dpo")
    log.reidentification("2026-03-01T10:00:00Z", "dpo")
    log.reidentification("2026-03-09T10:00:00Z", "deputy-dpo")
    log.reidentification("2026-05-01T10:00:00Z", "dpo")
    result = stats_of(log, tmp_path, key, year=2026)

    assert (result.since, result.until) == ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
    assert result.requests.requests == 3
    assert result.reidentifications.total == 3
    assert result.reidentifications.by_dpo == {"deputy-dpo": 1, "dpo": 2}
    assert result.reidentifications.by_month == {"2026-03": 2, "2026-05": 1}
    versions = [(v.digest, v.first_used, v.last_used, v.decisions) for v in result.policy_versions]
    assert versions == [
        (DIGEST_A, "2026-02-02T10:00:00Z", "2026-02-02T10:00:00Z", 1),
        (DIGEST_B, "2026-06-02T10:00:00Z", "2026-07-02T10:00:00Z", 2),
    ]
    assert not any(v.archived for v in result.policy_versions)  # no set was archived here
    assert result.as_json()["requests"]["requests"] == 3


def test_a_volume_jump_against_the_requesters_own_history(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    jump = VOLUME_JUMP_MIN_REQUESTS + 10
    for month, fiod, kmar in (("01", 5, 25), ("02", 6, 25), ("03", 5, 26), ("04", jump, 27)):
        for day in range(fiod):
            log.request(f"2026-{month}-{day % 20 + 2:02d}T10:00:00Z", requester="fiod")
        for day in range(kmar):
            log.request(f"2026-{month}-{day % 20 + 2:02d}T10:00:00Z", requester="kmar")
    # Only the last month is in the period: the history before it still counts.
    result = stats_of(log, tmp_path, key, since="2026-04-01T00:00:00Z")

    jumps = flags(result, "volume-jump")
    assert set(jumps) == {"fiod"}  # kmar is busy, but no busier than it always is
    assert jumps["fiod"].numbers == {
        "month": "2026-04",
        "requests": jump,
        "median_before": 5,
        "months_before": 3,
    }
    assert "median" in jumps["fiod"].rule


def test_many_refusals_flag_fishing(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = LogBuilder()
    n = FISHING_MIN_REQUESTS
    for i in range(n):
        denied = (("ind", "ind/residence", "deny"),)
        allowed = (("ind", "ind/residence", "allow"),)
        log.request(WEEKDAY_NOON, requester="nctv", decisions=denied if i < 4 else allowed)
        log.request(WEEKDAY_NOON, requester="politie", decisions=denied if i < 2 else allowed)
    # Few requests: a high rate alone is no pattern.
    log.request(WEEKDAY_NOON, requester="om", decisions=(("ind", "ind/residence", "deny"),))
    result = stats_of(log, tmp_path, key)

    fishing = flags(result, "many-refusals")
    assert set(fishing) == {"nctv"}
    assert fishing["nctv"].numbers["refused"] == 4
    assert fishing["nctv"].numbers["refusal_rate"] == 0.4


def test_probing_with_unknown_datasets_and_purposes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = LogBuilder()
    log.refusal(WEEKDAY_NOON, "dji", "unknown-dataset", datasets=["ind/everything"])
    log.refusal(WEEKDAY_NOON, "dji", "invalid-request", unrecorded=1)
    log.request(
        WEEKDAY_NOON,
        requester="dji",
        purpose="fishing-expedition",
        decisions=(("", "", "deny"),),
        reasons=["purpose fishing-expedition is not in the register"],
    )
    # Two tries are below the threshold; an ordinary invalid request is no probe.
    log.refusal(WEEKDAY_NOON, "ind", "unknown-dataset")
    log.summary(WEEKDAY_NOON, "ind", {"unknown-dataset": 1, "invalid-request": 5})
    result = stats_of(log, tmp_path, key)

    probing = flags(result, "probing")
    assert PROBING_MIN_REQUESTS == 3
    assert set(probing) == {"dji"}
    assert probing["dji"].numbers == {"probing_requests": 3, "requests": 3}


def test_requests_outside_office_hours_in_dutch_local_time(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    outside = [
        "2026-03-07T12:00:00Z",  # a Saturday
        "2026-01-14T18:30:00Z",  # 19:30 in winter (UTC+1)
        "2026-07-15T17:10:00Z",  # 19:10 in summer (UTC+2)
        "2026-07-15T04:59:00Z",  # 06:59 in summer
        "2026-03-08T09:00:00Z",  # a Sunday
    ]
    inside = [
        "2026-07-15T05:30:00Z",  # 07:30 in summer, though before 07:00 UTC
        "2026-01-14T17:30:00Z",  # 18:30 in winter
        WEEKDAY_NOON,
    ]
    assert len(outside) == OFF_HOURS_MIN_REQUESTS
    for time in outside + inside:
        log.request(time, requester="aivd")
    for time in outside[:4] + inside * 3:  # four outside: under the minimum
        log.request(time, requester="om")
    for time in inside * 3:
        log.request(time, requester="politie")
    result = stats_of(log, tmp_path, key)

    late = flags(result, "outside-office-hours")
    assert set(late) == {"aivd"}
    assert late["aivd"].numbers == {"outside_office_hours": 5, "requests": 8, "share": 0.625}


def test_a_year_needs_no_period_and_an_empty_log_has_no_flags(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = LogBuilder()
    log.request("2025-05-05T10:00:00Z")
    result = stats_of(log, tmp_path, key, year=2026)
    assert result.requests.requests == 0
    assert result.flags == []
    assert result.requests.refusal_rate == 0.0
    with (
        pytest.raises(ValueError, match="a year or a period"),
        AuditReader(tmp_path / "audit.sqlite3") as reader,
    ):
        statistics(reader, year=2026, since="2026-01-01T00:00:00Z", now=NOW)
