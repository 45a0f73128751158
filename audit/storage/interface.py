"""The storage interface: what a backend does for the audit store and reader.

The store (`audit.store`) numbers, chains, hashes and signs; a backend only keeps rows
durably and hands them back. It plays two roles, each a `Protocol`:

* `LogStorage`, for the log's one writer. The store calls its methods one at a time
  (on its storage thread, or on the event loop while nothing is in flight), so a backend
  needs no locking of its own; every method blocks, and a driver that releases the GIL
  lets the loop go on meanwhile.
* `ReadOnlyStorage`, for verify and the DPO's tools: reads only, never creates a log, and
  does not hold up the writer. Its `snapshot` is the log as it stood at one moment, so
  that checkpoints and entries read while the writer goes on still belong together.
  Its `queries` are the DPO's searches (`LogQueries`: filtered, indexed, newest or oldest
  first), on one view of the log too; `audit.query` parses what they return.

Opening is each backend's own, since only it knows what names a log (a file path, a
database URL): `SQLiteStorage.open(path)`, `SQLiteReadOnlyStorage.open(path)`. Opening a
`LogStorage` takes the log's one-writer lock (a second writer is refused with
`AuditError`; `close` releases it), creates the schema (`audit.storage.tables`) when there
is none, and refuses, with `AuditError`, a log made by an earlier version.

A failed call raises what the driver raised; the store reports it as `AuditError`. A
`write` that raised may still have landed (its COMMIT reached the disk, then the error
came), rows and checkpoint together, and the store finds out by reading `last_entry` and
`latest_checkpoint`: a backend answers every read from committed state only.

The tests in ``tests/audit/storagetest`` are written against this interface alone; a
backend that passes them can carry the log.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from audit.policy_sets import ArchivedPolicySet

ChainRow = tuple[int, bytes, bytes]
"""seq, prev, body: what an entry chains and hashes (`entry_leaf_hash(*row)`)."""

EntryRow = tuple[int, bytes, bytes, str | None, int | None]
"""One entry to write: seq, prev, body (the UTF-8 bytes that were hashed), then its
escrow (sealed text) and when that is to be erased (Unix seconds), both None without one.
A plain tuple: the store builds one per entry on the event loop."""


class StoredEntry(NamedTuple):
    """One row of the log: its leaf is ``leaf_bytes(seq, prev, body)``."""

    seq: int
    prev: bytes
    body: bytes


class StoredCheckpoint(NamedTuple):
    """One stored signed checkpoint; `size` and `root` repeat what `note` signs."""

    size: int
    root: bytes
    note: str
    created_at: str


class StoredCosignature(NamedTuple):
    """A witness's cosignature of the checkpoint at `size`, as the gateway stored it: the
    witness's key name and 4-byte key ID, the signature line (C2SP tlog-cosignature) and
    when it was stored (RFC 3339)."""

    size: int
    key_name: str
    key_id: bytes
    line: str
    created_at: str


@dataclass(frozen=True)
class Selection:
    """Which entries a DPO query asks for: all of its conditions hold. `audit.query`
    builds it from a validated filter; a backend turns it into indexed queries.

    `equal` pairs a filter column (`audit.storage.tables.FILTER_FIELDS`, not ``time``)
    with the value it must have. `decisions_only` keeps the decisions (entries of no
    ``kind``). `problem` keeps refusals with that problem code and the refusal summaries
    that count one. `since` (inclusive) and `until` (exclusive) bound the entries' time,
    each as ``YYYY-MM-DDTHH:MM:SS`` (UTC, whole seconds).
    """

    equal: tuple[tuple[str, str], ...] = ()
    decisions_only: bool = False
    problem: str | None = None
    since: str | None = None
    until: str | None = None


RequestKey = tuple[int, str | None]
"""An entry that matched a selection: its seq, and the disclosure it belongs to (None for
an entry that is a request of its own: a refusal, a policy change, ...)."""


class LogQueries(Protocol):
    """The DPO's queries, on one consistent view of the log (`ReadOnlyStorage.queries`).
    Entries come back as stored (`ChainRow`); `audit.query` parses them."""

    def entry(self, seq: int) -> ChainRow | None:
        """Entry `seq`; None when there is none."""
        ...

    def entries_at(self, seqs: Collection[int]) -> list[ChainRow]:
        """The entries with these seqs that exist, in seq order."""
        ...

    def disclosures(self, disclosure_ids: Collection[str]) -> list[ChainRow]:
        """Every decision entry of these disclosures, in seq order."""
        ...

    def newest(self, selection: Selection, before: int | None, limit: int) -> list[RequestKey]:
        """Up to `limit` entries that match, below seq `before` (or from the newest),
        newest first."""
        ...

    def matches_from(self, selection: Selection, disclosure_id: str, start: int) -> bool:
        """Whether a decision entry of the disclosure at seq >= `start` matches."""
        ...

    def matching(self, selection: Selection) -> Generator[ChainRow, None, None]:
        """Every entry that matches, in seq order, streamed."""
        ...

    def with_refs(self, table: str, refs: Collection[str]) -> list[ChainRow]:
        """The entries whose body lists one of `refs` in `table` (``subject_refs`` or
        ``pseudonym_refs``), in seq order."""
        ...


class LogStorage(Protocol):
    """A log's durable home, as its one writer (`AuditStore`) uses it."""

    @property
    def location(self) -> str:
        """Where the log is, for messages: a path, or a URL without its password."""
        ...

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        """Entries with seq >= `start`, in seq order. Close the generator to stop early."""
        ...

    def last_entry(self) -> ChainRow | None:
        """The entry with the highest seq; None when there is none."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size; None when there is none."""
        ...

    def write(self, rows: Sequence[EntryRow], checkpoint: StoredCheckpoint) -> None:
        """Store `rows` (the next seqs, in order) and `checkpoint` (the store's, over the
        tree they bring the log to), all or nothing, and durably before returning: no
        entry is ever stored outside a checkpoint. A row whose seq, or a checkpoint whose
        size, is stored already is refused: the log is append-only."""
        ...

    def archive_policy_set(self, digest: str, sources: bytes, first_used: str) -> bool:
        """Store a policy set (its archived form, `audit.policy_sets`) under `digest`,
        first used at `first_used` (RFC 3339), durably before returning; or, when a set is
        stored under `digest` already, change nothing. True when it was stored now."""
        ...

    def policy_set(self, digest: str) -> bytes | None:
        """The stored form of the set archived under `digest`, as stored; None when none
        is."""
        ...

    def add_cosignature(self, cosignature: StoredCosignature) -> bool:
        """Store a witness's cosignature, durably before returning. True when it was stored
        now; False when that key's cosignature of that size is stored already (the first
        is kept). Raises `ValueError` when no checkpoint of its size is stored."""
        ...

    def erase_expired_escrows(self, now: int, limit: int) -> int:
        """Erase (set to None) up to `limit` escrows, with their expiry, whose expiry is
        at or before `now` (Unix seconds); change nothing else; return how many."""
        ...

    def purge_erased(self) -> bool:
        """Remove the copies of erased escrows the backend keeps outside its tables (a
        write-ahead log, dead row versions). False when something kept it from that for
        now: the store asks again at its next sweep."""
        ...

    def close(self) -> None:
        """Release the connection and the one-writer lock."""
        ...


