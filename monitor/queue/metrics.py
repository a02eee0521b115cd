"""Response metrics: how fast and how often the team answers, SLA breaches, recoveries.

First-response time runs from when the customer posted (the SLA clock's start)
to the first reply recorded. Response rate is replied items over items that
needed an answer (dismissed ones did not). An item without a trustworthy post
time (``items.untimed_sql``: backfill) has no SLA to breach, and its response
time runs from when we first saw the post. Grouped by location, a mention the
shifts stage placed (a Reddit post naming a store) counts at that location.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlite_utils

from monitor.db import dialect_of
from monitor.db.dialect import POSTGRESQL
from monitor.queue.items import LOCATION_SQL, untimed_sql

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
GROUP_KEYS = {None: None, "assignee": "q.assignee", "source": "m.source", "location": LOCATION_SQL}


@dataclass
class ResponseMetrics:
    items: int = 0
    replied: int = 0
    dismissed: int = 0
    open: int = 0
    response_rate: float | None = None
    median_first_response_minutes: float | None = None
    p90_first_response_minutes: float | None = None
    sla_breaches: int = 0  # replied late, or still open past due
    breached_open: int = 0
    breach_rate: float | None = None
    recoveries: dict[str, int] = field(default_factory=dict)
    recovery_rate: float | None = None  # recovered / replied items whose rating changed or stayed after an edit
    mean_rating_change: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantiles(ms: np.ndarray, qs: tuple[float, ...] = (0.5, 0.9)) -> list[float | None]:
    """Quantiles of the times in minutes, to 0.1, linear between neighbours of the sorted list, from unsorted
    milliseconds: only the elements each quantile reads are put in place (``np.partition``, linear time)."""
    if not len(ms):
        return [None for _ in qs]
    picks = sorted({i for q in qs for i in (int(q * (len(ms) - 1)), min(int(q * (len(ms) - 1)) + 1, len(ms) - 1))})
    placed = np.partition(ms, picks)
    out: list[float | None] = []
    for q in qs:
        position = q * (len(ms) - 1)
        low = int(position)
        high = min(low + 1, len(ms) - 1)
        a, b = int(placed[low]) / 60_000, int(placed[high]) / 60_000
        out.append(round(a + (b - a) * (position - low), 1))
    return out


@dataclass
class _Tally:
    """What the queries counted for one group, before the rates are worked out."""

    codes: dict[int, int] = field(default_factory=dict)
    ms: list[np.ndarray] = field(default_factory=list)  # first-response times, milliseconds, unsorted
    recoveries: dict[str, int] = field(default_factory=dict)
    change_sum: float = 0.0
    changes: int = 0

    def metrics(self) -> ResponseMetrics:
        n = self.codes.get
        out = ResponseMetrics(items=sum(self.codes.values()), replied=n(2, 0) + n(3, 0), dismissed=n(1, 0),
                              open=n(0, 0) + n(4, 0), sla_breaches=n(3, 0) + n(4, 0), breached_open=n(4, 0),
                              recoveries=self.recoveries)  # fmt: skip
        needed = out.items - out.dismissed
        out.response_rate = round(out.replied / needed, 4) if needed else None
        out.breach_rate = round(out.sla_breaches / needed, 4) if needed else None
        times = np.concatenate(self.ms) if self.ms else np.empty(0, dtype=np.int64)
        out.median_first_response_minutes, out.p90_first_response_minutes = _quantiles(times)
        rated = sum(out.recoveries.get(k, 0) for k in ("recovered", "unchanged", "worse"))
        out.recovery_rate = round(out.recoveries.get("recovered", 0) / rated, 4) if rated else None
        out.mean_rating_change = round(self.change_sum / self.changes, 2) if self.changes else None
        return out


def grouped_metrics(
    db: sqlite_utils.Database, since: datetime, until: datetime, key_sql: str, now: datetime,
    params: dict[str, Any] | None = None, label: Callable[[Any], Hashable] = lambda key: key,
) -> tuple[ResponseMetrics, dict[Hashable, ResponseMetrics]]:  # fmt: skip
    """Metrics for items created in [since, until): overall, and per ``label`` of ``key_sql``'s value (an SQL
    expression over ``q`` queue_items and ``m`` mentions, written by this package, never from user input; named
    ``params`` for it). The database does the counting; Python only finds the median and 90th-percentile times."""
    untimed = untimed_sql(db)
    postgres = dialect_of(db).postgres
    counts_sql, recoveries_sql = (PG_COUNTS_SQL, PG_RECOVERIES_SQL) if postgres else (COUNTS_SQL, RECOVERIES_SQL)
    values = {**(params or {}), "since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat()}
    overall, groups = _Tally(), {}
    for key, code, count, ms in db.execute(counts_sql.format(key=key_sql, untimed=untimed), values):
        times = np.fromstring(ms or "", dtype=np.int64, sep=",")  # integers only: written by COUNTS_SQL
        for tally in (overall, groups.setdefault(label(key), _Tally())):
            tally.codes[code] = tally.codes.get(code, 0) + count
            tally.ms.append(times)
    for key, outcome, count, change_sum, changes, _first in db.execute(recoveries_sql.format(key=key_sql), values):
        for tally in (overall, groups.setdefault(label(key), _Tally())):
            tally.recoveries[outcome] = tally.recoveries.get(outcome, 0) + count
            tally.change_sum += change_sum or 0.0
            tally.changes += changes
    return overall.metrics(), {key: tally.metrics() for key, tally in groups.items()}


def response_metrics(
    db: sqlite_utils.Database,
    since: datetime,
    until: datetime,
    group_by: str | None = None,
    now: datetime | None = None,
) -> tuple[ResponseMetrics, dict[str, ResponseMetrics]]:
    """Metrics for items created in [since, until): overall, and per value of ``group_by``
    (assignee, source or location; ``{}`` without it). ``now`` decides what counts as overdue."""
    if group_by not in GROUP_KEYS:
        raise ValueError(f"cannot group metrics by {group_by!r}")
    overall, groups = grouped_metrics(db, since, until, GROUP_KEYS[group_by] or "null", now or datetime.now(UTC),
                                      label=lambda key: key or "(none)")  # fmt: skip
    return overall, {key: groups[key] for key in sorted(groups)} if group_by else {}


def human_minutes(minutes: float | None, none: str = "–") -> str:
    """A duration for people, the same in the terminal, the web app and the digest: "45 min", "3.5 h", "2.1 d"."""
    if minutes is None:
        return none
    minutes = max(float(minutes), 0.0)
    if minutes < 0.5:
        return "< 1 min"
    if round(minutes) < 60:
        return f"{minutes:.0f} min"
    if minutes < 24 * 60 - 3:  # 23.95 h and up read better as "1.0 d" than "24.0 h"
        return f"{minutes / 60:.1f} h"
    return f"{minutes / (24 * 60):.1f} d"
