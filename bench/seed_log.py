"""A realistic, signed, verifying audit log of any size, written fast: for the DPO's
benchmarks (`bench/dpo.py`, `bench/export.py`) and for tests of the console, statistics
and exports at small sizes.

The log is a synthetic year of the demo deployment (its partners, purposes and datasets;
no real person, and no value anywhere): disclosures of one to three datasets, allowed
where the demo register grants them and denied where it does not (a partner now and then
probing a purpose or dataset it holds no grant for), a few errors, refusals of malformed
requests and the odd refusal summary, policy sets swapped (and one refused) every month
or so, each decision naming the set that made it. Requests come mostly in office hours
on working days, some in the evening and at night. Each subject has references (BSN,
name and date of birth, sometimes a v-number) that every request about them carries,
and released pseudonyms have references too; disclosures that release a pseudonym carry
an escrow, erased where its retention has run out, as the gateway's sweep would have.

It is written through the SQLite backend directly, a commit group of about 1,000 entries
at a time with its signed checkpoint, each commit without waiting for the disk (a
benchmark's scratch log: one that a crash cuts short is thrown away), so 1,000,000
entries take well under a minute or two (bench/README.md, "DPO"). The result verifies
with ``audit.verify.verify_log``, like any log the gateway writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.clock import Clock, rfc3339
from audit.entry import (
    GENESIS_PREV,
    LogRecord,
    PolicyChangeRecord,
    RefusalRecord,
    RefusalSummaryRecord,
    entry_leaf_hash,
    escrow_digest,
)
from audit.storage.interface import EntryRow
from audit.storage.sqlite.writer import SQLiteStorage
from audit.store import group_checkpoint
from audit.tree import CompactRange

__all__ = ["DATASETS", "PURPOSES", "seed_log"]

_ENTRY_INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'"
GROUP_ENTRIES = 1000
FORMAT = 2
"""What a seeded log holds (2: subject key ids and pseudonym references): part of a
cached log's name, so a change here seeds anew."""
"""Entries per commit group (and so between checkpoints)."""
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Purpose:
    """A purpose of the demo register, as far as the seeded decisions need it."""

    legal_basis: str
    retention_days: int
    requesters: tuple[str, ...]
    datasets: dict[str, tuple[str, ...] | None]
    """Dataset → the partners it is narrowed to (None: every requester of the purpose)."""


PURPOSES = {
    "ct-assessment": Purpose(
        "Convenant CT Infobox; each partner within its own statutory framework",
        365,
        ("aivd", "fiod", "fiu", "ind", "kmar", "nctv", "om", "politie"),
        {
            "ind/residence": None,
            "kmar/border-crossings": None,
            "politie/incidents": None,
            "aivd/ct-signals": ("aivd", "nctv", "politie", "om"),
            "fiu/transactions": ("fiod", "politie", "aivd", "nctv", "om"),
        },
    ),
    "vertrek": Purpose(
        "Vreemdelingenwet 2000; Landelijk Afstemmingsoverleg Vertrek (LAOV)",
        730,
        ("dji", "dtv", "ind", "kmar"),
        {"ind/residence": None, "dji/detention": None},
    ),
    "tf-screening": Purpose(
        "Wet ter voorkoming van witwassen en financieren van terrorisme (Wwft); FEC TF pilot",
        180,
        ("voorbeeldbank",),
        {"fiu/transactions": None},
    ),
    "pnr-request": Purpose(
        "Wet gebruik passagiersgegevens voor de bestrijding van terroristische en ernstige "
        "misdrijven",
        183,
        ("fiod", "kmar", "om", "politie"),
        {"kmar/passenger-records": None},
    ),
}
"""The demo register's purposes (policies/register.yaml), summarised."""

