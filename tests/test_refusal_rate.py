"""The refusal log's rate and what it keeps of a body (gateway/refusals.py), on a real
audit store and a clock of the test's: no test waits for a minute to pass."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.store import AuditStore
from gateway.refusals import RefusalLog, RefusalNames, method_name, names_in_body
from tests.audit.audit_support import fail_inserts, open_store, stop_failing

ROUTE = "/v1/disclosures"
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[AuditStore]:
    with open_store(db, Ed25519PrivateKey.generate()) as opened:
        yield opened


def entries(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM entries")]


async def refuse(
    log: RefusalLog, problem: str = "invalid-request", partner: str = "politie"
) -> None:
    await log.record(partner, problem, 422, method="POST", route=ROUTE, body=b'{"purpose": "x"}')


def test_a_flood_gets_the_rate_in_entries_and_one_summary_that_counts_the_rest(
    store: AuditStore, db: Path
) -> None:
    clock = Clock()

    async def flood() -> None:
        log = RefusalLog(store, per_minute=60, clock=clock)
        problems = ["invalid-request"] * 300 + ["unsupported-media-type"] * 200
        await asyncio.gather(*(refuse(log, problem) for problem in problems))
        clock.advance(60)
        await log.write_due_summaries()
        await log.aclose()

    asyncio.run(flood())
    written = entries(db)
    assert len(written) == 60 + 1
    refusals = [e for e in written if e["kind"] == "refusal"]
    (summary,) = [e for e in written if e["kind"] == "refusal-summary"]
    assert len(refusals) == 60
    assert sum(summary["counts"].values()) == 500 - 60
    assert set(summary["counts"]) <= {"invalid-request", "unsupported-media-type"}
    assert (summary["interval_start"], summary["interval_end"]) == (
        "2026-12-07T09:00:00Z",
        "2026-12-07T09:01:00Z",
    )
    assert summary["requester"] == "politie"
    assert summary["decision"] == "refused"


def test_each_partner_has_its_own_rate(store: AuditStore, db: Path) -> None:
    async def two() -> None:
        log = RefusalLog(store, per_minute=2, clock=Clock())
        for partner in ("politie", "kmar"):
            for _ in range(3):
                await refuse(log, partner=partner)
        await log.aclose()

    asyncio.run(two())
    kinds = [(e["requester"], e["kind"]) for e in entries(db)]
    for partner in ("politie", "kmar"):
        assert kinds.count((partner, "refusal")) == 2
        assert kinds.count((partner, "refusal-summary")) == 1


def test_the_next_interval_starts_afresh_and_the_last_ones_summary_is_written(
    store: AuditStore, db: Path
) -> None:
    clock = Clock()

    async def two_minutes() -> None:
        log = RefusalLog(store, per_minute=1, clock=clock)
        await refuse(log)
        await refuse(log)  # counted
        clock.advance(90)
        await refuse(log)  # a new interval: an entry again; the old one is summarised
        await log.aclose()

    asyncio.run(two_minutes())
    written = entries(db)
    assert sorted(e["kind"] for e in written) == ["refusal", "refusal", "refusal-summary"]
    (summary,) = [e for e in written if e["kind"] == "refusal-summary"]
    assert summary["counts"] == {"invalid-request": 1}
    assert summary["interval_end"] == "2026-12-07T09:01:00Z"


def test_the_timer_writes_the_summary_when_the_interval_ends(store: AuditStore, db: Path) -> None:
    clock = Clock()

    async def quiet_after_a_flood() -> int:
        log = RefusalLog(store, per_minute=1, clock=clock)
        await refuse(log)
        clock.advance(59.99)
        await refuse(log)  # counted; the interval's timer is due in 10 ms
        clock.advance(1)
        for _ in range(400):  # the loop runs the timer; nothing else is going on
            if store.size == 2:
                break
            await asyncio.sleep(0.005)
        size = store.size
        await log.aclose()
        return size

    assert asyncio.run(quiet_after_a_flood()) == 2  # written by the timer, before aclose
    assert [e["kind"] for e in entries(db)] == ["refusal", "refusal-summary"]


def test_shutdown_writes_the_open_summary_cut_short(store: AuditStore, db: Path) -> None:
    clock = Clock()

    async def stop_early() -> None:
        log = RefusalLog(store, per_minute=0, clock=clock)  # a summary only
        await refuse(log, "payload-too-large")
        clock.advance(20)
        await log.aclose()
        await refuse(log)  # after closing: not written, and never raises

    asyncio.run(stop_early())
    (summary,) = entries(db)
    assert summary["counts"] == {"payload-too-large": 1}
    assert summary["interval_end"] == "2026-12-07T09:00:20Z"


def test_a_refusal_that_cannot_be_written_is_counted_and_reported_once(
    store: AuditStore, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()

    async def disk_full() -> None:
        log = RefusalLog(store, per_minute=60, clock=clock)
        fail_inserts(db)
        for _ in range(3):
            await refuse(log)  # never raises: the answer is the refusal all the same
        stop_failing(db)
        await log.aclose()

    with caplog.at_level(logging.ERROR, logger="doelpoort.refusals"):
        asyncio.run(disk_full())
    (summary,) = entries(db)
    assert summary["counts"] == {"invalid-request": 3}  # accounted for once it could be
    reports = [r.getMessage() for r in caplog.records if r.name == "doelpoort.refusals"]
    assert reports == ["a refusal could not be written to the audit log: AuditError"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"purpose": "ct-assessment", "datasets": ["ind/residence"]}',
         RefusalNames("ct-assessment", ("ind/residence",), 0)),
        # Not well-formed names: counted, never kept.
        (b'{"purpose": "999990019", "datasets": ["999990019", "Ind/X", 7, {"a": 1}]}',
         RefusalNames(None, (), 5)),
        # Well-formed, but a run of digits could be an identifier.
        (b'{"purpose": "p999990019", "datasets": ["x999990019/y", "a/b12"]}',
         RefusalNames(None, ("a/b12",), 2)),
        # Unless this deployment knows the name.
        (b'{"purpose": "known12345"}', RefusalNames("known12345", (), 0)),
        # A repeated member: which one counts is what parsers disagree on.
        (b'{"purpose": "ct-assessment", "purpose": "vertrek"}', RefusalNames(None, (), 2)),
        (b'{"datasets": "ind/residence"}', RefusalNames(None, (), 1)),
        (b'{"datasets": [' + b'"a/b",' * 40 + b'"a/b"]}', RefusalNames(None, ("a/b",) * 32, 9)),
        (b'{"subject": {"purpose": "ct-assessment"}}', RefusalNames()),  # top level only
        (b"[]", RefusalNames()),
        (b'[["purpose", "ct-assessment"]]', RefusalNames()),
        (b'"ct-assessment"', RefusalNames()),
        (b"{", RefusalNames()),
        (b"[" * 100_000, RefusalNames()),
        (b"\xff\xfe", RefusalNames()),
    ],
)  # fmt: skip
def test_only_safe_names_of_a_body_are_kept(body: bytes, names: RefusalNames) -> None:
    assert names_in_body(body, known=lambda name: name == "known12345") == names


def test_only_standard_methods_are_kept() -> None:
    assert [method_name(m) for m in ("GET", "DELETE", "X999990019", "get")] == [
        "GET",
        "DELETE",
        "other",
        "other",
    ]
