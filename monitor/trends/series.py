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

NO_BRAND = "(no brand)"
# A mention with a day: dated, or (stored before backfill existed, or by hand) first seen on it.
HAS_DAY = "not (m.backfill = 1 and m.posted_at is null)"


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
    """Points for every brand and every period in [since, until), zero-filled so gaps show as gaps."""
    if by not in ("day", "week"):
        raise ValueError(f"trends go by day or week, not {by!r}")
    zone = ZoneInfo(timezone)
    rows = db.query(
        "select coalesce(nullif(m.brand, ''), ?) as brand, coalesce(m.posted_at, m.first_seen_at) as at, c.label "
        "from mentions m left join classifications c on c.mention_id = m.id "
        "where coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ? "
        f"and {HAS_DAY}",
        # Stored times are UTC text: compare with UTC text, whatever zone the bounds were made in.
        [NO_BRAND, since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat()],
    )
    cells: dict[tuple[str, date], TrendPoint] = {}
    totals: dict[date, int] = defaultdict(int)  # every brand's mentions, so --brand does not change shares
    for row in rows:
        period = period_of(datetime.fromisoformat(row["at"]), zone, by)
        if row["brand"] != NO_BRAND:
            totals[period] += 1
        if brands and row["brand"] not in brands:
            continue
        key = (row["brand"], period)
        point = cells.get(key) or cells.setdefault(key, TrendPoint(*key))
        point.mentions += 1
        if row["label"] in ("complaint", "neutral", "praise"):
            setattr(point, row["label"], getattr(point, row["label"]) + 1)
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


def undated_counts(
    db: sqlite_utils.Database, since: datetime, until: datetime, brands: list[str] | None = None
) -> dict[str, int]:
    """Backfill mentions without a date, per brand, first seen in [since, until): stored and counted, never
    placed on a day (the crawl's day is not when they were written)."""
    rows = db.execute(
        "select coalesce(nullif(brand, ''), ?), count(*) from mentions "
        "where backfill = 1 and posted_at is null and first_seen_at >= ? and first_seen_at < ? group by 1",
        [NO_BRAND, since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat()],
    ).fetchall()
    return {brand: count for brand, count in rows if not brands or brand in brands}
