"""Who answers and how well: team load, items to assign, template use, and the counts behind response metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.db.dialect import POSTGRESQL
from monitor.store.queue_items import LOCATION_SQL, untimed_sql

# ---------------------------------------------------------------- assignment


def assigned_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Assignee → how many items are assigned to them and still open."""
    return {
        row["assignee"]: row["n"]
        for row in db.query(
            "select assignee, count(*) as n from queue_items where state = 'assigned' group by assignee"
        )
    }


def unassigned_new_items(db: sqlite_utils.Database, item_ids: list[int] | None) -> list[dict[str, Any]]:
    """New items without an assignee (of ``item_ids`` when given), oldest first: ``id``, ``source``, ``location``
    and ``lang``."""
    # A post without a location may have been placed by the shift stage (keywords, business ids).
    sql = (
        "select q.id, m.source, coalesce(nullif(m.location, ''), e.location) as location, "
        "coalesce(c.lang, m.lang) as lang from queue_items q "
        "join mentions m on m.id = q.mention_id left join classifications c on c.mention_id = m.id "
        "left join incident_estimates e on e.mention_id = m.id "
        "where q.state = 'new' and (q.assignee is null or q.assignee = '')"
    )
    if item_ids is None:
        return list(db.query(sql + " order by q.id"))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        rows += db.query(sql + f" and q.id in ({', '.join('?' * len(chunk))}) order by q.id", chunk)
    return rows


# ---------------------------------------------------------------- templates


def template_last_used(db: sqlite_utils.Database, template_ids: list[str]) -> dict[str, int]:
    """Template id → the id of the latest reply sent from it (reply ids grow; timestamps can tie)."""
    if not template_ids:
        return {}
    marks = ", ".join("?" * len(template_ids))
    rows = db.query(
        f"select template, max(id) as last from replies where template in ({marks}) group by template",
        template_ids,
    )
    return {row["template"]: row["last"] for row in rows}


# ---------------------------------------------------------------- response metrics

# Each item created in [since, until) as one code (the checks made per row in Python before, now in SQL): 0 open,
# 1 dismissed, 2 replied (a reply time, or state replied from before reply times were kept), 3 replied after the
# due time, 4 open past it (never 3 or 4 for an untimed item); ``x > ''`` is "x is a non-empty string". And its
# first-response time in whole milliseconds (stored times are whole seconds and julianday resolves ~50 µs, so
# rounding to ms is exact), clamped at 0, NULL without a reply time or a readable start: a junk post time costs
# that item its time, not the page.
CODE_SQL = """case when q.first_replied_at > '' then
    case when q.first_replied_at > q.sla_due_at and q.sla_due_at > '' and not {untimed} then 3 else 2 end
  when q.state = 'dismissed' then 1 when q.state = 'replied' then 2
  when q.sla_due_at < :now and q.sla_due_at > '' and not {untimed} then 4 else 0 end"""
MS_SQL = """case when q.first_replied_at > '' then cast(max(round(86400000 * (julianday(q.first_replied_at)
    - julianday(case when {untimed} then m.first_seen_at else coalesce(m.posted_at, m.first_seen_at) end))), 0)
    as integer) end"""