DATASETS = {
    "ind/residence": {
        "bsn": "pseudonymise",
        "name": "pseudonymise",
        "date_of_birth": "generalise:year",
        "nationality": "keep",
        "residence_status": "keep",
    },
    "kmar/border-crossings": {"bsn": "pseudonymise", "crossed_at": "keep", "border_post": "keep"},
    "politie/incidents": {"bsn": "pseudonymise", "incident_type": "keep", "date": "keep"},
    "aivd/ct-signals": {"bsn": "pseudonymise", "signal": "exists"},
    "fiu/transactions": {"bsn": "pseudonymise", "amount": "keep", "reported_at": "keep"},
    "dji/detention": {"v_number": "keep", "detained_since": "keep", "location": "keep"},
    "kmar/passenger-records": {"name": "mask:2", "flight": "keep", "departure": "keep"},
}
"""The demo catalog's datasets, with the field ops an allow releases them under."""

_DOMAINS = {
    "ind": "immigration",
    "kmar": "border",
    "politie": "police",
    "aivd": "intelligence",
    "fiu": "financial",
    "dji": "detention",
}
_ROLES = {
    "aivd": ["ct-infobox"],
    "dji": ["laov"],
    "dtv": ["laov"],
    "fiod": ["ct-infobox", "pnr-competent-authority"],
    "fiu": ["ct-infobox"],
    "ind": ["ct-infobox", "laov"],
    "kmar": ["ct-infobox", "laov", "pnr-competent-authority"],
    "nctv": ["ct-infobox"],
    "om": ["ct-infobox", "pnr-competent-authority"],
    "politie": ["ct-infobox", "pnr-competent-authority"],
    "voorbeeldbank": ["fec-obliged-entity"],
}
_PROBLEMS = (
    ("invalid-request", 422, "/v1/disclosures"),
    ("unknown-dataset", 422, "/v1/disclosures"),
    ("body-too-large", 413, "/v1/disclosures"),
    ("unsupported-media-type", 415, "/v1/disclosures"),
    ("not-found", 404, None),
    ("method-not-allowed", 405, "/v1/disclosures"),
)
_ERRORS = ("connector-unavailable", "connector-timeout", "escrow-unavailable")
# The encoder of `AuditRecord.body`, and the marks a body's policy input is spliced in at.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_POLICY_INPUT, _TIME, _CASE_REF = "@policy-input@", "@time@", "@case-ref@"
_SEED_KID = hashlib.sha256(b"seeded subject key").hexdigest()[:16]
"""The `subject_ref_key` of seeded entries: the id of the (synthetic) subject key."""


@dataclass(frozen=True)
class _Subject:
    refs: list[str]
    number: int


def seed_log(
    path: Path,
    entries: int,
    *,
    log_key: Ed25519PrivateKey,
    origin: str,
    now: datetime,
    seed: int = 14,
) -> None:
    """Write a synthetic year (ending at `now`) of `entries` entries to a new log at
    `path`, signed with `log_key` for `origin`. Raises `FileExistsError` when `path`
    exists: a seeded log is made whole or not at all. The same seed makes the same log."""
    if path.exists():
        raise FileExistsError(f"{path} exists: a seeded log is made new")
    if entries < 1:
        raise ValueError("a seeded log has at least one entry")
    records = _Year(random.Random(seed), entries, now)
    storage = SQLiteStorage.open(path)
    try:
        conn = storage.connection
        conn.execute("PRAGMA synchronous=OFF")  # a scratch log: no commit waits for the disk
        # The filter indexes and reference tables are built at the end, sorted, instead
        # of entry by entry (several times faster): by the writer's own upgrade of a log
        # of schema version 0, which this one is until then.
        for (index,) in conn.execute(_ENTRY_INDEXES).fetchall():
            conn.execute(f"DROP INDEX {index}")
        conn.execute("DROP TRIGGER entries_refs")
        conn.execute("PRAGMA user_version = 0")
        _write(storage, records, log_key=log_key, origin=origin)
    finally:
        storage.close()
    SQLiteStorage.open(path).close()  # upgrades it: indexes, references, version


