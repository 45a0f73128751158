"""The DPO's searches (`audit.query`) against a plain Python filter over the same log.

The log is a seeded synthetic year (`bench.seed_log`: disclosures of one to three
datasets, refusals, refusal summaries, policy changes, times in office hours and at
night), written to a real SQLite file once for the module; Hypothesis draws filters from
the values in it (and values that are in no entry). Each search must return exactly what
reading every body in Python returns: the same requests, in the same order, across every
keyset page, each with every entry of its request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.errors import AuditError
from audit.query import (
    DECISIONS,
    KINDS,
    EntryFilter,
    LoggedEntry,
    entries_of_request,
    entries_with_subject_refs,
    get_entry,
    iter_selection,
    page_requests,
)
from audit.reader import AuditReader
from bench.seed_log import seed_log
from tests.audit.audit_support import ORIGIN, make_record, open_store

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
SIZE = 3000


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("query") / "audit.sqlite3"
    seed_log(path, SIZE, log_key=Ed25519PrivateKey.generate(), origin=ORIGIN, now=NOW)
    return path


@pytest.fixture(scope="module")
def bodies(seeded: Path) -> list[tuple[int, dict[str, Any]]]:
    with AuditReader(seeded) as reader:
        return [(entry.seq, json.loads(entry.body)) for entry in reader.iter_entries()]


# -- the reference: every body read in Python ----------------------------------------------


def matches(body: dict[str, Any], flt: EntryFilter) -> bool:
    for name in ("requester", "provider", "dataset", "purpose", "decision", "case_ref"):
        want = getattr(flt, name)
        if want is not None and body.get(name) != want:
            return False
    for name in ("policy_digest", "disclosure_id"):
        want = getattr(flt, name)
        if want is not None and body.get(name) != want:
            return False
    kind = body.get("kind")
    if flt.kind is not None and (kind or "decision") != flt.kind:
        return False
    if flt.refusal == "policy" and body.get("decision") != "deny":
        return False
    if flt.refusal == "error" and body.get("decision") != "error":
        return False
    if flt.refusal not in (None, "policy", "error"):
        refused = kind == "refusal" and body.get("problem") == flt.refusal
        counted = kind == "refusal-summary" and flt.refusal in body.get("counts", {})
        if not (refused or counted):
            return False
    moment = datetime.fromisoformat(body["time"])
    if flt.since is not None and moment < datetime.fromisoformat(flt.since):
        return False
    return flt.until is None or moment < datetime.fromisoformat(flt.until)


def key_of(seq: int, body: dict[str, Any]) -> str:
    return body["disclosure_id"] if body.get("kind") is None else f"seq:{seq}"


def expected_requests(
    log: list[tuple[int, dict[str, Any]]], flt: EntryFilter
) -> list[tuple[str, list[int]]]:
    """(key, every seq of the request) of each request with a matching entry, the newest
    matching entry first."""
    members: dict[str, list[int]] = {}
    for seq, body in log:
        members.setdefault(key_of(seq, body), []).append(seq)
    order: list[str] = []
    for seq, body in reversed(log):
        key = key_of(seq, body)
        if key not in order and matches(body, flt):
            order.append(key)
    return [(key, members[key]) for key in order]


def all_pages(reader: AuditReader, flt: EntryFilter, limit: int) -> Iterator[list[Any]]:
    before = None
    while True:
        page = page_requests(reader, flt, before=before, limit=limit)
        assert len(page.groups) <= limit
        yield page.groups
        if page.next_before is None:
            return
        assert page.groups
        assert len(page.groups) == limit
        before = page.next_before


# -- filters drawn from the log ------------------------------------------------------------


def values(log: list[tuple[int, dict[str, Any]]], name: str) -> list[str]:
    found = sorted({body[name] for _, body in log if isinstance(body.get(name), str)})
    return found[:40]


@st.composite
def filters(draw: st.DrawFn, log: list[tuple[int, dict[str, Any]]]) -> EntryFilter:
    chosen: dict[str, str] = {}
    for name in ("requester", "provider", "dataset", "purpose", "case_ref", "policy_digest"):
        if draw(st.integers(0, 5)) == 0:
            chosen[name] = draw(st.sampled_from([*values(log, name), "no-such-value"]))
    if draw(st.integers(0, 3)) == 0:
        chosen["decision"] = draw(st.sampled_from(DECISIONS))
    if draw(st.integers(0, 5)) == 0:
        chosen["kind"] = draw(st.sampled_from(KINDS))
    if draw(st.integers(0, 4)) == 0:
        problems = values(log, "problem")
        chosen["refusal"] = draw(st.sampled_from(["policy", "error", *problems, "no-such-code"]))
    if draw(st.integers(0, 8)) == 0:
        chosen["disclosure_id"] = draw(st.sampled_from(values(log, "disclosure_id")))
    if draw(st.integers(0, 3)) == 0:
        start = NOW - timedelta(days=365)
        since = start + timedelta(minutes=draw(st.integers(0, 365 * 24 * 60)))
        until = since + timedelta(minutes=draw(st.integers(0, 120 * 24 * 60)))
        if draw(st.booleans()):
            chosen["since"] = since.isoformat().replace("+00:00", "Z")
        if draw(st.booleans()):
            chosen["until"] = until.isoformat()
    return EntryFilter(**chosen)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pages_of_requests_are_what_reading_every_body_finds(
    seeded: Path, bodies: list[tuple[int, dict[str, Any]]], data: st.DataObject
) -> None:
    flt = data.draw(filters(bodies))
    limit = data.draw(st.sampled_from([1, 3, 25]))
    expected = expected_requests(bodies, flt)
    with AuditReader(seeded) as reader:
        found = [
            (group.key, [entry.seq for entry in group.entries])
            for groups in all_pages(reader, flt, limit)
            for group in groups
        ]
    assert found == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_streamed_selection_is_what_reading_every_body_finds(
    seeded: Path, bodies: list[tuple[int, dict[str, Any]]], data: st.DataObject
) -> None:
    flt = data.draw(filters(bodies))
    with AuditReader(seeded) as reader:
        found = [entry.seq for entry in iter_selection(reader, flt)]
    assert found == [seq for seq, body in bodies if matches(body, flt)]


def test_the_log_has_every_kind_of_request_the_filters_tell_apart(
    bodies: list[tuple[int, dict[str, Any]]],
) -> None:
    # Without these the comparisons above would prove less than they say.
    kinds = {body.get("kind") for _, body in bodies}
    assert kinds == {None, "refusal", "refusal-summary", "policy-change"}
    decisions = {body["decision"] for _, body in bodies}
    assert {"allow", "deny", "error", "refused", "policy-change"} <= decisions
    sizes = {len(members) for _, members in expected_requests(bodies, EntryFilter())}
    assert {1, 2, 3} <= sizes


def test_an_entry_a_request_and_a_subject_are_found(
    seeded: Path, bodies: list[tuple[int, dict[str, Any]]]
) -> None:
    seq, body = next((s, b) for s, b in bodies if b.get("kind") is None and s > 100)
    with AuditReader(seeded) as reader:
        entry = get_entry(reader, seq)
        assert isinstance(entry, LoggedEntry)
        assert entry.seq == seq
        assert json.loads(entry.body) == body
        assert entry.record.time == body["time"]
        assert get_entry(reader, SIZE + 1) is None
        request = entries_of_request(reader, body["disclosure_id"])
        assert [e.seq for e in request] == [
            s for s, b in bodies if b.get("disclosure_id") == body["disclosure_id"]
        ]
        assert entries_of_request(reader, "urn:uuid:not-logged") == []
        ref = body["subject_refs"][0]
        about = entries_with_subject_refs(reader, [ref, "psn:nobody"])
        assert [e.seq for e in about] == [s for s, b in bodies if ref in b.get("subject_refs", [])]
        assert len(about) >= 1
        assert entries_with_subject_refs(reader, []) == []


def test_a_disclosure_logged_in_two_places_is_one_request_on_one_page(tmp_path: Path) -> None:
    # A withdrawal (a receipt that could not be signed) logs more decisions of a
    # disclosure after other requests' entries: its request still shows once, with all.
    import asyncio

    db = tmp_path / "audit.sqlite3"
    key = Ed25519PrivateKey.generate()
    with open_store(db, key) as store:

        async def run() -> None:
            await store.append([make_record(1), make_record(1, dataset="kmar/border-crossings")])
            for i in range(2, 6):
                await store.append([make_record(i)])
            await store.append([make_record(1, decision="error")])  # the withdrawal
            await store.append([make_record(6)])

        asyncio.run(run())
    with AuditReader(db) as reader:
        pages = list(all_pages(reader, EntryFilter(), 2))
        keys = [group.key for groups in pages for group in groups]
        assert keys == [
            f"urn:uuid:00000000-0000-4000-8000-00000000000{i}" for i in (6, 1, 5, 4, 3, 2)
        ]
        first = pages[0][1]
        assert [entry.seq for entry in first.entries] == [1, 2, 7]
        # Under a filter only the first entries match: the request stands at entry 2.
        denied = list(all_pages(reader, EntryFilter(dataset="kmar/border-crossings"), 1))
        assert [[e.seq for e in g.entries] for groups in denied for g in groups] == [[1, 2, 7]]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"decision": "maybe"}, "decision must be one of allow, deny, error"),
        ({"kind": "other"}, "kind must be one of decision"),
        ({"refusal": "Bad Code"}, "refusal must be policy, error or a problem code"),
        ({"since": "yesterday"}, "since must be an RFC 3339 time or a date"),
        ({"until": "2026-06-01T10:00:00"}, "until must give its offset from UTC"),
        ({"since": "2026-06-02", "until": "2026-06-01"}, "until must not be before since"),
        ({"requester": ""}, "requester must be a text of 1 to 256 characters"),
        ({"purpose": "x" * 257}, "purpose must be a text of 1 to 256 characters"),
        ({"case_ref": "a\nb"}, "case_ref must not hold control characters"),
    ],
)
def test_a_filter_value_it_cannot_be_is_refused_with_a_clear_message(
    given: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EntryFilter(**given)


def test_paging_arguments_out_of_range_are_refused(seeded: Path) -> None:
    with AuditReader(seeded) as reader:
        for limit in (0, 501):
            with pytest.raises(ValueError, match="limit must be 1 to 500"):
                page_requests(reader, EntryFilter(), limit=limit)
        with pytest.raises(ValueError, match="before must be a positive"):
            page_requests(reader, EntryFilter(), before=0)


def test_an_empty_log_has_one_empty_page(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    with open_store(db, Ed25519PrivateKey.generate()):
        pass
    with AuditReader(db) as reader:
        page = page_requests(reader, EntryFilter(since="2026-01-01"))
        assert page.groups == []
        assert page.next_before is None
        assert list(iter_selection(reader, EntryFilter())) == []


def test_a_body_this_version_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    from tests.audit.audit_support import attack

    db = tmp_path / "audit.sqlite3"
    with open_store(db, Ed25519PrivateKey.generate()) as store:
        import asyncio

        asyncio.run(store.append([make_record(1)]))
    attack(db, "UPDATE entries SET body = json_set(body, '$.kind', 'future-kind')")
    with AuditReader(db) as reader, pytest.raises(AuditError, match="entry 1 is not a record"):
        get_entry(reader, 1)


@pytest.fixture(scope="module")
def jittered(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    """A log whose times run out of order by up to 50 minutes (a request decided
    before others but committed after them), as a busy gateway's may."""
    import asyncio
    import random

    db = tmp_path_factory.mktemp("jittered") / "audit.sqlite3"
    rng = random.Random(3)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=10 * i + rng.randrange(-25, 25)) for i in range(400)]
    with open_store(db, Ed25519PrivateKey.generate()) as store:
        records = [
            make_record(i, time=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
            for i, moment in enumerate(times)
        ]
        asyncio.run(store.append(records))
    with AuditReader(db) as reader:
        return db, [(e.seq, json.loads(e.body)) for e in reader.iter_entries()]


@settings(max_examples=80, deadline=None)
@given(start=st.integers(-60, 4100), length=st.integers(0, 900), data=st.data())
def test_a_period_finds_entries_committed_out_of_time_order(
    jittered: tuple[Path, list[tuple[int, dict[str, Any]]]],
    start: int,
    length: int,
    data: st.DataObject,
) -> None:
    db, log = jittered
    since = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=start, seconds=30)
    until = since + timedelta(minutes=length)
    chosen = data.draw(st.sampled_from(["both", "since", "until"]))
    flt = EntryFilter(
        since=since.isoformat() if chosen != "until" else None,
        until=until.isoformat() if chosen != "since" else None,
        requester=data.draw(st.sampled_from([None, "politie"])),
    )
    with AuditReader(db) as reader:
        assert [e.seq for e in iter_selection(reader, flt)] == [
            seq for seq, body in log if matches(body, flt)
        ]
        found = [g.key for groups in all_pages(reader, flt, 7) for g in groups]
    assert found == [key for key, _ in expected_requests(log, flt)]
