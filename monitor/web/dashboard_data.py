"""Plain data for the dashboard pages (/trends, /shifts, /sources, the /metrics chart).

The numbers come from the same functions as the CLI and the digest (monitor/trends, monitor/shifts,
monitor/queue/metrics); this module adds what only the pages need: topics over time, source health,
response metrics per day, words for rates, and a short-lived cache so a page and its chart images
compute once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.db import dialect_of
from monitor.queue.metrics import ResponseMetrics, grouped_metrics
from monitor.shifts.report import topic_names
from monitor.store import dashboards as dashboards_store
from monitor.store import trends as trends_store
from monitor.store.dashboards import local_day_sql
from monitor.trends.series import hour_runs, period_of, periods, refresh_rollups, rows_in_hours

T = TypeVar("T")

TOPIC_NAMES = {
    "wait_time": "Waiting time", "staff_attitude": "Staff attitude", "staff_knowledge": "Staff knowledge",
    "not_resolved": "Problem not resolved", "product_quality": "Product quality",
    "price_billing": "Price and billing", "cleanliness_ambience": "Cleanliness and ambience",
    "delivery_logistics": "Delivery", "app_website": "App and website", "other": "Other",
}  # fmt: skip

# What each platform lets us see (docs/sources.md, "Platform caps"), by source type.
PLATFORM_CAPS = {
    "yelp": "3 review excerpts per business (standard plan), about 160 characters each",
    "google_places": "5 reviews per place, chosen by Google's relevance; no paging",
    "app_store": "about the 500 most recent reviews per app and country",
    "app_store_connect": "reviews of your own apps, through Apple's App Store Connect API",
    "google_play": "reviews from the last week only",
    "trustpilot": "100 reviews a page, up to max_pages pages per crawl",
    "hackernews": "at most 1,000 hits per query",
    "mastodon": "only statuses the instance knows and has indexed",
    "bluesky": "search depth limited by the AppView",
    "feed": "only the feed's latest entries (often 10–100)",
    "schema_org": "whatever the site shows, up to max_pages pages",
    "reddit": "listings stop at about 1,000 items; about 100 requests a minute",
}


def topic_name(topic: str) -> str:
    """A complaint topic as people say it: "Waiting time", not ``wait_time``."""
    return TOPIC_NAMES.get(topic) or topic.replace("_", " ").strip().capitalize() or "Other"


def in_words(rate: float | None) -> str:
    """A proportion as "about 1 in 3": 1 in N below 30 %, else the nearest of the fractions people say."""
    if rate is None:
        return "no data"
    if rate <= 0:
        return "none"
    if rate >= 0.995:
        return "all"
    if rate < 0.3:
        return f"about 1 in {round(1 / rate)}"
    # Above that, fractions people say: halves, thirds, quarters, fifths, tenths ("about 7 in 10", not "5 in 7").
    best = min(((n, d) for d in (2, 3, 4, 5, 10) for n in range(1, d)), key=lambda f: (abs(f[0] / f[1] - rate), f[1]))
    return f"about {best[0]} in {best[1]}"


def rate_sentence(rate: float | None) -> str:
    """What share of a shift's mentions were complaints, as a sentence fragment."""
    words = in_words(rate)
    if words == "none":
        return "no complaints"
    if words == "all":
        return "every mention a complaint"
    return f"{words} mentions a complaint" if words != "no data" else "no mentions"


def interval_words(low: float, high: float) -> str:
    """A 95 % interval in words: "between 1 in 5 and 1 in 2"."""
    low_words, high_words = in_words(low).removeprefix("about "), in_words(high).removeprefix("about ")
    low_words = "0" if low_words == "none" else low_words
    return f"likely between {low_words} and {high_words}" if low_words != high_words else f"likely {low_words}"


# ---------------------------------------------------------------- cache


class TTLCache:
    """Results of recent computations for ``seconds``: a page and its chart images ask for the same numbers."""

    def __init__(self, seconds: float = 60.0, size: int = 64) -> None:
        self.seconds, self.size = seconds, size
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit and now - hit[0] < self.seconds:
                return hit[1]
        value = compute()  # outside the lock: a slow page must not hold up the others
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(min(self._items, key=lambda k: self._items[k][0]))
            self._items[key] = (now, value)
        return value