class Snapshot(Protocol):
    """The log as it stood at one moment: its checkpoints and entries belong together
    whatever the writer commits meanwhile (each commit adds entries and the checkpoint
    that covers them at once, and a snapshot holds both or neither)."""

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint of the snapshot, smallest size first."""
        ...

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        """The snapshot's entries with seq >= `start`, in seq order, streamed."""
        ...


@dataclass(frozen=True)
class StatisticsRows:
    """What the queries return, before `audit.statistics` shapes it."""

    decisions: list[tuple[str, str, str, str, str, str, str, str, str, int]]
    """requester, purpose, provider, UTC month, decision, policy digest, legal basis,
    first and last time, dataset decisions."""
    requests: list[tuple[str, str, str, str, int, str, str, int]]
    """requester, purpose, UTC hour, outcome (released | partly-refused | refused |
    error), of them for a purpose not in the register, the providers asked and those
    that denied (comma-separated), disclosure requests."""
    refusals: list[tuple[str, str | None, str, str, int, int]]
    """requester, purpose (or None), UTC hour, problem, entries with unrecorded names,
    refusal entries (each a request refused before any decision)."""
    summaries: list[tuple[str, str, str, int]]
    """requester, UTC hour, problem, refusals counted in refusal summaries."""
    field_ops: list[tuple[str, str, int]]
    """purpose, field op, fields released with that op (allowed decisions only)."""
    reidentifications: list[tuple[str, str, int]]
    """DPO, UTC month, re-identifications."""
    policy_changes: list[tuple[str, int]]
    """outcome (swapped | refused), policy change entries."""
    history: list[tuple[str, str, int]]
    """requester, UTC month, requests before the period (for its own history)."""


class ReadOnlyStorage(Protocol):
    """A log opened for reading only (`AuditReader`)."""

    @property
    def location(self) -> str:
        """Where the log is, for messages: a path, or a URL without its password."""
        ...

    def entries(self, start: int) -> Generator[ChainRow, None, None]:
        """Entries with seq >= `start`, in seq order, streamed from one snapshot."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest size first."""
        ...

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """The log as it stands now, until the context ends; it does not hold up the
        writer. What verify reads, so that a log being written to checks out."""
        ...

    def escrow(self, seq: int) -> bytes | None:
        """The stored bytes of entry `seq`'s escrow; None when it has none, it was
        erased, or there is no such entry. `AuditError` when it cannot be read."""
        ...

    def checkpoint(self, size: int | None) -> StoredCheckpoint | None:
        """The checkpoint at `size` (the latest when None); None when there is none."""
        ...

    def covering_checkpoint(self, seq: int) -> StoredCheckpoint | None:
        """The smallest checkpoint whose tree holds entry `seq`; None when none does."""
        ...

    def count(self) -> int:
        """Number of stored entries."""
        ...

    def policy_set(self, digest: str) -> bytes | None:
        """The stored form of the policy set archived under `digest`, as stored; None
        when none is (also in a log made before the archive existed)."""
        ...

    def policy_sets(self) -> list[ArchivedPolicySet]:
        """Every archived policy set's digest and first use, earliest first (none in a
        log made before the archive existed)."""
        ...

    def statistics(self, since: str | None, until: str | None) -> StatisticsRows:
        """The aggregates `audit.statistics` shapes, for entries with
        ``since <= time < until`` (None: unbounded), from one read transaction."""
        ...

    def cosignatures(self) -> list[StoredCosignature]:
        """Every stored cosignature, by size and then key ID (none in a log no writer of
        this version has opened)."""
        ...

    def queries(self) -> AbstractContextManager[LogQueries]:
        """The DPO's queries on the log as it stands now, until the context ends.
        Raises `AuditError` when the log has not been upgraded for them yet."""
        ...

    def close(self) -> None: ...
