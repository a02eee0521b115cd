"""The manager's daily digest: what changed, what is overdue, what praise to pass on.

Data is gathered into a plain dict (easy to test), then rendered to HTML
(Jinja2 with autoescape: mention text is hostile) and Markdown (text escaped
for Markdown so a review cannot inject links or HTML).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils
from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.config import Config
from monitor.escaping import safe_url
from monitor.queue.items import LOCATION_SQL
from monitor.shifts.summary import shifts_for_digest
from monitor.store import latest_crawl_runs

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def markdown_escape(text: Any) -> str:
    """Escape Markdown (and inline HTML) syntax; collapse newlines so a mention stays one bullet."""
    value = "" if text is None else str(text)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = re.sub(r"\s+", " ", value).strip()
    return _MD_SPECIAL.sub(r"\\\1", value)


def _count_labels(db: sqlite_utils.Database, start: str, end: str) -> dict[str, int]:
    rows = db.query(
        "select coalesce(c.label, 'unclassified') as label, count(*) as n from mentions m "
        "left join classifications c on c.mention_id = m.id "
        "where coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ? "
        "group by 1",
        [start, end],
    )
    return {row["label"]: row["n"] for row in rows}


def _excerpt(text: str | None, limit: int = 280) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _response_metrics(db, since, until):
    from monitor.queue.metrics import response_metrics

    # Overdue as of the digest's end (or now, for today's): a past day's digest does not change later.
    return response_metrics(db, since, until, now=min(until, datetime.now(UTC)))[0]


def _spikes(db, config, day):
    """Complaint spikes per brand on the digest's day (and the day before), as `monitor trends` finds them."""
    from monitor.trends.report import trends_report

    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(config.trends.timezone))
    report = trends_report(db, config.trends, days=3, now=noon)
    return [spike.as_dict() for spike in report.spikes if day - timedelta(days=1) <= spike.period <= day]


def gather_digest(
    db: sqlite_utils.Database, day: date, brand: str = "", config: Config | None = None
) -> dict[str, Any]:
    """Everything the digest for ``day`` shows; shifts and incidents need ``config``.

    ``day`` is a calendar day in ``[schedule] timezone`` (UTC without a config): local midnight to the
    next local midnight, which is 23 or 25 hours on DST days.
    """
    zone = ZoneInfo(config.schedule.timezone) if config else UTC
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    prev = datetime.combine(day - timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    iso = lambda d: d.isoformat()  # noqa: E731  (UTC text, as stored)
    today = _count_labels(db, iso(start), iso(end))
    yesterday = _count_labels(db, iso(prev), iso(start))

    def mentions(label: str, limit: int) -> list[dict[str, Any]]:
        rows = db.query(
            "select m.id, m.source, m.author, m.title, m.text, m.rating, m.url, "
            f"{LOCATION_SQL} as location, m.posted_at, "
            "c.score, c.topics from mentions m join classifications c on c.mention_id = m.id "
            "where c.label = ? and coalesce(m.posted_at, m.first_seen_at) >= ? "
            "and coalesce(m.posted_at, m.first_seen_at) < ? order by c.score desc limit ?",
            [label, iso(start), iso(end), limit],
        )
        return [
            {**row, "excerpt": _excerpt(row["text"] or row["title"]), "topics": json.loads(row["topics"] or "[]")}
            for row in rows
        ]

    topics: dict[str, int] = {}
    for row in db.query(
        "select c.topics from mentions m join classifications c on c.mention_id = m.id where c.label = 'complaint' "
        "and coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ?",
        [iso(start), iso(end)],
    ):
        for topic in json.loads(row["topics"] or "[]"):
            topics[topic] = topics.get(topic, 0) + 1

    now = datetime.now(UTC).isoformat()
    overdue = [
        {**row, "excerpt": _excerpt(row["text"] or row["title"], 160)}
        for row in db.query(
            "select q.id, q.sla_due_at, q.state, q.assignee, m.source, m.author, m.title, m.text, m.url "
            "from queue_items q join mentions m on m.id = q.mention_id "
            "where q.state in ('new', 'assigned') and q.sla_due_at < ? order by q.sla_due_at limit 20",
            [now],
        )
    ]
    open_count = db.execute("select count(*) from queue_items where state in ('new', 'assigned')").fetchone()[0]
    overdue_total = db.execute(
        "select count(*) from queue_items where state in ('new', 'assigned') and sla_due_at < ?", [now]
    ).fetchone()[0]
    return {
        "day": day.isoformat(),
        "brand": brand,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "counts": today,
        "previous": yesterday,
        "total": sum(today.values()),
        "previous_total": sum(yesterday.values()),
        "complaints": mentions("complaint", 10),
        "praise": mentions("praise", 5),
        "topics": sorted(topics.items(), key=lambda kv: (-kv[1], kv[0])),
        "overdue": overdue,  # the 20 most overdue
        "overdue_total": overdue_total,
        "open_items": open_count,
        # The team's last seven days up to the digest's day: the habit a manager steers.
        "responses": _response_metrics(db, end - timedelta(days=7), end),
        "sources": latest_crawl_runs(db),
        "shifts": shifts_for_digest(db, config, day) if config and config.locations else None,
        "spikes": _spikes(db, config, day) if config else [],
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor.digest", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_escape
    env.filters["safe_url"] = safe_url
    return env


def render_digest(data: dict[str, Any], fmt: str = "html") -> str:
    template = {"html": "digest.html", "md": "digest.md"}[fmt]
    return _environment().get_template(template).render(**data)


def save_digest(data: dict[str, Any], output: Path) -> Path:
    """Render gathered digest ``data`` to ``output`` (.html, or .md for Markdown)."""
    fmt = "md" if output.suffix.lower() in {".md", ".markdown"} else "html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_digest(data, fmt), encoding="utf-8")
    return output


def write_digest(
    db: sqlite_utils.Database, output: Path, day: date, brand: str = "", config: Config | None = None
) -> Path:
    """Render the digest to ``output`` (.html, or .md for Markdown)."""
    return save_digest(gather_digest(db, day, brand, config), output)
