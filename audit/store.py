"""The durable, append-only audit store with group commit on the event loop.

`append` adds its batch to the waiting group and waits. On the event loop, the group is
numbered, chained and hashed, and the checkpoint over the tree including it is signed;
then one transaction writes both and commits (one fsync for all of it) on a single
storage thread, and only then is each waiter resolved with its sequence numbers. At most
one transaction is in flight: whatever arrives meanwhile forms the next group, so the
busier the gateway, the more requests share each fsync and each signature.

The thread does nothing but run the storage (`audit.storage`), whose driver releases the
GIL; all Python work stays on the loop. An earlier design did it all on a writer thread,
and on the 2-core reference machine the GIL hand-offs cost about a third more CPU per
disclosure (measured). For the same reason a group goes to the storage as one call, which
SQLite turns into one multi-row INSERT (`audit.storage.sqlite.statements`).

The store keeps the last leaf hash and the compact range in memory (`audit.state`),
rebuilt from the table at open. Every group's transaction carries its checkpoint (an
Ed25519 signature and an O(log n) root per group, not per entry: tens of microseconds,
shared by every request of the group), so no committed entry is ever outside a signed
checkpoint. Whoever can write the file but does not hold the key can still change
entries and recompute the chain, but every changed entry is under a checkpoint that no
longer matches, and the gateway never signs over entries it did not itself append: it
signs only trees it built in memory from its own groups, and refuses at open a log whose
newest entries no checkpoint covers (`audit.state.load_state`).

Expired escrows are erased by `audit.retention`, a batch at a time on the storage thread;
no group is prepared or written while a batch runs, and groups go in between batches.
Archiving a policy set (`archive_policy_set`) and storing a witness's cosignature
(`add_cosignature`) run the same way, beside the entries, not
as one: the entries name the set by its digest, and the set proves itself against it.

A failed write may still have landed (the COMMIT reached the disk, then the error came),
so the table holds either the state from before it or the one it prepared: a group's
entries and its checkpoint, together or not at all. Before it writes again, the store
reads the last entry and the latest checkpoint to tell which, in O(1); until it knows,
every append fails at once and the store stays unhealthy. When the table holds neither,
someone else wrote to it: the store does not rebuild its state from those rows (it would
then sign them), but stays unhealthy and appends nothing more, saying so in the log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.clock import Clock, rfc3339_micro, utc_now
from audit.entry import LogRecord, StoredEscrow, entry_leaf_hash
from audit.errors import AuditError
from audit.hasher import EMPTY_ROOT
from audit.policy_sets import decode_policy_set, encode_policy_set, policy_digest
from audit.retention import EscrowEraser
from audit.state import (
    LogState,
    changed_behind,
    check_signer,
    load_state,
    match_state,
    read_head,
)
from audit.storage.interface import EntryRow, LogStorage, StoredCheckpoint, StoredCosignature
from audit.storage.sqlite.writer import SQLiteStorage
from audit.tree import CompactRange

__all__ = ["AuditStore", "group_checkpoint"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class _Pending:
    """One `append` call waiting for its batch to be durable."""

    bodies: list[bytes]
    escrow: StoredEscrow | None
    future: asyncio.Future[list[int]]


@dataclass
class _Prepared:
    """A group numbered, chained and hashed, ready for its transaction."""

    group: list[_Pending]
    rows: list[EntryRow]
    assigned: list[list[int]]
    state: LogState
    checkpoint: StoredCheckpoint
    """Over the tree including the group: written in the same transaction."""


class AuditStore:
    """Appends audit records durably; use `AuditStore.open` (or `AuditStore.on_storage`)."""

    def __init__(
        self,
        storage: LogStorage,
        state: LogState,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        now: Clock,
    ) -> None:
        self._storage = storage
        self._state = state
        self._log_key = log_key
        self._origin = origin
        self._now = now
        self._group: list[_Pending] = []
        # At most one transaction in flight, on one thread that does nothing but the
        # storage's calls (whose driver releases the GIL): the loop keeps serving
        # requests meanwhile, and they form the next group.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._inflight: tuple[_Prepared, concurrent.futures.Future[None]] | None = None
        # An erasure step waiting for, or running on, the storage thread: groups wait
        # for it (see `_exclusive`).
        self._holding = False
        self._exclusive_turn = asyncio.Lock()  # one exclusive step at a time, in turn
        self._erasing: concurrent.futures.Future[Any] | None = None
        self._eraser = EscrowEraser(storage, now)
        self._closed = False
        self._healthy = True
        # After a failed write: the states the table may hold (before it, or with it).
        self._possible: tuple[LogState, LogState] | None = None
        self._failing: str | None = None  # the cause last logged, until a write succeeds
        self._failed_writes = 0  # since the last success
        # Set when the table held neither: someone else wrote, and nothing more is signed.
        self._changed_behind: AuditError | None = None
        self.commit_count = 0
        """Transactions that committed entries: fewer than batches when commits are shared."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        now: Clock = utc_now,
    ) -> AuditStore:
        """Open (or create) the SQLite log at `path`.

        Raises `AuditError` when the stored log is not consistent with itself or its
        latest checkpoint (appending to it would sign a checkpoint that contradicts one
        signed before), and when its newest entries are not under its latest checkpoint
        (the gateway did not append them, and will not sign them). `doelpoort audit
        verify` names the first bad entry. Raises `ValueError` for an origin or key name
        that no checkpoint could carry.
        """
        # Before the file is made: a log that could never be appended to is not created.
        _check_signing(log_key, origin)
        return cls.on_storage(SQLiteStorage.open(path), log_key=log_key, origin=origin, now=now)

    @classmethod
    def on_storage(
        cls,
        storage: LogStorage,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        now: Clock = utc_now,
    ) -> AuditStore:
        """A store appending to an opened `storage`, which it owns from now on (and
        closes, also when this raises). Raises as `open` does."""
        try:
            _check_signing(log_key, origin)
            state = load_state(storage)
            check_signer(storage, log_key, origin)
        except BaseException:
            storage.close()
            raise
        return cls(storage, state, log_key=log_key, origin=origin, now=now)

    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._state.size

    def healthy(self) -> bool:
        """False after a failed write, until a later write succeeds (for good when someone
        else wrote to the log meanwhile); False once closed."""
        return self._healthy and not self._closed

    async def append(
        self, records: Sequence[LogRecord], escrow: StoredEscrow | None = None
    ) -> list[int]:
        """Store `records` (with `escrow` beside each of them) and return their sequence
        numbers once they are durable.

        Raises `AuditError` when a record cannot be encoded, the write fails or the store
        is closed; then none of the records is stored (unless a COMMIT that reported
        failure landed after all: the log errs towards an entry too many, never one too
        few).
        """
        try:
            bodies = [record.body() for record in records]
        except ValueError as exc:  # NaN or Infinity, which JSON cannot carry
            raise AuditError("an audit record could not be encoded as JSON") from exc
        if not bodies:
            return []
        if self._closed:
            raise AuditError("the audit store is closed")
        loop = asyncio.get_running_loop()
        pending = _Pending(bodies, escrow, loop.create_future())
        self._group.append(pending)
        if len(self._group) == 1:
            # One flush per loop iteration: every append made before it runs joins.
            loop.call_soon(self._flush)
        return await pending.future

    async def erase_expired_escrows(self) -> int:
        """Erase every escrow whose retention has ended; return how many were erased.

        Runs on the storage thread, a batch at a time, so appends go on between batches;
        then the storage purges the copies it kept (SQLite: a WAL checkpoint at the end
        removes the copies the WAL still holds; each erasure overwrote the escrow with
        zeros, ``secure_delete``).
        """
        return await self._eraser.erase_expired(self._exclusive)

    async def archive_policy_set(self, digest: str, sources: Iterable[tuple[str, str]]) -> bool:
        """Archive the policy set `sources` ((relative path, content) pairs) under its
        `digest`, durably, with now as its first use; return True when it was new.

        Archiving a set again changes nothing: its first use stays the first. The gateway
        archives its set before it serves with it, so every digest an entry names is in
        the archive. Raises `ValueError` when `digest` is not the digest of `sources`,
        `AuditError` when the set cannot be archived, and `PolicySetMismatch` when the
        archive holds something else under `digest` (it was changed behind the store's
        back: the archive could not show the text of this set).
        """
        files = tuple(sources)
        if policy_digest(files) != digest:
            raise ValueError("the digest is not the policy set's")
        stored = encode_policy_set(files)
        first_used = rfc3339_micro(self._now())
        storage = self._storage

        def archive() -> tuple[bool, bytes | None]:
            new = storage.archive_policy_set(digest, stored, first_used)
            return new, storage.policy_set(digest)

        try:
            new, kept = await self._exclusive(archive)
        except AuditError:
            raise
        except Exception as exc:
            log.error("a policy set could not be archived (%s)", _describe(exc))
            raise AuditError("the policy set could not be archived") from exc
        if kept is None:
            raise AuditError("the policy set could not be archived: it was not stored")
        decode_policy_set(digest, kept)  # what the DPO will read back is this very set
        return new

    async def add_cosignature(
        self, size: int, key_name: str, key_id: bytes, line: str, created_at: str
    ) -> bool:
        """Store a witness's cosignature (C2SP tlog-cosignature `line`, by the key named
        `key_name` with the 4-byte `key_id`) of the checkpoint at `size`, durably; True
        when it was stored now, False when that key's cosignature of that size is stored
        already (the first is kept).

        The store does not check the signature: the witness's key is the DPO's to trust,
        and whoever reads a cosignature verifies it. Raises `ValueError` when the log has
        no checkpoint of `size` (a witness cosigns only what the gateway signed), and
        `AuditError` when it cannot be stored.
        """
        cosignature = StoredCosignature(size, key_name, key_id, line, created_at)
        storage = self._storage
        try:
            return await self._exclusive(lambda: storage.add_cosignature(cosignature))
        except (AuditError, ValueError):
            raise
        except Exception as exc:
            log.error("a cosignature could not be stored (%s)", _describe(exc))
            raise AuditError("the cosignature could not be stored") from exc

    async def _exclusive(self, step: Callable[[], _T]) -> _T:
        """Run one step (an erasure batch, archiving a policy set) on the storage thread
        while no group is prepared or written: the recovery after a failed write reads the
        table from the loop. Steps asked for meanwhile wait their turn."""
        async with self._exclusive_turn:
            return await self._exclusive_step(step)

    async def _exclusive_step(self, step: Callable[[], _T]) -> _T:
        if self._closed:
            raise AuditError("the audit store is closed")
        self._holding = True  # no new group starts: the step cannot be starved
        try:
            while self._inflight is not None:
                ended = asyncio.wrap_future(self._inflight[1])
                await asyncio.wait([ended])
                _retrieved(ended)  # a failed write is `_finish`'s to report
                await asyncio.sleep(0)  # let the loop settle that commit first
            if self._closed:
                raise AuditError("the audit store is closed")
            erasing = self._executor.submit(step)
            self._erasing = erasing
            return await asyncio.wrap_future(erasing)
        finally:
            self._erasing = None
            self._holding = False
            if not self._closed:
                self._flush()

    def close(self) -> None:
        """Write what is pending (each group with its checkpoint), and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._erasing is not None:
            concurrent.futures.wait([self._erasing])
        if self._inflight is not None:
            prepared, inflight = self._inflight
            self._inflight = None
            concurrent.futures.wait([inflight])
            self._finish(prepared, inflight.exception())
        group, self._group = self._group, []
        if group and (last := self._prepare_or_fail(group)) is not None:
            self._write_and_wait(last)
        self._executor.shutdown(wait=True)
        self._storage.close()

    # -- group commit --------------------------------------------------------------------

    def _flush(self) -> None:
        """Start committing the waiting group, unless a commit is already in flight."""
        if self._inflight is not None or self._holding:
            return  # `_committed` (or `_exclusive`) flushes again when it ends
        group, self._group = self._group, []
        prepared = self._prepare_or_fail(group) if group else None
        if prepared is not None:
            self._submit(prepared)

    def _write_and_wait(self, prepared: _Prepared) -> None:
        """Write on the storage thread and block until it is settled (only when closing)."""
        write = self._executor.submit(self._storage.write, prepared.rows, prepared.checkpoint)
        concurrent.futures.wait([write])
        self._finish(prepared, write.exception())

    def _submit(self, prepared: _Prepared) -> None:
        """Hand a prepared write to the storage thread; `_committed` settles it."""
        inflight = self._executor.submit(self._storage.write, prepared.rows, prepared.checkpoint)
        self._inflight = (prepared, inflight)
        asyncio.wrap_future(inflight).add_done_callback(self._committed)

    def _committed(self, ended: asyncio.Future[None]) -> None:
        """The in-flight commit ended: settle it, then start the next group at once."""
        # `_finish` reads the failure from the thread's own future and reports it once.
        # This loop-side copy holds it too: unread, asyncio would log it again when it is
        # collected, as "Future exception was never retrieved" with the whole traceback.
        _retrieved(ended)
        if self._inflight is None:  # close() settled it already
            return
        prepared, inflight = self._inflight
        self._inflight = None
        self._finish(prepared, inflight.exception())
        self._flush()

    def _prepare_or_fail(self, group: list[_Pending]) -> _Prepared | None:
        """The group ready for its transaction; or None, its waiters failed."""
        if not self._recover():
            self._fail(group, self._changed_behind)
            return None
        try:
            return self._prepare(group)
        except Exception as exc:  # e.g. the checkpoint could not be signed
            self._fail(group, exc)
            return None

    def _fail(self, group: list[_Pending], error: BaseException | None) -> None:
        """Fail every waiter of a group that was not written (or may not have been)."""
        self._healthy = False
        if error is not None and error is not self._changed_behind:  # that one is logged
            self._report_failure(group, error)
        for pending in group:
            _settle(pending, AuditError("the audit log could not be written"), error)

    def _report_failure(self, group: list[_Pending], error: BaseException) -> None:
        """One line when writes start to fail, and again only when the cause changes.

        A full disk fails every group until it is freed, and a busy gateway writes
        several groups a second: a line each would bury everything else. The line names
        the error's class (and a driver's code name, e.g. ``SQLITE_FULL``), never its
        message, which could quote what was written.
        """
        self._failed_writes += 1
        cause = _describe(error)
        if cause == self._failing:
            return
        self._failing = cause
        entries = sum(len(pending.bodies) for pending in group)
        what = f"{entries} entries" if entries else "a checkpoint"
        log.error(
            "audit write of %s failed (%s): requests fail closed until a write succeeds; "
            "further failures like it are not logged",
            what,
            cause,
        )

    def _report_recovery(self) -> None:
        if self._failing is None:
            return
        log.warning("audit writes succeed again, after %d failed", self._failed_writes)
        self._failing = None
        self._failed_writes = 0

    def _write_failed(self, landed: LogState) -> None:
        """A transaction failed; the table holds the committed state or, if it landed, `landed`."""
        self._healthy = False
        self._possible = (self._state, landed)

    def _recover(self) -> bool:
        """After a failed write, learn which state the table holds; False while unknown,
        and for good once it holds neither."""
        if self._possible is None:
            return True
        if self._changed_behind is not None:
            return False
        try:
            head = read_head(self._storage)
        except Exception as exc:  # tried again before the next group
            self._healthy = False
            log.error("audit state could not be read: %s", _describe(exc))  # not its message
            return False
        state = match_state(head, self._possible)
        if state is None:
            # Someone else wrote. Rebuilding the state from the table would have the next
            # checkpoint sign their rows: rather append nothing more, until an operator
            # has looked (at the next start, the store refuses a log it does not cover).
            self._changed_behind = changed_behind(self._storage.location, head, self._possible)
            log.error("%s", self._changed_behind.detail)
            return False
        self._state = state
        self._possible = None
        return True

    def _prepare(self, group: list[_Pending]) -> _Prepared:
        """Number, chain and hash a group against the committed state (on the loop)."""
        state = self._state
        tree = state.tree.copy()
        seq, prev = state.size, state.last_leaf
        rows: list[EntryRow] = []
        assigned: list[list[int]] = []
        for pending in group:
            seqs = []
            escrow = pending.escrow
            sealed, expires = (escrow.sealed, escrow.expires) if escrow else (None, None)
            for body in pending.bodies:
                seq += 1
                leaf = entry_leaf_hash(seq, prev, body)
                rows.append((seq, prev, body, sealed, expires))
                tree.append(leaf)
                seqs.append(seq)
                prev = leaf
            assigned.append(seqs)
        # The group's own checkpoint, over the tree built here from the gateway's own
        # entries: never over rows read back from the table.
        checkpoint = self._checkpoint_row(tree)
        return _Prepared(group, rows, assigned, LogState(prev, tree), checkpoint)

    def _finish(self, prepared: _Prepared, error: BaseException | None) -> None:
        """Settle a group's waiters once its transaction has ended (on the loop)."""
        if error is not None:  # whatever it was, the waiters must hear of it
            self._write_failed(prepared.state)  # the commit may have landed all the same
            self._fail(prepared.group, error)
            return
        self._state = prepared.state
        self.commit_count += 1
        self._healthy = True
        self._report_recovery()
        for pending, seqs in zip(prepared.group, prepared.assigned, strict=True):
            _settle(pending, seqs)

    def _checkpoint_row(self, tree: CompactRange) -> StoredCheckpoint:
        return group_checkpoint(tree, origin=self._origin, log_key=self._log_key, now=self._now)


