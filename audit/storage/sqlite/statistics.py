"""The SQL behind the DPO's statistics (`audit.statistics`): GROUP BY queries over the
entries of a period, on a read-only connection.

No body leaves SQLite: every query aggregates in the database and hands back small
rows of names, buckets and counts (at most one row per requester, purpose and hour of
the period, for the requests), so a year of a million entries costs a few scans and
little memory. Times are grouped by their RFC 3339 text: ``substr(time, 1, 7)`` is the
UTC month, ``substr(time, 1, 13)`` the UTC hour (the caller turns hours into local
office hours, which SQLite cannot).

The filter columns (``time``, ``requester``, ``provider``, ``purpose``, ``decision``,
``kind``, ``problem``, ``policy_digest``, ``disclosure_id``) are the generated columns of
the entries table (schema version 1), so the rarer kinds (refusals, summaries,
re-identifications, policy changes) are read through their partial index on ``kind``;
other fields are read with ``json_extract``. A period is a range of seq found by the
same bisection over seq as the DPO's searches (`audit.storage.sqlite.queries`, whose
`PERIOD_SLACK` it uses), each entry in it then checked against the period itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from audit.errors import AuditError
from audit.storage.interface import StatisticsRows
from audit.storage.sqlite.queries import first_seq_at, shift
from audit.storage.tables import SCHEMA_VERSION

__all__ = ["UNREGISTERED_PURPOSE_REASON", "collect"]

# Fields read from the body (a decision has no kind; other kinds have no disclosure_id).
_KIND = "kind"
_DISCLOSURE_ID = "disclosure_id"
_POLICY_DIGEST = "policy_digest"

UNREGISTERED_PURPOSE_REASON = "% is not in the register"
"""How the shipped policy words a deny for a purpose the register does not hold
(policies/doelpoort/deny.rego): such requests count as probing."""


def _period(
    conn: sqlite3.Connection, since: str | None, until: str | None
) -> tuple[str, dict[str, str | int]]:
    """A WHERE clause for the entries with ``since <= time < until`` (None: unbounded),
    and its parameters: a range of seq (an index range, not a scan of the table) and
    the times themselves."""
    start, end = since, until  # to the second (`EntryFilter.selection`)
    (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()
    # Time is in seq order up to PERIOD_SLACK (as for the console's searches): the range
    # is widened by it, and each entry in it is checked against the period itself.
    lo = 1 if start is None else first_seq_at(conn, shift(start, -1), last)
    hi = last if end is None else first_seq_at(conn, shift(end, 1), last) - 1
    clauses = ["seq BETWEEN :lo AND :hi"]
    params: dict[str, str | int] = {"lo": lo, "hi": hi}
    if start is not None:
        clauses.append("substr(time, 1, 19) >= :since")
        params["since"] = start
    if end is not None:
        clauses.append("substr(time, 1, 19) < :until")
        params["until"] = end
    return " AND ".join(clauses), params


def collect(conn: sqlite3.Connection, since: str | None, until: str | None) -> StatisticsRows:
    """Every aggregate for entries with ``since <= time < until`` (None: unbounded), in
    one read transaction so that they agree with each other. `AuditError` for a log not
    yet upgraded to the schema with the DPO's columns."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version < SCHEMA_VERSION:
        raise AuditError(
            "the audit log has not been upgraded for the DPO's statistics yet: start the "
            "gateway once (`doelpoort serve`), which upgrades it in place, then try again "
            '(docs/dpo.md, "Upgrading an existing log")'
        )
    conn.execute("BEGIN")
    try:
        where, params = _period(conn, since, until)
        return StatisticsRows(
            decisions=_rows(conn, _DECISIONS.format(where=where), params),
            requests=_rows(conn, _REQUESTS.format(where=where), params),
            refusals=_rows(conn, _REFUSALS.format(where=where), params),
            summaries=_rows(conn, _SUMMARIES.format(where=where), params),
            field_ops=_rows(conn, _FIELD_OPS.format(where=where), params),
            reidentifications=_rows(conn, _REIDENTIFICATIONS.format(where=where), params),
            policy_changes=_rows(conn, _POLICY_CHANGES.format(where=where), params),
            history=(_rows(conn, _HISTORY, params) if since is not None else []),
        )
    finally:
        conn.execute("COMMIT")  # ends the read transaction (nothing was written)


def _rows(conn: sqlite3.Connection, statement: str, params: Mapping[str, object]) -> list[Any]:
    """The statement's rows (plain tuples: names, buckets and counts)."""
    return conn.execute(statement, params).fetchall()


