"""The DPO's queries on a SQLite log (`SQLiteQueries`, a `LogQueries`).

Every selection is an indexed search, newest first or oldest first by seq. Each filter
column has an index on (column, seq) — SQLite appends the rowid, which is the seq, to
every index — so one equality narrows the search to that column's entries already in
seq order, and keyset paging (``seq < before``) starts where the last page ended. When
several filters are given, the search is driven by the index with the fewest entries
for its value (counted up to `DRIVER_PROBE`, from the index alone) and the others are
checked on each entry it yields: SQLite uses one index per table, and the rarest one
reads the fewest entries. The plan is fixed with ``INDEXED BY`` (or ``NOT INDEXED``, for
a search by seq alone), so no selection ever falls back to reading the whole table.

A period is a range of seq: entries are appended in the order they were decided, up to
the seconds a request takes between its decision and its commit, so two bisections
over seq (a point look-up each) find where it starts and ends, widened by
`PERIOD_SLACK`; each entry in the range is then checked against the period itself.
A refusal problem code matches the refusals with that problem and the refusal summaries
that count it: the union of two small partial indexes (refusals are rate-limited).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta

from audit.storage.interface import ChainRow, RequestKey, Selection
from audit.storage.tables import FILTER_FIELDS, REF_TABLES

DRIVER_PROBE = 2048
"""Entries counted per candidate index when choosing which drives a search."""
PERIOD_SLACK = timedelta(hours=1)
"""How far an entry's time may lag behind an entry committed before it: a request's
decision is stamped before its datasets are fetched and it is committed."""
FETCH_ROWS = 1024
"""Entries fetched per call into the driver while streaming a selection."""

_COLUMNS = frozenset(FILTER_FIELDS) - {"time"}
_ROW = "seq, CAST(prev AS BLOB), CAST(body AS BLOB)"
_SECONDS = "%Y-%m-%dT%H:%M:%S"
_REFUSALS = (
    "seq IN (SELECT seq FROM entries INDEXED BY ix_entries_problem WHERE problem = ? AND "
    "seq >= ? AND seq < ? UNION ALL SELECT seq FROM entries INDEXED BY ix_entries_kind "
    "WHERE kind = 'refusal-summary' AND seq >= ? AND seq < ?)"
)


class SQLiteQueries:
    """The DPO's queries on one read transaction; use `SQLiteReadOnlyStorage.queries`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._periods: dict[tuple[str | None, str | None], _Period] = {}

    def entry(self, seq: int) -> ChainRow | None:
        row: ChainRow | None = self._conn.execute(
            f"SELECT {_ROW} FROM entries WHERE seq = ?",  # noqa: S608
            (seq,),
        ).fetchone()
        return row

    def entries_at(self, seqs: Collection[int]) -> list[ChainRow]:
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        return self._conn.execute(
            f"SELECT {_ROW} FROM entries WHERE seq IN ({marks}) ORDER BY seq",  # noqa: S608
            tuple(seqs),
        ).fetchall()

    def disclosures(self, disclosure_ids: Collection[str]) -> list[ChainRow]:
        if not disclosure_ids:
            return []
        marks = ",".join("?" * len(disclosure_ids))
        return self._conn.execute(
            f"SELECT {_ROW} FROM entries INDEXED BY ix_entries_disclosure_id "  # noqa: S608
            f"WHERE disclosure_id IN ({marks}) AND kind IS NULL ORDER BY seq",
            tuple(disclosure_ids),
        ).fetchall()

    def newest(self, selection: Selection, before: int | None, limit: int) -> list[RequestKey]:
        period = self._period(selection)
        top = period.hi + 1 if before is None else min(period.hi + 1, before)
        source, where, params = self._search(selection, period, top)
        statement = (
            "SELECT seq, CASE WHEN kind IS NULL THEN disclosure_id END "  # noqa: S608
            f"FROM {source} WHERE {where} ORDER BY seq DESC LIMIT ?"
        )
        return self._conn.execute(statement, (*params, limit)).fetchall()

    def matches_from(self, selection: Selection, disclosure_id: str, start: int) -> bool:
        where, params = _conditions(selection, "disclosure_id", self._period(selection))
        statement = (
            "SELECT 1 FROM entries INDEXED BY ix_entries_disclosure_id "  # noqa: S608
            f"WHERE disclosure_id = ? AND kind IS NULL AND seq >= ? AND {where} LIMIT 1"
        )
        return self._conn.execute(statement, (disclosure_id, start, *params)).fetchone() is not None

    def matching(self, selection: Selection) -> Generator[ChainRow, None, None]:
        period = self._period(selection)
        source, where, params = self._search(selection, period, period.hi + 1)
        cur = self._conn.execute(
            f"SELECT {_ROW} FROM {source} WHERE {where} ORDER BY seq",  # noqa: S608
            params,
        )
        try:
            while rows := cur.fetchmany(FETCH_ROWS):
                yield from rows
        finally:
            cur.close()

    def with_refs(self, table: str, refs: Collection[str]) -> list[ChainRow]:
        if table not in REF_TABLES:
            raise ValueError(f"no reference table {table!r}")
        if not refs:
            return []
        marks = ",".join("?" * len(refs))
        return self._conn.execute(
            f"SELECT {_ROW} FROM entries WHERE seq IN "  # noqa: S608
            f"(SELECT seq FROM {table} WHERE ref IN ({marks})) ORDER BY seq",
            tuple(refs),
        ).fetchall()

    # -- planning -------------------------------------------------------------------------

    def _search(
        self, selection: Selection, period: _Period, top: int
    ) -> tuple[str, str, tuple[object, ...]]:
        """FROM clause, WHERE clause and parameters of the entries that match with
        ``period.lo <= seq < top``, driven by the index that reads the fewest entries."""
        lo = period.lo
        if selection.problem is not None:
            # Refusals with that problem, and refusal summaries (few: one per partner per
            # minute at most); the summaries' counts are checked in `where`.
            where, params = _conditions(selection, None, period)
            driven = (selection.problem, lo, top, lo, top)
            return "entries NOT INDEXED", f"{_REFUSALS} AND {where}", (*driven, *params)
        driver = self._driver(selection, lo, top)
        where, params = _conditions(selection, driver, period)
        source = (
            "entries NOT INDEXED" if driver is None else f"entries INDEXED BY ix_entries_{driver}"
        )
        return source, f"{where} AND seq >= ? AND seq < ?", (*params, lo, top)

    def _driver(self, selection: Selection, lo: int, top: int) -> str | None:
        """The filter column whose index holds the fewest entries for its value in the
        range (None: search by seq alone)."""
        columns = [column for column, _ in selection.equal]
        if len(columns) <= 1:
            return columns[0] if columns else None
        counts = {}
        for column, value in selection.equal:
            (counts[column],) = self._conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM entries "  # noqa: S608
                f"INDEXED BY ix_entries_{column} WHERE {column} = ? AND seq >= ? AND seq < ? "
                "LIMIT ?)",
                (value, lo, top, DRIVER_PROBE),
            ).fetchone()
        return min(columns, key=lambda column: counts[column])

    def _period(self, selection: Selection) -> _Period:
        """The seqs that can hold an entry of the selection's period, and those that
        certainly do."""
        key = (selection.since, selection.until)
        found = self._periods.get(key)
        if found is None:
            (last,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()
            since, until = selection.since, selection.until
            conn = self._conn
            found = _Period(
                lo=1 if since is None else first_seq_at(conn, shift(since, -1), last),
                hi=last if until is None else first_seq_at(conn, shift(until, 1), last) - 1,
                inner_lo=1 if since is None else first_seq_at(conn, shift(since, 1), last),
                inner_hi=last if until is None else first_seq_at(conn, shift(until, -1), last) - 1,
                since=since,
                until=until,
            )
            self._periods[key] = found
        return found


def first_seq_at(conn: sqlite3.Connection, moment: str, last: int) -> int:
    """The first seq at which the log's time reaches `moment` (second precision), as far
    as bisection can tell in a log whose order of time is that of seq only up to
    `PERIOD_SLACK`: every entry before the answer has a time below `moment` +
    `PERIOD_SLACK`, every entry from it on one at or above `moment` - `PERIOD_SLACK`.
    A point look-up a step; the console's searches and the statistics share it."""
    lo, hi = 1, last + 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            "SELECT substr(time, 1, 19) FROM entries WHERE seq = ?", (mid,)
        ).fetchone()
        if row is not None and (row[0] or "") >= moment:
            hi = mid
        else:
            lo = mid + 1
    return lo


