"""The SQL behind the DPO's statistics (`audit.statistics`): GROUP BY queries over the
entries of a period, on a read-only connection.

No body leaves SQLite: every query aggregates in the database and hands back small
rows of names, buckets and counts (at most one row per requester, purpose and hour of
the period, for the requests), so a year of a million entries costs a few scans and
little memory. Times are grouped by their RFC 3339 text: ``substr(time, 1, 7)`` is the
UTC month, ``substr(time, 1, 13)`` the UTC hour (the caller turns hours into local
office hours, which SQLite cannot).

The decision columns (``time``, ``requester``, ``provider``, ``purpose``, ``decision``)
are the generated columns of the entries table; the fields only some kinds have are
read with ``json_extract`` from the body.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from audit.storage.interface import StatisticsRows

__all__ = ["UNREGISTERED_PURPOSE_REASON", "collect"]

# Fields read from the body (a decision has no kind; other kinds have no disclosure_id).
_KIND = "json_extract(body, '$.kind')"
_DISCLOSURE_ID = "json_extract(body, '$.disclosure_id')"
_POLICY_DIGEST = "json_extract(body, '$.policy_digest')"

UNREGISTERED_PURPOSE_REASON = "% is not in the register"
"""How the shipped policy words a deny for a purpose the register does not hold
(policies/doelpoort/deny.rego): such requests count as probing."""


def _period(since: str | None, until: str | None) -> tuple[str, dict[str, str]]:
    """A WHERE clause over ``time`` for [since, until), and its parameters (written out
    only for the bounds given, so an index on ``time`` can serve it)."""
    clauses, params = ["1"], {}
    if since is not None:
        clauses.append("time >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("time < :until")
        params["until"] = until
    return " AND ".join(clauses), params


def collect(conn: sqlite3.Connection, since: str | None, until: str | None) -> StatisticsRows:
    """Every aggregate for entries with ``since <= time < until`` (None: unbounded), in
    one read transaction so that they agree with each other."""
    where, params = _period(since, until)
    conn.execute("BEGIN")
    try:
        return StatisticsRows(
            decisions=_rows(conn, _DECISIONS.format(where=where), params),
            requests=_rows(conn, _REQUESTS.format(where=where), params),
            refusals=_rows(conn, _REFUSALS.format(where=where), params),
            summaries=_rows(conn, _SUMMARIES.format(where=where), params),
            field_ops=_rows(conn, _FIELD_OPS.format(where=where), params),
            reidentifications=_rows(conn, _REIDENTIFICATIONS.format(where=where), params),
            policy_changes=_rows(conn, _POLICY_CHANGES.format(where=where), params),
            history=(_rows(conn, _HISTORY, {"since": since}) if since is not None else []),
        )
    finally:
        conn.execute("COMMIT")  # ends the read transaction (nothing was written)


def _rows(conn: sqlite3.Connection, statement: str, params: Mapping[str, str | None]) -> list[Any]:
    """The statement's rows (plain tuples: names, buckets and counts)."""
    return conn.execute(statement, params).fetchall()


# Dataset decisions (entries without a kind), in one scan: the tables, the policy
# versions (first and last use) and the legal bases all come from these rows.
_DECISIONS = f"""
SELECT requester, purpose, provider, substr(time, 1, 7) AS month, decision,
       {_POLICY_DIGEST} AS digest, json_extract(body, '$.legal_basis') AS basis,
       min(time), max(time), count(*)
FROM entries WHERE {{where}} AND {_KIND} IS NULL
GROUP BY requester, purpose, provider, month, decision, digest, basis
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
       json_extract(body, '$.problem') AS problem,
       sum(json_extract(body, '$.unrecorded_names') > 0), count(*)
FROM entries WHERE {{where}} AND {_KIND} = 'refusal'
GROUP BY requester, purpose, hour, problem
"""  # noqa: S608

_SUMMARIES = f"""
SELECT requester, substr(time, 1, 13) AS hour, counts.key AS problem, sum(counts.value)
FROM entries, json_each(entries.body, '$.counts') AS counts
WHERE {{where}} AND {_KIND} = 'refusal-summary'
GROUP BY requester, hour, counts.key
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
    FROM entries WHERE time < :since AND {_KIND} IS NULL GROUP BY {_DISCLOSURE_ID}
    UNION ALL
    SELECT requester, substr(time, 1, 7), 1
    FROM entries WHERE time < :since AND {_KIND} = 'refusal'
    UNION ALL
    SELECT requester, substr(time, 1, 7), counts.value
    FROM entries, json_each(entries.body, '$.counts') AS counts
    WHERE time < :since AND {_KIND} = 'refusal-summary'
)
GROUP BY requester, month
"""  # noqa: S608