# Dataset decisions (entries without a kind), in one scan: the tables, the policy
# versions (first and last use) and the legal bases all come from these rows.
_DECISIONS = f"""
SELECT requester, purpose, provider, substr(time, 1, 7) AS month, decision,
       {_POLICY_DIGEST}, json_extract(body, '$.legal_basis') AS basis,
       min(time), max(time), count(*)
FROM entries WHERE {{where}} AND {_KIND} IS NULL
GROUP BY requester, purpose, provider, month, decision, {_POLICY_DIGEST}, basis
"""  # noqa: S608 (constants only; values are bound)

# A disclosure request is the decisions sharing a disclosure_id: its outcome is an error
# when any decision failed (nothing is released then, a withdrawal included), else
# released when something was allowed (partly refused when something was denied too),
# else refused.
_ONE_REQUEST = f"""
SELECT {_DISCLOSURE_ID} AS did, min(requester) AS requester, min(purpose) AS purpose,
       substr(min(time), 1, 13) AS hour,
       max(decision = 'allow') AS allowed, max(decision = 'deny') AS denied,
       max(decision = 'error') AS failed,
       group_concat(DISTINCT nullif(provider, '')) AS providers,
       group_concat(DISTINCT CASE WHEN decision = 'deny' THEN nullif(provider, '') END)
           AS denied_by,
       max(decision = 'deny' AND EXISTS (
           SELECT 1 FROM json_each(body, '$.reasons')
           WHERE value LIKE '{UNREGISTERED_PURPOSE_REASON}')) AS unregistered
FROM entries WHERE {{where}} AND {_KIND} IS NULL
GROUP BY did
"""  # noqa: S608

_REQUESTS = f"""
SELECT requester, purpose, hour,
       CASE WHEN failed THEN 'error'
            WHEN allowed AND denied THEN 'partly-refused'
            WHEN allowed THEN 'released'
            ELSE 'refused' END AS outcome,
       sum(unregistered), coalesce(providers, ''), coalesce(denied_by, ''), count(*)
FROM ({_ONE_REQUEST})
GROUP BY requester, purpose, hour, outcome, providers, denied_by
"""  # noqa: S608

_REFUSALS = f"""
SELECT requester, purpose, substr(time, 1, 13) AS hour,
       problem, sum(json_extract(body, '$.unrecorded_names') > 0), count(*)
FROM entries WHERE {{where}} AND {_KIND} = 'refusal'
GROUP BY requester, purpose, hour, problem
"""  # noqa: S608

_SUMMARIES = f"""
SELECT requester, substr(time, 1, 13) AS hour, counts.key AS counted, sum(counts.value)
FROM entries, json_each(entries.body, '$.counts') AS counts
WHERE {{where}} AND {_KIND} = 'refusal-summary'
GROUP BY requester, hour, counted
"""  # noqa: S608

_FIELD_OPS = f"""
SELECT purpose, ops.value AS op, count(*)
FROM entries, json_each(entries.body, '$.field_ops') AS ops
WHERE {{where}} AND {_KIND} IS NULL AND decision = 'allow'
GROUP BY purpose, op
"""  # noqa: S608

_REIDENTIFICATIONS = f"""
SELECT json_extract(body, '$.dpo') AS dpo, substr(time, 1, 7) AS month, count(*)
FROM entries WHERE {{where}} AND {_KIND} = 'reidentification'
GROUP BY dpo, month
"""  # noqa: S608

_POLICY_CHANGES = f"""
SELECT json_extract(body, '$.outcome') AS outcome, count(*)
FROM entries WHERE {{where}} AND {_KIND} = 'policy-change'
GROUP BY outcome
"""  # noqa: S608

# A requester's own history before the period: disclosure requests and refused ones.
_HISTORY = f"""
SELECT requester, month, sum(n) FROM (
    SELECT requester, substr(min(time), 1, 7) AS month, 1 AS n
    FROM entries WHERE substr(time, 1, 19) < :since AND {_KIND} IS NULL GROUP BY {_DISCLOSURE_ID}
    UNION ALL
    SELECT requester, substr(time, 1, 7), 1
    FROM entries WHERE substr(time, 1, 19) < :since AND {_KIND} = 'refusal'
    UNION ALL
    SELECT requester, substr(time, 1, 7), counts.value
    FROM entries, json_each(entries.body, '$.counts') AS counts
    WHERE substr(time, 1, 19) < :since AND {_KIND} = 'refusal-summary'
)
GROUP BY requester, month
"""  # noqa: S608
