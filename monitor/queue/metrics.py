"""Response metrics: how fast and how often the team answers, SLA breaches, recoveries.

First-response time runs from when the customer posted (the SLA clock's start)
to the first reply recorded. Response rate is replied items over items that
needed an answer (dismissed ones did not). An item without a trustworthy post
time (``store.queue_items.untimed_sql``: backfill) has no SLA to breach, and its response
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

from monitor.store import team as team_store

# What ``response_metrics`` may group by (the SQL for each lives in the store).
GROUP_KEYS = team_store.GROUP_KEYS


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
    expression over ``q`` queue_items and ``m`` mentions, written by the store, never from user input; named
    ``params`` for it). The database does the counting; Python only finds the median and 90th-percentile times."""
    overall, groups = _Tally(), {}
    for key, code, count, ms in team_store.response_code_counts(db, since, until, now, key_sql, params):
        times = np.fromstring(ms or "", dtype=np.int64, sep=",")  # integers only: written by the counting SQL
        for tally in (overall, groups.setdefault(label(key), _Tally())):
            tally.codes[code] = tally.codes.get(code, 0) + count
            tally.ms.append(times)
    for key, outcome, count, change_sum, changes, _first in team_store.recovery_counts(
        db, since, until, now, key_sql, params
    ):
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
    overall, groups = grouped_metrics(db, since, until, team_store.group_key_sql(group_by), now or datetime.now(UTC),
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