def _write(
    storage: SQLiteStorage, records: _Year, *, log_key: Ed25519PrivateKey, origin: str
) -> None:
    """Each group is written on a thread while the next is made: SQLite releases the GIL,
    so encoding bodies and indexing them take a core each."""
    tree = CompactRange()
    seq, prev = 0, GENESIS_PREV
    rows: list[EntryRow] = []
    last_time = ""
    with ThreadPoolExecutor(1, thread_name_prefix="seed") as writer:
        written: Future[None] | None = None
        for stamp, bodies, escrow in records:
            sealed, expires = escrow if escrow is not None else (None, None)
            for body in bodies:
                seq += 1
                leaf = entry_leaf_hash(seq, prev, body)
                rows.append((seq, prev, body, sealed, expires))
                tree.append(leaf)
                prev = leaf
            last_time = stamp
            if len(rows) >= GROUP_ENTRIES or seq == records.entries:
                checkpoint = group_checkpoint(
                    tree, origin=origin, log_key=log_key, now=_clock(last_time)
                )
                if written is not None:
                    written.result()  # in order, and the first failure stops the seeding
                written = writer.submit(storage.write, rows, checkpoint)
                rows = []
        if written is not None:
            written.result()


def _clock(stamp: str) -> Clock:
    """A clock stopped at `stamp`: a group's checkpoint is made when its last entry was."""
    moment = datetime.fromisoformat(stamp)
    return lambda: moment


