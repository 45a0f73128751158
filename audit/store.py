"""The durable, append-only audit store with group commit on the event loop.

`append` adds its batch to the waiting group and waits. On the event loop, the group is
numbered, chained and hashed, and its checkpoint signed when one is due; then one
transaction writes it and commits (one fsync for all of it) on a single SQLite thread,
and only then is each waiter resolved with its sequence numbers. At most one transaction
is in flight: whatever arrives meanwhile forms the next group, so the busier the gateway,
the more requests share each fsync.

The thread does nothing but run SQLite, which releases the GIL; all Python work stays on
the loop. An earlier design did it all on a writer thread, and on the 2-core reference
machine the GIL hand-offs cost about a third more CPU per disclosure (measured). For the
same reason a group goes in as one multi-row INSERT (one statement, and so its own
transaction, unless a checkpoint rides along): each statement hands the GIL back and
forth once, and on a busy loop every hand-off waits. With a statement per row a commit
took 7 to 8 ms under load; with one per group, about 1 ms (measured, `bench/`).

The store keeps the last leaf hash and the compact range in memory, rebuilt from the
table at open. When the size has grown by `checkpoint_every` entries, or
`checkpoint_interval_s` has passed, it signs a checkpoint into the same transaction as
the entries (an Ed25519 signature and an O(log n) root: tens of microseconds); a timer
signs one when the log goes idle, and `close()` always does. Either is written like any
group: on the SQLite thread, settled by the same `_finish`.

Escrows (`StoredEscrow`) are written beside their entries' bodies in the same statement.
`erase_expired_escrows` erases those whose retention has ended, a batch at a time on the
SQLite thread; no group is prepared or written while a batch runs, and groups go in
between batches. Then it truncates the WAL, so no copy of an erased escrow stays there;
while a reader keeps that from happening, every later sweep tries again, and so does the
first sweep of the next store opened on the file (the WAL outlives a writer that closes
while a reader has it open).

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
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit._schema import (
    BUSY_TIMEOUT_MS,
    ERASE_EXPIRED_ESCROWS,
    INSERT_CHECKPOINT,
    MAX_ROWS_PER_INSERT,
    SELECT_ENTRIES,
    SELECT_LAST_ENTRY,
    SELECT_LATEST_CHECKPOINT,
    SELECT_LATEST_NOTE,
    create_writer_engine,
    driver_connection,
    insert_entries,
    lock_writer,
)
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.clock import Clock, rfc3339_micro, utc_now
from audit.entry import GENESIS_PREV, AuditRecord, StoredEscrow, entry_leaf_hash
from audit.errors import AuditError, CheckpointError
from audit.hasher import EMPTY_ROOT
from audit.tree import CompactRange

__all__ = ["AuditStore"]

log = logging.getLogger(__name__)

CheckpointRow = tuple[int, bytes, str, str]
EntryRow = tuple[int, bytes, bytes, str | None, int | None]

ERASE_BATCH = 1000
"""Escrows erased per statement: a long backlog does not hold up the group commits."""


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
    state: _LogState
    checkpoint: CheckpointRow | None


@dataclass
class _LogState:
    """What the store knows about the committed log."""

    last_leaf: bytes
    tree: CompactRange
    checkpoint_size: int

    @property
    def size(self) -> int:
        return self.tree.size


class AuditStore:
    """Appends audit records durably; use `AuditStore.open`."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        close_connection: Callable[[], None],
        state: _LogState,
        *,
        log_key: Ed25519PrivateKey,
        origin: str,
        checkpoint_every: int,
        checkpoint_interval_s: float,
        clock: Callable[[], float],
        now: Clock,
    ) -> None:
        self._conn = connection
        self._close_connection = close_connection
        self._state = state
        self._log_key = log_key
        self._origin = origin
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._now = now
        self._checkpoint_time = clock()
        self._group: list[_Pending] = []
        # At most one transaction in flight, on one thread that does nothing but SQLite
        # (which releases the GIL): the loop keeps serving requests meanwhile, and they
        # form the next group.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._inflight: tuple[_Prepared, concurrent.futures.Future[None]] | None = None
        # An erasure step waiting for, or running on, the SQLite thread: groups wait
        # for it (see `_exclusive`).
        self._holding = False
        self._erasing: concurrent.futures.Future[Any] | None = None
        # Whether the WAL may still hold an erased escrow: until a truncating checkpoint
        # succeeds. True at open, since an earlier process may have left one there.
        self._wal_holds_erased = True
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._healthy = True
        # After a failed write: the states the table may hold (before it, or with it).
        self._possible: tuple[_LogState, _LogState] | None = None
        self._reloaded_at: float | None = None  # the last full rebuild after a failure
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
        """Open (or create) the log at `path`.

        Raises `AuditError` when the stored log is not consistent with itself or its
        latest checkpoint: appending to it would sign a checkpoint that contradicts one
        signed before. `doelpoort audit verify` names the first bad entry. Raises
        `ValueError` for an origin or key name that no checkpoint could carry.
        """
        if checkpoint_every < 1 or checkpoint_interval_s <= 0:
            raise ValueError("checkpoint_every and checkpoint_interval_s must be positive")
        # Sign one note (not stored), so a bad origin or key name fails here and not at
        # the first checkpoint, which would fail every batch that carries it.
        sign_checkpoint(Checkpoint(origin=origin, size=0, root=EMPTY_ROOT), origin, log_key)
        lock = lock_writer(path)
        try:
            engine = create_writer_engine(path)
            proxy = engine.raw_connection()
        except BaseException as exc:
            os.close(lock)
            if isinstance(exc, AuditError) or not isinstance(exc, Exception):
                raise
            raise AuditError(f"cannot open the audit database {path}") from exc

        def close_connection() -> None:
            try:
                proxy.close()
                engine.dispose()
            finally:
                os.close(lock)  # the next writer may start

        conn = driver_connection(proxy)
        conn.isolation_level = None  # transactions are explicit: BEGIN IMMEDIATE … COMMIT
        try:
            state = _load_state(conn)
            _check_signer(conn, log_key, origin, path)
        except BaseException:
            close_connection()
            raise
        return cls(
            conn,
            close_connection,
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
        self, records: Sequence[AuditRecord], escrow: StoredEscrow | None = None
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

        Runs on the SQLite thread, a batch at a time, so appends go on between batches.
        Each erasure overwrites the escrow with zeros (``secure_delete``); a WAL checkpoint
        at the end removes the copies the WAL still holds.
        """
        now = int(self._now().timestamp())
        erased = 0
        while True:
            batch: int = await self._exclusive(self._erase_batch, now)
            erased += batch
            if batch:
                self._wal_holds_erased = True
            if batch < ERASE_BATCH:
                break
        if self._wal_holds_erased:
            self._wal_holds_erased = not await self._exclusive(self._truncate_wal)
        return erased

    async def _exclusive(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run one erasure step on the SQLite thread while no group is prepared or
        written: the recovery after a failed write reads the table from the loop."""
        if self._closed:
            raise AuditError("the audit store is closed")
        if self._holding:
            raise RuntimeError("one erasure at a time")
        self._holding = True  # no new group starts: the step cannot be starved
        try:
            while self._inflight is not None:
                await asyncio.wait([asyncio.wrap_future(self._inflight[1])])
                await asyncio.sleep(0)  # let the loop settle that commit first
            if self._closed:
                raise AuditError("the audit store is closed")
            self._erasing = self._executor.submit(step, *args)
            return await asyncio.wrap_future(self._erasing)
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
        self._close_connection()

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
        """Write on the SQLite thread and block until it is settled (only when closing)."""
        write = self._executor.submit(self._transaction, prepared.rows, prepared.checkpoint)
        concurrent.futures.wait([write])
        self._finish(prepared, write.exception())

    def _submit(self, prepared: _Prepared) -> None:
        """Hand a prepared write to the SQLite thread; `_committed` settles it."""
        inflight = self._executor.submit(self._transaction, prepared.rows, prepared.checkpoint)
        self._inflight = (prepared, inflight)
        asyncio.wrap_future(inflight).add_done_callback(lambda _: self._committed())

    def _committed(self) -> None:
        """The in-flight commit ended: settle it, then start the next group at once."""
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
            self._submit(prepared)  # on the SQLite thread, like every other write

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
            entries = sum(len(pending.bodies) for pending in group)
            what = f"{entries} entries" if entries else "a checkpoint"
            log.error("audit write of %s failed: %s: %s", what, type(error).__name__, error)
        for pending in group:
            _settle(pending, AuditError("the audit log could not be written"), error)

    def _write_failed(self, landed: _LogState) -> None:
        """A transaction failed; the table holds the committed state or, if it landed, `landed`."""
        self._healthy = False
        self._possible = (self._state, landed)

    def _recover(self) -> bool:
        """After a failed write, learn which state the table holds; False while unknown."""
        if self._possible is None:
            return True
        try:
            self._end_stray_transaction()
            state = _match_state(self._conn, self._possible)
            if state is None:  # neither: someone else wrote; rebuild from the whole table
                now = self._clock()
                if self._reloaded_at is not None and (
                    now - self._reloaded_at < self._checkpoint_interval_s
                ):
                    return False  # O(n): at most once per interval
                self._reloaded_at = now
                state = _load_state(self._conn)
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
            group, rows, assigned, _LogState(prev, tree, state.checkpoint_size), checkpoint
        )

    def _finish(self, prepared: _Prepared, error: BaseException | None) -> None:
        """Settle a group's waiters once its transaction has ended (on the loop)."""
        if error is not None:  # whatever it was, the waiters must hear of it
            landed = prepared.state  # the commit may have landed all the same
            if prepared.checkpoint is not None:
                landed = replace(landed, checkpoint_size=prepared.checkpoint[0])
                self._checkpoint_time = self._clock()  # retry after an interval, not at once
            self._write_failed(landed)
            self._fail(prepared.group, error)
            return
        self._state = prepared.state
        if prepared.rows:
            self.commit_count += 1
        self._healthy = True
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

    def _checkpoint_row(self, tree: CompactRange) -> CheckpointRow:
        cp = Checkpoint(origin=self._origin, size=tree.size, root=tree.root())
        note = sign_checkpoint(cp, self._origin, self._log_key)  # key name = origin
        return (cp.size, cp.root, note, rfc3339_micro(self._now()))

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

    def _checkpoint_written(self, checkpoint: CheckpointRow) -> None:
        self._state.checkpoint_size = checkpoint[0]
        self._checkpoint_time = self._clock()

    def _transaction(self, rows: list[EntryRow], checkpoint: CheckpointRow | None) -> None:
        """Write ``rows`` and ``checkpoint`` atomically and durably (on the SQLite thread)."""
        self._end_stray_transaction()
        chunks = [
            rows[start : start + MAX_ROWS_PER_INSERT]
            for start in range(0, len(rows), MAX_ROWS_PER_INSERT)
        ]
        cur = self._conn.cursor()
        try:
            if checkpoint is None and len(chunks) == 1:
                # One statement is its own transaction: atomic, and durable when it
                # returns (synchronous=FULL), with one GIL round trip instead of three.
                _insert(cur, chunks[0])
                return
            cur.execute("BEGIN IMMEDIATE")
            try:
                for chunk in chunks:
                    _insert(cur, chunk)
                if checkpoint is not None:
                    cur.execute(INSERT_CHECKPOINT, checkpoint)
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()

    def _erase_batch(self, now: int) -> int:
        """Erase up to ERASE_BATCH expired escrows (on the SQLite thread)."""
        self._end_stray_transaction()
        return self._conn.execute(ERASE_EXPIRED_ESCROWS, (now, ERASE_BATCH)).rowcount

    def _truncate_wal(self) -> bool:
        """Checkpoint the WAL into the database and truncate it (on the SQLite thread);
        False when a reader kept it from happening. Never waits for readers: appends
        queue behind this."""
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:
            log.warning(
                "the audit WAL could not be truncated while a reader had it open: erased "
                "escrows stay in it until a later sweep truncates it"
            )
        return not busy

    def _end_stray_transaction(self) -> None:
        """Roll back a transaction a failed ROLLBACK left open; raise if it cannot be.

        Otherwise the next write would sit in it uncommitted, its waiters told "durable",
        and the recovery check would read those uncommitted rows as landed.
        """
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _insert(cur: sqlite3.Cursor, rows: list[EntryRow]) -> None:
    cur.execute(insert_entries(len(rows)), [value for row in rows for value in row])


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