def group_checkpoint(
    tree: CompactRange, *, origin: str, log_key: Ed25519PrivateKey, now: Clock
) -> StoredCheckpoint:
    """The checkpoint a commit group carries: over `tree` (the log including the group),
    signed by the log key (named by the origin) and stamped `now`. One per group: its
    cost is the store's own per-group work that `bench/` reports."""
    cp = Checkpoint(origin=origin, size=tree.size, root=tree.root())
    note = sign_checkpoint(cp, origin, log_key)  # key name = origin
    return StoredCheckpoint(cp.size, cp.root, note, rfc3339_micro(now()))


def _settle(
    pending: _Pending, result: list[int] | AuditError, cause: BaseException | None = None
) -> None:
    """Resolve one waiter (we are on its event loop)."""
    if pending.future.done():  # the waiter was cancelled; its entries stay logged
        return
    if isinstance(result, AuditError):
        result.__cause__ = cause
        pending.future.set_exception(result)
    else:
        pending.future.set_result(result)


def _retrieved(ended: asyncio.Future[Any]) -> None:
    """Mark a loop-side copy of the storage thread's future as read."""
    if not ended.cancelled():
        ended.exception()


def _describe(error: BaseException) -> str:
    """The error's class, and the code name a driver gives it (sqlite3's
    ``sqlite_errorname``): what an operator acts on, without the message."""
    code = getattr(error, "sqlite_errorname", None)
    name = type(error).__name__
    return f"{name}, {code}" if isinstance(code, str) and code else name


def _check_signing(log_key: Ed25519PrivateKey, origin: str) -> None:
    # Sign one note (not stored), so a bad origin or key name fails here and not at the
    # first checkpoint, which would fail every batch that carries it.
    sign_checkpoint(Checkpoint(origin=origin, size=0, root=EMPTY_ROOT), origin, log_key)
