"""Response metrics: how fast and how often the team answers, SLA breaches, recoveries.

First-response time runs from when the customer posted (the SLA clock's start)
to the first reply recorded. Response rate is replied items over items that
needed an answer (dismissed ones did not). An item without a trustworthy post
time (``items.untimed_sql``: backfill) has no SLA to breach, and its response
time runs from when we first saw the post. Grouped by location, a mention the
shifts stage placed (a Reddit post naming a store) counts at that location.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from monitor.queue.items import LOCATION_SQL, untimed_sql

# A mention's location: its own (from the source's config or the platform), else the one the shifts stage
# inferred (keywords, business ids: how Reddit posts get one). Never overrides a configured location.

METRICS_SQL = """
select q.id, q.state, q.assignee, q.sla_due_at, q.first_replied_at, q.created_at,
       case when {untimed} then m.first_seen_at else coalesce(m.posted_at, m.first_seen_at) end as started_at,
       {untimed} as untimed, m.source, {location} as location,
       r.outcome as recovery, r.rating_before, r.rating_after
from queue_items q join mentions m on m.id = q.mention_id
left join recoveries r on r.queue_item_id = q.id
where q.created_at >= ? and q.created_at < ?
"""


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


def _minutes(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    b = b if b.tzinfo else b.replace(tzinfo=UTC)
    return max((b - a).total_seconds() / 60, 0.0)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def summarise(rows: list[dict[str, Any]], now: datetime) -> ResponseMetrics:
    out = ResponseMetrics(items=len(rows))
    now_iso = now.isoformat()
    times, changes = [], []
    for row in rows:
        if row["first_replied_at"]:
            out.replied += 1
            minutes = _minutes(row["started_at"], row["first_replied_at"])
            if minutes is not None:
                times.append(minutes)
            if not row.get("untimed") and row["sla_due_at"] and row["first_replied_at"] > row["sla_due_at"]:
                out.sla_breaches += 1
        elif row["state"] == "dismissed":
            out.dismissed += 1
        elif row["state"] == "replied":
            out.replied += 1  # replied before reply times were kept: counted, but no time to measure
        else:
            out.open += 1
            if not row.get("untimed") and row["sla_due_at"] and row["sla_due_at"] < now_iso:
                out.sla_breaches += 1
                out.breached_open += 1
        if row["recovery"]:
            out.recoveries[row["recovery"]] = out.recoveries.get(row["recovery"], 0) + 1
            if row["rating_before"] is not None and row["rating_after"] is not None:
                changes.append(row["rating_after"] - row["rating_before"])
    needed = out.items - out.dismissed
    out.response_rate = round(out.replied / needed, 4) if needed else None
    out.breach_rate = round(out.sla_breaches / needed, 4) if needed else None
    out.median_first_response_minutes = _quantile(times, 0.5)
    out.p90_first_response_minutes = _quantile(times, 0.9)
    rated = sum(out.recoveries.get(k, 0) for k in ("recovered", "unchanged", "worse"))
    out.recovery_rate = round(out.recoveries.get("recovered", 0) / rated, 4) if rated else None
    out.mean_rating_change = round(sum(changes) / len(changes), 2) if changes else None
    return out


def response_metrics(
    db: sqlite_utils.Database,
    since: datetime,
    until: datetime,
    group_by: str | None = None,
    now: datetime | None = None,
) -> tuple[ResponseMetrics, dict[str, ResponseMetrics]]:
    """Metrics for items created in [since, until): overall, and per value of ``group_by``
    (assignee, source or location; ``{}`` without it). ``now`` decides what counts as overdue."""
    if group_by not in (None, "assignee", "source", "location"):
        raise ValueError(f"cannot group metrics by {group_by!r}")
    now = now or datetime.now(UTC)
    sql = METRICS_SQL.format(untimed=untimed_sql(db), location=LOCATION_SQL)
    rows = list(db.query(sql, [since.isoformat(), until.isoformat()]))
    groups: dict[str, list[dict[str, Any]]] = {}
    if group_by:
        for row in rows:
            groups.setdefault(row[group_by] or "(none)", []).append(row)
    return summarise(rows, now), {key: summarise(groups[key], now) for key in sorted(groups)}


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