def _load_state(conn: sqlite3.Connection) -> _LogState:
    """Rebuild the chain head and compact range from the table, checking as it goes."""
    latest = conn.execute(SELECT_LATEST_CHECKPOINT).fetchone()
    checkpoint_size, checkpoint_root = (latest[0], latest[1]) if latest else (0, None)
    tree = CompactRange()
    size, last_leaf = 0, GENESIS_PREV
    cur = conn.execute(SELECT_ENTRIES, (1,))
    try:
        for seq, prev, body in cur:
            size += 1
            if seq != size or prev != last_leaf:
                raise _inconsistent(size)
            last_leaf = entry_leaf_hash(seq, prev, body)
            tree.append(last_leaf)
            if size == checkpoint_size and tree.root() != checkpoint_root:
                raise _inconsistent(size)
    finally:
        cur.close()
    if checkpoint_size > size:
        raise _inconsistent(size + 1)
    return _LogState(last_leaf, tree, checkpoint_size)


def _check_signer(
    conn: sqlite3.Connection, log_key: Ed25519PrivateKey, origin: str, path: Path
) -> None:
    """Refuse a log whose latest checkpoint this deployment did not sign: appending to
    another deployment's log (or one signed by a replaced key) would fork it."""
    row = conn.execute(SELECT_LATEST_NOTE).fetchone()
    if row is None:
        return
    try:
        open_checkpoint(row[0], origin, log_key.public_key(), origin)
    except CheckpointError as exc:
        raise AuditError(
            f"the audit log {path} is not this deployment's: its latest checkpoint is not"
            f" signed by this deployment's log key for {origin} ({exc}). Appending would fork"
            " it: restore the right log key, or move the log away to start a new one."
        ) from exc


def _match_state(conn: sqlite3.Connection, possible: Sequence[_LogState]) -> _LogState | None:
    """The one of `possible` that the table holds, by its last entry and latest checkpoint.

    The last entry's leaf hash chains back through every entry before it, so the seq and
    leaf of the last row tell the candidates apart in O(1).
    """
    row = conn.execute(SELECT_LAST_ENTRY).fetchone()
    latest = conn.execute(SELECT_LATEST_CHECKPOINT).fetchone()
    found = (
        row[0] if row else 0,
        entry_leaf_hash(*row) if row else GENESIS_PREV,
        latest[0] if latest else 0,
    )
    for state in possible:
        if (state.size, state.last_leaf, state.checkpoint_size) == found:
            return state
    return None


def _inconsistent(seq: int) -> AuditError:
    return AuditError(
        f"the audit log is not intact near seq {seq}; refusing to append. "
        "Run `doelpoort audit verify` for the first bad entry."
    )