# ---------------------------------------------------------------- trends


def topic_series(
    db: sqlite_utils.Database, since: datetime, until: datetime, by: str, timezone: str, brands: list[str] | None
) -> dict[str, dict[date, int]]:
    """topic -> period -> complaints naming it, over [since, until), counted like the trend series (dated only):
    from the hourly rollup (``trend_topic_hours``) where the store has it, else from every row."""
    zone = ZoneInfo(timezone)
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    if not refresh_rollups(db):
        return _topics_from_rows(db, since, until, by, zone, brands)
    runs, split = hour_runs(since, until, zone, by)
    for topic, period, n in trends_store.topic_hour_counts(db, runs, brands):
        out[topic][date.fromisoformat(period)] += n
    for brand, moment, _label, topics in rows_in_hours(db, split, since, until, complaints=True):
        if not brands or brand in brands:
            for topic in topic_names(topics):
                out[topic][period_of(moment, zone, by)] += 1
    return {topic: dict(counts) for topic, counts in out.items()}


def _topics_from_rows(
    db: sqlite_utils.Database, since: datetime, until: datetime, by: str, zone: ZoneInfo, brands: list[str] | None
) -> dict[str, dict[date, int]]:
    rows = trends_store.complaint_topics_between(db, since, until)
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for brand, at, topics in rows:
        if brands and brand not in brands:
            continue
        period = period_of(datetime.fromisoformat(at), zone, by)
        for topic in topic_names(topics):
            out[topic][period] += 1
    return {topic: dict(counts) for topic, counts in out.items()}


# ---------------------------------------------------------------- sources


def source_health(db: sqlite_utils.Database, since: datetime, timezone: str) -> dict[str, dict[str, Any]]:
    """source -> last run, last success (status ok), failed runs and new items per local day since ``since``."""
    zone = ZoneInfo(timezone)
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"last": None, "last_success": None, "failed": 0,
                                                          "per_day": defaultdict(int)})  # fmt: skip
    for row in dashboards_store.latest_run_of_each_source(db):
        row["messages"] = _messages(row["messages"])
        out[row["source"]]["last"] = row
    for source, finished in dashboards_store.last_success_of_each_source(db):
        out[source]["last_success"] = finished
    for source, started, status, new in dashboards_store.runs_started_since(db, since):
        out[source]["failed"] += status == "failed"
        out[source]["per_day"][datetime.fromisoformat(started).astimezone(zone).date()] += new or 0
    return dict(out)


def _messages(value: str | None) -> list[str]:
    try:
        messages = json.loads(value or "[]")
    except ValueError:
        return [str(value)]
    return [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]


# ---------------------------------------------------------------- metrics over time


def metrics_by_day(
    db: sqlite_utils.Database, since: datetime, until: datetime, timezone: str, now: datetime, weekly: bool = False
) -> list[tuple[date, ResponseMetrics]]:
    """Response metrics of the items created on each local day (or week) in [since, until), counted in SQL
    per local day (``local_day_sql``)."""
    zone = ZoneInfo(timezone)
    by = "week" if weekly else "day"
    key, params = local_day_sql("q.created_at", since, until, zone, dialect_of(db))

    def period(day: str | None) -> date | None:
        if day is None:  # not a time: no day to count it on
            return None
        local = date.fromisoformat(day)
        return local - timedelta(days=local.weekday()) if weekly else local

    _overall, groups = grouped_metrics(db, since, until, key, now, params, label=period)
    first, last = period_of(since, zone, by), period_of(until - timedelta(microseconds=1), zone, by)
    return [(day, groups.get(day) or ResponseMetrics()) for day in periods(first, last, by)]


def mentions_by_id(db: sqlite_utils.Database, mention_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Mentions with their queue item id (the inbox link), for incident lists."""
    return dashboards_store.mentions_with_item_ids(db, mention_ids)
