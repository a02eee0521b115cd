"""Trends and backfill (issue 11, item 11): undated backfill mentions have no day, so they make no spike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import TrendsConfig
from monitor.store import record_mentions
from monitor.trends.report import trends_report


def add(db, external_id: str, posted_at: str | None, backfill: bool = False) -> None:
    mention = {"external_id": external_id, "text": "bad", "brand": "Acme", "posted_at": posted_at, "backfill": backfill}
    [mention_id] = record_mentions(db, "apps", [mention]).mention_ids
    db["classifications"].insert({"mention_id": mention_id, "label": "complaint", "probs": "{}", "topics": "[]"})


def test_a_first_crawl_of_undated_reviews_is_no_spike_but_is_counted(fresh_db):
    now = datetime.now(UTC)
    for day in range(1, 15):  # a quiet brand: one complaint a day
        add(fresh_db, f"old-{day}", (now - timedelta(days=day)).isoformat())
    for n in range(30):  # an App Store first crawl: ~year-old reviews with no date, first seen today
        add(fresh_db, f"undated-{n}", None, backfill=True)
    add(fresh_db, "undated-but-not-backfill", None)  # stored by hand: still falls on the day it was first seen
    report = trends_report(fresh_db, TrendsConfig(), days=7, now=now)
    assert report.spikes == []
    today = next(p for p in report.points if p.period == now.date())
    assert (today.mentions, today.complaint) == (1, 1)
    assert report.undated == {"Acme": 30}
    [summary] = report.brand_summary()
    assert (summary["mentions"], summary["undated"]) == (7, 30)