class _Year:
    """The requests of the year, oldest first, each as its records and its escrow."""

    def __init__(self, rng: random.Random, entries: int, now: datetime) -> None:
        self.entries = entries
        self._rng = rng
        self._now = now.astimezone(UTC).replace(microsecond=0)
        self._start = self._now - YEAR
        subjects = max(50, entries // 25)
        self._subjects = [_subject(rng, n) for n in range(subjects)]
        # Policy sets: swapped about once a month, one candidate refused along the way.
        self._changes = sorted(rng.uniform(0.02, 0.98) for _ in range(12))
        self._digests = [
            "sha256:" + hashlib.sha256(f"seeded policy set {n}".encode()).hexdigest()
            for n in range(len(self._changes) + 1)
        ]
        self._hours = _hour_weights(self._start)
        self._templates: dict[tuple[str, str, str], str] = {}

    def __iter__(self) -> Iterator[tuple[str, list[bytes], tuple[str, int] | None]]:
        """Each request's time, its entries' bodies and its escrow (sealed, expiry)."""
        for stamp, request, escrow in self._requests():
            yield stamp, [r if isinstance(r, bytes) else r.body() for r in request], escrow

    def _requests(
        self,
    ) -> Iterator[tuple[str, Sequence[LogRecord | bytes], tuple[str, int] | None]]:
        rng = self._rng
        left = self.entries
        # Sizes first (so the number of requests is known), then their times.
        sizes: list[int] = []
        while left > 0:
            size = min(left, rng.choices((1, 2, 3), (40, 35, 25))[0])
            sizes.append(size)
            left -= size
        times = self._times(len(sizes))
        digest_at = 0
        for size, moment in zip(sizes, times, strict=True):
            fraction = (moment - self._start) / YEAR
            stamp = rfc3339(moment)
            if digest_at < len(self._changes) and self._changes[digest_at] <= fraction:
                # The next set is swapped in: its entry first, then requests decide on it.
                digest_at += 1
                yield stamp, [self._policy_change(stamp, digest_at)], None
                size -= 1
                if not size:
                    continue
            digest = self._digests[digest_at]
            roll = rng.random()
            if size == 1 and roll < 0.05:
                yield stamp, [self._refusal(stamp)], None
            elif size == 1 and roll < 0.052:
                yield stamp, [self._summary(moment)], None
            elif size == 1 and roll < 0.0525:
                yield stamp, [self._policy_change(stamp, digest_at, refused=True)], None
            else:
                yield stamp, *self._disclosure(stamp, size, digest)

    def _times(self, count: int) -> list[datetime]:
        """`count` moments in the year, weighted by the hour of the week, in order."""
        rng = self._rng
        hours = rng.choices(range(len(self._hours)), cum_weights=self._hours, k=count)
        seconds = sorted(hour * 3600 + rng.randrange(3600) for hour in hours)
        return [self._start + timedelta(seconds=s) for s in seconds]

    def _disclosure(
        self, stamp: str, size: int, digest: str
    ) -> tuple[list[bytes], tuple[str, int] | None]:
        """The bodies of a disclosure's decisions (as `AuditRecord.body` writes them, the
        policy input spliced in from a template: encoding it whole each time would
        double the time a large log takes), and its escrow."""
        rng = self._rng
        purpose_name = rng.choices(list(PURPOSES), (60, 20, 12, 8))[0]
        purpose = PURPOSES[purpose_name]
        probing = rng.random() < 0.03  # a partner asking outside its grants
        requester = rng.choice(list(_ROLES) if probing else purpose.requesters)
        granted = requester in purpose.requesters
        covered = list(purpose.datasets)
        datasets = rng.sample(covered, min(size, len(covered)))
        while len(datasets) < size:  # a purpose covering fewer: another dataset asked
            datasets.append(rng.choice([d for d in DATASETS if d not in datasets]))
        subject = rng.choice(self._subjects)
        disclosure_id = f"urn:uuid:{_uuid(rng)}"
        prefix = requester[:3].upper()
        case_ref = f"{prefix}-{stamp[:4]}-{rng.randrange(1, 400):04d}"
        contents: list[dict[str, Any]] = []
        pseudonyms = False
        for dataset in datasets:
            allowed_for = purpose.datasets.get(dataset, ())
            covers = dataset in purpose.datasets and (
                allowed_for is None or requester in allowed_for
            )
            if not granted:
                verdict, reasons = "deny", [f"purpose {purpose_name} is not granted to {requester}"]
            elif not covers:
                verdict = "deny"
                reasons = [f"purpose {purpose_name} does not cover {dataset} for {requester}"]
            elif rng.random() < 0.012:
                verdict, reasons = "error", ["the provider could not be reached"]
            else:
                verdict, reasons = "allow", []
            field_ops = dict(DATASETS[dataset]) if verdict == "allow" else {}
            released = sorted(
                _ref(f"pseudonym {subject.number} {requester} {purpose_name} {name}")
                for name, op in field_ops.items()
                if op == "pseudonymise"
            )
            pseudonyms = pseudonyms or bool(released)
            content: dict[str, Any] = {
                "time": stamp,
                "disclosure_id": disclosure_id,
                "requester": requester,
                "provider": dataset.split("/")[0],
                "dataset": dataset,
                "purpose": purpose_name,
                "legal_basis": purpose.legal_basis if granted else "",
                "case_ref": case_ref,
                "decision": verdict,
                "reasons": reasons,
                "field_ops": field_ops,
                "record_count": 1 if verdict == "allow" else 0,
                "subject_refs": subject.refs,
                "policy_digest": digest,
                "records_sha256": (
                    "sha256:" + hashlib.sha256(f"{disclosure_id} {dataset}".encode()).hexdigest()
                    if verdict == "allow"
                    else None
                ),
                "retention_days": purpose.retention_days if verdict != "error" else None,
                "error": rng.choice(_ERRORS) if verdict == "error" else None,
                "policy_input": _POLICY_INPUT,
                "escrow_sha256": None,
                "escrow_expires": None,
            }
            content["pseudonym_refs"] = released
            content["subject_ref_key"] = _SEED_KID
            contents.append(content)
        escrow = None
        if pseudonyms:
            sealed = "v1." + base64.urlsafe_b64encode(rng.randbytes(180)).decode()
            expires = (
                int(datetime.fromisoformat(stamp).timestamp()) + purpose.retention_days * 86400
            )
            for content in contents:
                content["escrow_sha256"] = escrow_digest(sealed)
                content["escrow_expires"] = expires
            erased = expires <= self._now.timestamp()  # the gateway's sweep erased it
            escrow = None if erased else (sealed, expires)
        return [self._body(content) for content in contents], escrow

    def _body(self, content: dict[str, Any]) -> bytes:
        key = (content["requester"], content["purpose"], content["dataset"])
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _ENCODER.encode(
                _policy_input(_TIME, *key[:2], _CASE_REF, key[2])
            )
        policy_input = template.replace(f'"{_TIME}"', _ENCODER.encode(content["time"]))
        policy_input = policy_input.replace(f'"{_CASE_REF}"', _ENCODER.encode(content["case_ref"]))
        body = _ENCODER.encode(content).replace(f'"{_POLICY_INPUT}"', policy_input, 1)
        return body.encode("utf-8")

    def _refusal(self, stamp: str) -> RefusalRecord:
        rng = self._rng
        problem, status, route = rng.choice(_PROBLEMS)
        named = problem in ("invalid-request", "unknown-dataset")
        return RefusalRecord(
            time=stamp,
            requester=rng.choice(list(_ROLES)),
            problem=problem,
            status=status,
            method="POST" if route else "GET",
            route=route,
            purpose=rng.choice(list(PURPOSES)) if named else None,
            datasets=[rng.choice(list(DATASETS))] if named else [],
            unrecorded_names=rng.choice((0, 0, 0, 1)) if named else 0,
        )

    def _summary(self, moment: datetime) -> RefusalSummaryRecord:
        rng = self._rng
        counts = {problem: rng.randrange(1, 40) for problem, _, _ in rng.sample(_PROBLEMS, 2)}
        return RefusalSummaryRecord(
            time=rfc3339(moment),
            requester=rng.choice(list(_ROLES)),
            interval_start=rfc3339(moment - timedelta(minutes=1)),
            interval_end=rfc3339(moment),
            counts=dict(sorted(counts.items())),
        )

    def _policy_change(self, stamp: str, at: int, *, refused: bool = False) -> PolicyChangeRecord:
        """The swap to set `at` (from the one before it), or a candidate refused while
        set `at` serves."""
        return PolicyChangeRecord(
            time=stamp,
            trigger=self._rng.choice(("sighup", "file-change")),
            source="directory",
            outcome="refused" if refused else "swapped",
            old_digest=self._digests[at if refused else at - 1],
            new_digest=None if refused else self._digests[at],
            reasons=["disclosure.rego:12: rego_parse_error"] if refused else [],
        )


def _policy_input(
    stamp: str, requester: str, purpose: str, case_ref: str, dataset: str
) -> dict[str, object]:
    """The policy input of a seeded decision (names and categories, as the gateway's)."""
    provider = dataset.split("/")[0]
    return {
        "action": "disclose",
        "time": stamp,
        "requester": {"id": requester, "roles": _ROLES[requester]},
        "purpose": purpose,
        "case_ref": case_ref,
        "has_justification": True,
        "dataset": {
            "id": dataset,
            "provider": provider,
            "domain": _DOMAINS.get(provider, "other"),
            "fields": {
                name: {"type": "string", "category": "identifier" if name == "bsn" else "other"}
                for name in DATASETS[dataset]
            },
            "identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
        },
        "subject_keys": ["bsn"],
        "subject_facts": {},
    }


def _subject(rng: random.Random, number: int) -> _Subject:
    keys = ["bsn", "name+date_of_birth"] + (["v_number"] if rng.random() < 0.3 else [])
    return _Subject(sorted(_ref(f"subject {number} {key}") for key in keys), number)


def _ref(text: str) -> str:
    """A keyed reference's form (``psn:`` and 32 hex digits); synthetic, from `text`."""
    return "psn:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


def _hour_weights(start: datetime) -> list[float]:
    """Cumulative weights of each hour of the year from `start`: office hours on working
    days weigh most, evenings and weekends little, nights least."""

    def weight(moment: datetime) -> float:
        workday = moment.weekday() < 5
        if 8 <= moment.hour < 18:
            return 1.0 if workday else 0.08
        if 6 <= moment.hour < 23:
            return 0.12 if workday else 0.04
        return 0.02

    return list(accumulate(weight(start + timedelta(hours=h)) for h in range(365 * 24)))