IN_RANGE = "q.created_at >= :since and q.created_at < :until"
# Counted per group and code (a handful of rows); the times come back as one comma-separated list per row
# (group_concat skips NULLs), exact and far cheaper than a Python object per item. ``limit -1`` keeps SQLite from
# flattening the inner query: the GROUP BY then sorts three small values per item, not the columns they come from.
COUNTS_SQL = f"""
select g, code, count(*), group_concat(ms) from (
  select {{key}} as g, {CODE_SQL} as code, {MS_SQL} as ms
  from queue_items q join mentions m on m.id = q.mention_id where {IN_RANGE} limit -1
) group by 1, 2
"""
# Recoveries are few (replied items whose mention changed since), so they are read from their own table; ``first``
# lists the outcomes in the order their items were created, as they were met before.
RECOVERIES_SQL = f"""
select {{key}}, r.outcome, count(*), sum(r.rating_after - r.rating_before), count(r.rating_after - r.rating_before),
       min(q.created_at || ' ' || printf('%020d', q.id)) as first
from recoveries r cross join queue_items q on q.id = r.queue_item_id join mentions m on m.id = q.mention_id
where {IN_RANGE} and r.outcome > '' group by 1, 2 order by first
"""
# PostgreSQL's forms of the two queries, the same counts: epoch seconds for julianday; ``round`` of a numeric, which
# rounds half away from zero as SQLite's does (a double rounds half to even); the clamp at 0 in a CASE on the outer
# query, as ``greatest`` would make a NULL time (an unreadable start) 0; string_agg (it skips NULLs too); no
# ``limit -1`` (an optimisation fence for SQLite's flattener only), and the subquery named, which PostgreSQL requires.
_PG_START = "case when {untimed} then m.first_seen_at else coalesce(m.posted_at, m.first_seen_at) end"
PG_MS_SQL = (
    f"case when q.first_replied_at > '' then round(1000 * ({POSTGRESQL.epoch_seconds('q.first_replied_at')} "
    f"- {POSTGRESQL.epoch_seconds(_PG_START)})::numeric) end"
)
PG_COUNTS_SQL = f"""
select g, code, count(*), {POSTGRESQL.string_agg("case when ms < 0 then 0 else ms end::bigint")} from (
  select {{key}} as g, {CODE_SQL} as code, {PG_MS_SQL} as ms
  from queue_items q join mentions m on m.id = q.mention_id where {IN_RANGE}
) as items group by 1, 2
"""
PG_RECOVERIES_SQL = f"""
select {{key}}, r.outcome, count(*), sum(r.rating_after - r.rating_before), count(r.rating_after - r.rating_before),
       min(q.created_at || ' ' || lpad(q.id::text, 20, '0')) as first
from recoveries r join queue_items q on q.id = r.queue_item_id join mentions m on m.id = q.mention_id
where {IN_RANGE} and r.outcome > '' group by 1, 2 order by first
"""
# What response metrics may be grouped by, as SQL over ``q`` (queue_items) and ``m`` (mentions); None: no grouping.
GROUP_KEYS = {None: None, "assignee": "q.assignee", "source": "m.source", "location": LOCATION_SQL}


def group_key_sql(group_by: str | None) -> str:
    """The SQL expression ``response_code_counts`` groups by for ``group_by`` (one of ``GROUP_KEYS``)."""
    return GROUP_KEYS[group_by] or "null"


def _values(since: datetime, until: datetime, now: datetime, params: dict[str, Any] | None) -> dict[str, Any]:
    return {**(params or {}), "since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat()}


def response_code_counts(
    db: sqlite_utils.Database, since: datetime, until: datetime, now: datetime, key_sql: str,
    params: dict[str, Any] | None = None,
) -> list[tuple[Any, int, int, str | None]]:  # fmt: skip
    """(group, code, items, first-response milliseconds comma-separated) of the items created in [since, until),
    per value of ``key_sql`` (an SQL expression over ``q`` and ``m`` written by code, never from user input; named
    ``params`` for it) and per code (see ``CODE_SQL``); ``now`` decides what counts as overdue."""
    counts_sql = PG_COUNTS_SQL if dialect_of(db).postgres else COUNTS_SQL
    sql = counts_sql.format(key=key_sql, untimed=untimed_sql(db))
    return [tuple(row) for row in db.execute(sql, _values(since, until, now, params))]


def recovery_counts(
    db: sqlite_utils.Database, since: datetime, until: datetime, now: datetime, key_sql: str,
    params: dict[str, Any] | None = None,
) -> list[tuple[Any, str, int, float | None, int, str]]:  # fmt: skip
    """(group, outcome, recoveries, sum and count of rating changes, first) of the recoveries of items created in
    [since, until) per value of ``key_sql`` (as for ``response_code_counts``) and outcome, in the order their first
    items were created."""
    recoveries_sql = PG_RECOVERIES_SQL if dialect_of(db).postgres else RECOVERIES_SQL
    return [tuple(row) for row in db.execute(recoveries_sql.format(key=key_sql), _values(since, until, now, params))]
