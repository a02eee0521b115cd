"""Daily or weekly sentiment series per brand, with net sentiment and share of voice.

Net sentiment is the usual social-listening score: (praise − complaints) ÷
classified mentions × 100, from −100 (all complaints) to +100 (all praise).
Share of voice is a brand's mentions over all brands' mentions in the period
(mentions with no brand are not a voice: they count in neither side).
Days are calendar days in the configured time zone (DST-aware); weeks start
on Monday. A backfill mention without a date (``mentions.backfill``, no
``posted_at``; docs/time-trust.md) has no day: it is left out of the series, so it
cannot make a spike on the day it was crawled, and :func:`undated_counts` counts it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.db import errors as db_errors
from monitor.store import trends as trends_store
from monitor.store import write_transaction

# Kept here under their old names (redundant aliases): other stages and the tests import them from this module.
from monitor.store.trends import HAS_DAY as HAS_DAY
from monitor.store.trends import NO_BRAND as NO_BRAND
from monitor.store.trends import RUNS_SQL as RUNS_SQL
from monitor.store.trends import json_list_param as json_list_param
from monitor.store.trends import runs_sql as runs_sql

_TICK = timedelta(microseconds=1)


@dataclass
class TrendPoint:
    brand: str
    period: date  # the day, or the Monday of the week
    mentions: int = 0
    complaint: int = 0
    neutral: int = 0
    praise: int = 0
    net_sentiment: float | None = None
    share_of_voice: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["period"] = self.period.isoformat()
        return out


def period_of(moment: datetime, zone: ZoneInfo, by: str) -> date:
    day = moment.astimezone(zone).date()
    return day - timedelta(days=day.weekday()) if by == "week" else day


def periods(first: date, last: date, by: str) -> list[date]:
    step = timedelta(days=7 if by == "week" else 1)
    out, current = [], first
    while current <= last:
        out.append(current)
        current += step
    return out


def sentiment_series(
    db: sqlite_utils.Database,
    since: datetime,
    until: datetime,
    by: str = "day",
    timezone: str = "UTC",
    brands: list[str] | None = None,
) -> list[TrendPoint]:
    """Points for every brand and every period in [since, until), zero-filled so gaps show as gaps.

    Counts come from the hourly rollup (``trend_hours``, store migration 8) where the store has it: whole UTC
    hours summed per period in SQL, and the few hours a period boundary or a bound cuts (zones at :30 / :45
    offsets) from their rows. Without it, from every row (:func:`series_from_rows`); both count the same, except
    that a time stored with another offset than UTC is placed by its instant, where the row path compares its
    text with the bounds (the crawlers store UTC)."""
    if by not in ("day", "week"):
        raise ValueError(f"trends go by day or week, not {by!r}")
    zone = ZoneInfo(timezone)
    if not refresh_rollups(db):
        return series_from_rows(db, since, until, by, timezone, brands)
    runs, split = hour_runs(since, until, zone, by)
    counts: list[tuple[str, date, str | None, int]] = [
        (brand, date.fromisoformat(period), label, n)
        for period, brand, label, n in trends_store.trend_hour_counts(db, runs)
    ]
    for row in rows_in_hours(db, split, since, until):
        counts.append((row[0], period_of(row[1], zone, by), row[2], 1))
    return _points(counts, since, until, zone, by, brands)


def series_from_rows(
    db: sqlite_utils.Database,
    since: datetime,
    until: datetime,
    by: str = "day",
    timezone: str = "UTC",
    brands: list[str] | None = None,
) -> list[TrendPoint]:
    """:func:`sentiment_series` from every mention row in the range (a store without the rollups)."""
    zone = ZoneInfo(timezone)
    rows = trends_store.labelled_mentions_between(db, since, until)
    counts = [(brand, period_of(_aware(at), zone, by), label, 1) for brand, at, label in rows]
    return _points(counts, since, until, zone, by, brands)


def _points(
    counts: list[tuple[str, date, str | None, int]],
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
    by: str,
    brands: list[str] | None,
) -> list[TrendPoint]:
    """Zero-filled points from (brand, period, label, mentions) counts."""
    cells: dict[tuple[str, date], TrendPoint] = {}
    totals: dict[date, int] = defaultdict(int)  # every brand's mentions, so --brand does not change shares
    for brand, period, label, n in counts:
        if brand != NO_BRAND:
            totals[period] += n
        if brands and brand not in brands:
            continue
        key = (brand, period)
        point = cells.get(key) or cells.setdefault(key, TrendPoint(*key))
        point.mentions += n
        if label in ("complaint", "neutral", "praise"):
            setattr(point, label, getattr(point, label) + n)
    all_brands = sorted(brands or {brand for brand, _ in cells})
    span = periods(period_of(since, zone, by), period_of(until - timedelta(microseconds=1), zone, by), by)
    points = []
    for brand in all_brands:
        for period in span:
            point = cells.get((brand, period), TrendPoint(brand, period))
            classified = point.complaint + point.neutral + point.praise
            if classified:
                point.net_sentiment = round((point.praise - point.complaint) / classified * 100, 1)
            if totals[period] and brand != NO_BRAND:
                point.share_of_voice = round(point.mentions / totals[period], 4)
            points.append(point)
    return points


# ---------------------------------------------------------------- hourly rollups


def refresh_rollups(db: sqlite_utils.Database) -> bool:
    """Recount the hours a change marked dirty (store migration 8); False when the store has no rollups."""
    if not trends_store.has_trend_rollups(db):
        return False
    if not trends_store.has_dirty_trend_hours(db):
        return True
    try:
        with write_transaction(db):  # the write lock: no crawl can mark an hour between the recount and the clearing
            trends_store.recount_dirty_trend_hours(db)
    except db_errors.BUSY_ERRORS:  # a read-only store, or a writer holding the lock past busy_timeout
        return False  # the rows still answer, only slower
    return True


def hour_runs(since: datetime, until: datetime, zone: ZoneInfo, by: str) -> tuple[list[list[str]], list[str]]:
    """UTC hours of [since, until) as runs ``[first hour, stop hour, period]`` of whole hours in one period, and
    the hours (``YYYY-MM-DDTHH``) that a period boundary (a zone at a :30 / :45 offset) or a bound cuts."""
    hour = timedelta(hours=1)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    first = since.replace(minute=0, second=0, microsecond=0)
    starts = [first + i * hour for i in range(int((until - first) / hour) + 2)]
    local = [moment.astimezone(zone) for moment in starts]
    runs: list[list[str]] = []
    split: list[str] = []
    run: list[Any] | None = None  # [first hour, period, stop hour]
    for i, cursor in enumerate(starts[:-1]):
        if cursor >= until:
            break
        here, following = local[i], local[i + 1]
        day = here.date()
        # One local day all hour long: it starts on a local hour and keeps its offset (else look at its end).
        whole = cursor >= since and starts[i + 1] <= until
        if whole and (here.minute or here.second or here.microsecond or here.utcoffset() != following.utcoffset()):
            whole = (starts[i + 1] - _TICK).astimezone(zone).date() == day
        period = day - timedelta(days=day.weekday()) if by == "week" else day
        if whole and run and run[1] == period:
            run[2] = starts[i + 1]
            continue
        if run:
            runs.append([run[0].isoformat()[:13], run[2].isoformat()[:13], run[1].isoformat()])
        run = [cursor, period, starts[i + 1]] if whole else None
        if not whole:
            split.append(cursor.isoformat()[:13])
    if run:
        runs.append([run[0].isoformat()[:13], run[2].isoformat()[:13], run[1].isoformat()])
    return runs, split


def rows_in_hours(
    db: sqlite_utils.Database, hours: list[str], since: datetime, until: datetime, complaints: bool = False
) -> list[tuple[str, datetime, str | None, str | None]]:
    """(brand, moment, label, topics) of the dated mentions in these UTC hours that fall in [since, until)."""
    out = []
    for brand, at, label, topics in trends_store.mentions_in_hours(db, hours, complaints):
        try:
            moment = _aware(at)
        except ValueError:
            continue  # SQLite read a time Python cannot: one odd row does not cost the chart
        if since <= moment < until:
            out.append((brand, moment, label, topics))
    return out


def _aware(at: str) -> datetime:
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite reads a bare time as UTC too


def undated_counts(
    db: sqlite_utils.Database, since: datetime, until: datetime, brands: list[str] | None = None
) -> dict[str, int]:
    """Backfill mentions without a date, per brand, first seen in [since, until): stored and counted, never
    placed on a day (the crawl's day is not when they were written)."""
    rows = trends_store.undated_mentions_by_brand(db, since, until)
    return {brand: count for brand, count in rows if not brands or brand in brands}
