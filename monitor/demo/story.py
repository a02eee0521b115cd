"""The demo's story after its first crawl: answer one complaint, let the customer edit, say what to look at.

The reply goes through the same call as ``monitor queue reply ID --text ...`` (``mark_replied``);
the customer's edit is served by the review site and stored by a real crawl of that source, so
the recovery comes out of the queue's own detection, like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.config import Config
from monitor.demo.review_week import RECOVERY_ID, RECOVERY_REPLY
from monitor.store.demo import queue_item_by_external_id

RECOVERY_SOURCE = "reviews-downtown"
REPLY_AS = "dana"  # the downtown manager in the demo's team
DIGEST_DAYS = 7  # the digest judges shifts over the week ending its day


def recovery_item(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The queue item of the review the demo answers (None before it is crawled and queued)."""
    return queue_item_by_external_id(db, RECOVERY_SOURCE, f"%/reviews/{RECOVERY_ID}")


def answered(db: sqlite_utils.Database) -> bool:
    """Whether an earlier demo run already answered the review (its site then serves the edit from the start)."""
    item = recovery_item(db)
    return bool(item and item["first_replied_at"])


def answer_complaint(db: sqlite_utils.Database) -> int | None:
    """Record the manager's reply to the review, as ``monitor queue reply`` does; the item id, or None."""
    from monitor.queue.items import mark_replied

    item = recovery_item(db)
    if item is None or item["first_replied_at"]:
        return None
    mark_replied(db, item["id"], RECOVERY_REPLY, actor=REPLY_AS)
    return int(item["id"])


def story_summary(db: sqlite_utils.Database, config: Config, now: datetime | None = None) -> dict[str, Any]:
    """What the demo shows, found by the functions the digest, the dashboards and the CLI use."""
    from monitor.queue.metrics import response_metrics
    from monitor.shifts.incidents import list_incidents
    from monitor.shifts.report import shift_report
    from monitor.trends.report import trends_report

    now = now or datetime.now(UTC)
    zone = ZoneInfo(config.schedule.timezone)
    yesterday: date = now.astimezone(zone).date() - timedelta(days=1)
    start = datetime.combine(yesterday, time(), tzinfo=zone)
    names = {loc.id: loc.name or loc.id for loc in config.locations}
    incidents = [{**i, "location_name": names.get(i["location"], i["location"])}
                 for i in list_incidents(db, start, start + timedelta(days=1))]  # fmt: skip
    week = shift_report(db, config, yesterday - timedelta(days=DIGEST_DAYS - 1), yesterday)  # the digest's week
    metrics, _ = response_metrics(db, now - timedelta(days=7), now + timedelta(seconds=1), now=now)
    return {
        "yesterday": yesterday.isoformat(),
        "incidents_yesterday": incidents,
        "flagged": [(r["location"], r["shift"]) for r in week if r["flagged"]],
        "spikes": [s.as_dict() for s in trends_report(db, config.trends, days=14, now=now).spikes],
        "recoveries": dict(metrics.recoveries),
    }


def describe(summary: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The lines the demo prints: each part of the story and where to see it."""
    for incident in summary["incidents_yesterday"][:3]:
        sources = ", ".join(incident["sources"])
        echo(f"incident: {incident['complaints']} complaints at {incident['location_name']} yesterday "
             f"({incident['topic'] or 'mixed topics'}; {sources}) - /shifts, the digest")  # fmt: skip
    for location, shift in summary["flagged"]:
        echo(f"flagged shift: {location} {shift} (last 7 days) - /shifts, the digest, `monitor shifts`")
    for spike in summary["spikes"]:
        echo(f"complaint spike: {spike['brand']} on {spike['period']} ({spike['complaints']} complaints, "
             f"normal {spike['baseline']:g} a day) - /trends, `monitor trends`")  # fmt: skip
    if summary["recoveries"]:
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary["recoveries"].items()))
        echo(f"after our replies: {outcomes} - /metrics, `monitor queue metrics`")