def shift(moment: str, direction: int) -> str:
    """`moment` moved by `PERIOD_SLACK`, earlier (-1) or later (1)."""
    shifted = datetime.strptime(moment, _SECONDS) + direction * PERIOD_SLACK
    return shifted.strftime(_SECONDS)


@dataclass(frozen=True)
class _Period:
    """A period as seqs: entries in [lo, hi] may fall in it (each is checked against it,
    from its body); those in [inner_lo, inner_hi] certainly do (none is read for it)."""

    lo: int
    hi: int
    inner_lo: int
    inner_hi: int
    since: str | None
    until: str | None


def _conditions(
    selection: Selection, driver: str | None, period: _Period
) -> tuple[str, tuple[object, ...]]:
    """The selection as one WHERE clause checked on each entry the `driver` column's
    index yields, and its parameters. The other filter columns are checked in their own
    indexes (a look-up of value and seq each), not in the body: reading and parsing a
    body costs several times more, and an intersection that is empty or sparse would
    read every body the driver yields."""
    terms: list[str] = []
    params: list[object] = []
    for column, value in selection.equal:
        if column not in _COLUMNS:
            raise ValueError(f"no filter column {column!r}")
        if column == driver:
            terms.append(f"{column} = ?")
        else:
            terms.append(
                f"EXISTS (SELECT 1 FROM entries AS other INDEXED BY ix_entries_{column} "  # noqa: S608
                f"WHERE other.{column} = ? AND other.seq = entries.seq)"
            )
        params.append(value)
    if selection.decisions_only:
        terms.append("kind IS NULL")
    if selection.problem is not None:
        terms.append(
            "(problem = ? OR (kind = 'refusal-summary' AND json_extract(body, ?) IS NOT NULL))"
        )
        params += [selection.problem, f'$.counts."{selection.problem}"']
    if period.since is not None or period.until is not None:
        # Only an entry near either end of the period is read for its time.
        bounds = []
        if period.since is not None:
            bounds.append("substr(time, 1, 19) >= ?")
            params_since: list[object] = [period.since]
        else:
            params_since = []
        if period.until is not None:
            bounds.append("substr(time, 1, 19) < ?")
        terms.append(f"(seq BETWEEN ? AND ? OR ({' AND '.join(bounds)}))")
        params += [period.inner_lo, period.inner_hi, *params_since]
        if period.until is not None:
            params.append(period.until)
    return " AND ".join(terms) or "1", tuple(params)
