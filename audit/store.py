"""The durable, append-only audit store with group commit on the event loop.

`append` adds its batch to the waiting group and waits. On the event loop, the group is
numbered, chained and hashed, and its checkpoint signed when one is due; then one
transaction writes it and commits (one fsync for all of it) on a single storage thread,
and only then is each waiter resolved with its sequence numbers. At most one transaction
is in flight: whatever arrives meanwhile forms the next group, so the busier the gateway,
the more requests share each fsync.

The thread does nothing but run the storage (`audit.storage`), whose driver releases the
GIL; all Python work stays on the loop. An earlier design did it all on a writer thread,
and on the 2-core reference machine the GIL hand-offs cost about a third more CPU per
disclosure (measured). For the same reason a group goes to the storage as one call, which
SQLite turns into one multi-row INSERT (`audit.storage.sqlite.statements`).

The store keeps the last leaf hash and the compact range in memory (`audit.state`),
rebuilt from the table at open. When the size has grown by `checkpoint_every` entries, or
`checkpoint_interval_s` has passed, it signs a checkpoint into the same transaction as
the entries (an Ed25519 signature and an O(log n) root: tens of microseconds); a timer
signs one when the log goes idle, and `close()` always does. Either is written like any
group: on the storage thread, settled by the same `_finish`.

Expired escrows are erased by `audit.retention`, a batch at a time on the storage thread;
no group is prepared or written while a batch runs, and groups go in between batches.

A failed write may still have landed (the COMMIT reached the disk, then the error came),
so the table holds either the state from before it or the one it prepared. Before it
writes again, the store reads the last entry and the latest checkpoint to tell which, in
O(1). Only when the table holds neither does it rebuild its state from the whole table,
at most once per `checkpoint_interval_s`; until it knows the state, every append fails at
once and the store stays unhealthy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.clock import Clock, rfc3339_micro, utc_now
from audit.entry import LogRecord, StoredEscrow, entry_leaf_hash
from audit.errors import AuditError
from audit.hasher import EMPTY_ROOT
from audit.retention import EscrowEraser
from audit.state import LogState, check_signer, load_state, match_state
from audit.storage.interface import EntryRow, LogStorage, StoredCheckpoint
from audit.storage.sqlite.writer import SQLiteStorage
from audit.tree import CompactRange

__all__ = ["AuditStore"]

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
    checkpoint: StoredCheckpoint | None


class AuditStore:
    """Appends audit records durably; use `AuditStore.open` (or `AuditStore.on_storage`)."""

    def __init__(
        self,
        storage: LogStorage,
        state: LogState,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        checkpoint_every: int,
        checkpoint_interval_s: float,
        clock: Callable[[], float],
        now: Clock,
    ) -> None:
        self._storage = storage
        self._state = state
        self._log_key = log_key
        self._origin = origin
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._now = now
        self._checkpoint_time = clock()
        self._group: list[_Pending] = []
        # At most one transaction in flight, on one thread that does nothing but the
        # storage's calls (whose driver releases the GIL): the loop keeps serving
        # requests meanwhile, and they form the next group.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._inflight: tuple[_Prepared, concurrent.futures.Future[None]] | None = None
        # An erasure step waiting for, or running on, the storage thread: groups wait
        # for it (see `_exclusive`).
        self._holding = False
        self._erasing: concurrent.futures.Future[Any] | None = None
        self._eraser = EscrowEraser(storage, now)
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._healthy = True
        # After a failed write: the states the table may hold (before it, or with it).
        self._possible: tuple[LogState, LogState] | None = None
        self._reloaded_at: float | None = None  # the last full rebuild after a failure
        self._failing: str | None = None  # the cause last logged, until a write succeeds
        self._failed_writes = 0  # since the last success
        self.commit_count = 0
        """Transactions that committed entries: fewer than batches when commits are shared."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Clock = utc_now,
    ) -> AuditStore:
        """Open (or create) the SQLite log at `path`.

        Raises `AuditError` when the stored log is not consistent with itself or its
        latest checkpoint: appending to it would sign a checkpoint that contradicts one
        signed before. `doelpoort audit verify` names the first bad entry. Raises
        `ValueError` for an origin or key name that no checkpoint could carry.
        """
        # Before the file is made: a log that could never be appended to is not created.
        _check_options(log_key, origin, checkpoint_every, checkpoint_interval_s)
        return cls.on_storage(
            SQLiteStorage.open(path),
            log_key=log_key,
            origin=origin,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock,
            now=now,
        )

    @classmethod
    def on_storage(
        cls,
        storage: LogStorage,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Clock = utc_now,
    ) -> AuditStore:
        """A store appending to an opened `storage`, which it owns from now on (and
        closes, also when this raises). Raises as `open` does."""
        try:
            _check_options(log_key, origin, checkpoint_every, checkpoint_interval_s)
            state = load_state(storage)
            check_signer(storage, log_key, origin)
        except BaseException:
            storage.close()
            raise
        return cls(
            storage,
            state,
            log_key=log_key,
            origin=origin,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock,
            now=now,
        )

    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._state.size

    def healthy(self) -> bool:
        """False after a failed write, until a later write succeeds; False once closed."""
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

    async def _exclusive(self, step: Callable[[], _T]) -> _T:
        """Run one erasure step on the storage thread while no group is prepared or
        written: the recovery after a failed write reads the table from the loop."""
        if self._closed:
            raise AuditError("the audit store is closed")
        if self._holding:
            raise RuntimeError("one erasure at a time")
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
        """Write what is pending, sign a final checkpoint, and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
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
        if (final := self._prepare_checkpoint(force=True)) is not None:
            self._write_and_wait(final)
        self._executor.shutdown(wait=True)
        self._storage.close()

    # -- group commit --------------------------------------------------------------------

    def _flush(self) -> None:
        """Start committing the waiting group, unless a commit is already in flight."""
        if self._inflight is not None or self._holding:
            return  # `_committed` (or `_exclusive`) flushes again when it ends
        group, self._group = self._group, []
        prepared = self._prepare_or_fail(group) if group else None
        if prepared is None:  # nothing in flight and nothing waiting
            self._arm_idle_timer()
            return
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

    def _arm_idle_timer(self) -> None:
        """Sign a checkpoint once the log has been quiet for an interval."""
        if self._closed or self._idle_timer is not None:
            return
        if self._state.size <= self._state.checkpoint_size and self._possible is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, self._checkpoint_interval_s - (self._clock() - self._checkpoint_time))
        self._idle_timer = loop.call_later(delay, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self._closed or self._inflight is not None or self._holding or self._group:
            # Not idle after all: that commit carries the checkpoint, and its end re-arms us.
            return
        prepared = self._prepare_checkpoint(force=False)
        if prepared is None:
            self._arm_idle_timer()
        else:
            self._submit(prepared)  # on the storage thread, like every other write

    def _prepare_or_fail(self, group: list[_Pending]) -> _Prepared | None:
        """The group ready for its transaction; or None, its waiters failed."""
        if not self._recover():
            self._fail(group, None)
            return None
        try:
            return self._prepare(group)
        except Exception as exc:  # e.g. the checkpoint could not be signed
            self._fail(group, exc)
            return None

    def _fail(self, group: list[_Pending], error: BaseException | None) -> None:
        """Fail every waiter of a group that was not written (or may not have been)."""
        self._healthy = False
        if error is not None:
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
        """After a failed write, learn which state the table holds; False while unknown."""
        if self._possible is None:
            return True
        try:
            state = match_state(self._storage, self._possible)
            if state is None:  # neither: someone else wrote; rebuild from the whole table
                now = self._clock()
                if self._reloaded_at is not None and (
                    now - self._reloaded_at < self._checkpoint_interval_s
                ):
                    return False  # O(n): at most once per interval
                self._reloaded_at = now
                state = load_state(self._storage)
        except Exception as exc:
            self._healthy = False
            log.error("audit state could not be rebuilt: %s: %s", type(exc).__name__, exc)
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
        checkpoint = self._checkpoint_row(tree) if self._checkpoint_due(seq) else None
        return _Prepared(
            group, rows, assigned, LogState(prev, tree, state.checkpoint_size), checkpoint
        )

    def _finish(self, prepared: _Prepared, error: BaseException | None) -> None:
        """Settle a group's waiters once its transaction has ended (on the loop)."""
        if error is not None:  # whatever it was, the waiters must hear of it
            landed = prepared.state  # the commit may have landed all the same
            if prepared.checkpoint is not None:
                landed = replace(landed, checkpoint_size=prepared.checkpoint.size)
                self._checkpoint_time = self._clock()  # retry after an interval, not at once
            self._write_failed(landed)
            self._fail(prepared.group, error)
            return
        self._state = prepared.state
        if prepared.rows:
            self.commit_count += 1
        self._healthy = True
        self._report_recovery()
        if prepared.checkpoint is not None:
            self._checkpoint_written(prepared.checkpoint)
        for pending, seqs in zip(prepared.group, prepared.assigned, strict=True):
            _settle(pending, seqs)

    def _checkpoint_due(self, size: int) -> bool:
        grown = size - self._state.checkpoint_size
        if grown <= 0:
            return False
        waited = self._clock() - self._checkpoint_time
        return grown >= self._checkpoint_every or waited >= self._checkpoint_interval_s

    def _checkpoint_row(self, tree: CompactRange) -> StoredCheckpoint:
        cp = Checkpoint(origin=self._origin, size=tree.size, root=tree.root())
        note = sign_checkpoint(cp, self._origin, self._log_key)  # key name = origin
        return StoredCheckpoint(cp.size, cp.root, note, rfc3339_micro(self._now()))

    def _prepare_checkpoint(self, *, force: bool) -> _Prepared | None:
        """A write of a checkpoint alone, when one is due (``force``: whenever the log grew
        since the last one); None when none is, or it cannot be signed now."""
        if not self._recover():
            self._checkpoint_time = self._clock()  # retry after an interval, not at once
            return None
        state = self._state
        grown = state.size > state.checkpoint_size
        if not (force and grown) and not self._checkpoint_due(state.size):
            return None
        try:
            checkpoint = self._checkpoint_row(state.tree)
        except Exception as exc:
            self._fail([], exc)
            self._checkpoint_time = self._clock()
            return None
        return _Prepared([], [], [], replace(state), checkpoint)

    def _checkpoint_written(self, checkpoint: StoredCheckpoint) -> None:
        self._state.checkpoint_size = checkpoint.size
        self._checkpoint_time = self._clock()


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


def _check_options(
    log_key: Ed25519PrivateKey, origin: str, checkpoint_every: int, checkpoint_interval_s: float
) -> None:
    if checkpoint_every < 1 or checkpoint_interval_s <= 0:
        raise ValueError("checkpoint_every and checkpoint_interval_s must be positive")
    # Sign one note (not stored), so a bad origin or key name fails here and not at the
    # first checkpoint, which would fail every batch that carries it.
    sign_checkpoint(Checkpoint(origin=origin, size=0, root=EMPTY_ROOT), origin, log_key)
