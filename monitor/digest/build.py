"""The manager's daily digest: what changed, which shift and location complain, what is overdue, what praise
to pass on.

Data is gathered into a plain dict (easy to test) with every number already in words people read (whole
counts, local times, topic names: monitor/digest/words.py), then rendered to HTML (Jinja2 with
autoescape: mention text is hostile), to Markdown (values escaped for Markdown) or to plain text (the
email's text part, nothing escaped because nothing is interpreted). Charts are PNG images
(monitor/digest/charts.py), inline as data: URIs in the HTML file and attached by Content-ID in the email.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlite_utils
from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.config import Config
from monitor.digest import words
from monitor.digest.charts import Chart, labelled_bars, sentiment_lines
from monitor.escaping import safe_url
from monitor.shifts.summary import DIGEST_DAYS, shifts_for_digest
from monitor.store import digest as digest_store
from monitor.store import latest_crawl_runs

OVERDUE_SHOWN = 5  # the rest are one link away: a digest is read, the inbox is worked
COMPLAINTS_SHOWN, PRAISE_SHOWN = 8, 5
TREND_DAYS, ROLLING = 14, 7
SHIFT_DAYS = DIGEST_DAYS  # the week shifts_for_digest rates shifts over
FORMATS = {"html": "digest.html", "md": "digest.md", "text": "digest.md"}
SUFFIXES = {".md": "md", ".markdown": "md", ".txt": "text", ".text": "text"}

# Markdown that can change what a reader sees wherever it stands: emphasis, code, links, tables, HTML.
_MD_INLINE = re.compile(r"([\\`*\[\]|~])")
# Underscores emphasise only at a word's edge (CommonMark), so "reddit_acme" stays as it is.
_MD_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What only matters at the start of a line: headings, list items, quotes.
_MD_LEAD = re.compile(r"^(\d+)?([#>+\-.)])")


def markdown_escape(text: Any) -> str:
    """Escape what Markdown would act on (and inline HTML); newlines collapse so a mention stays one bullet.

    Only characters that can mean something are escaped: a review reads "staff." and "reddit-acme",
    not "staff\\." and "reddit\\-acme"; "[click](http://evil)" cannot become a link because its brackets are.
    """
    value = words.one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MD_UNDERSCORE.sub(r"\\_", _MD_INLINE.sub(r"\\\1", value))
    return _MD_LEAD.sub(lambda m: (m[1] or "") + "\\" + m[2], value)


def link_url(url: str) -> str:
    """A URL that stays one token in Markdown and plain text: spaces, brackets and angle brackets encoded."""
    return quote(words.one_line(url), safe=":/?#@!$&'*+,;=%~-._")


def _count_labels(db: sqlite_utils.Database, start: str, end: str) -> dict[str, int]:
    return digest_store.label_counts(db, start, end)


def _excerpt(text: str | None, limit: int = 280) -> str:
    text = words.one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut).rstrip(" ,.;:") + "…"  # not mid-word


def _response_metrics(db, since, until, now):
    from monitor.queue.metrics import response_metrics

    # Overdue as of the digest's end (or now, for today's): a past day's digest does not change later.
    return response_metrics(db, since, until, now=min(until, now))[0]


class _Links:
    """Links into the inbox at ``[digest] inbox_url`` (or ``[alerts] inbox_url``); none at all without one:
    a relative link in an email or a file opened from disk would be broken."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def inbox(self, query: str = "") -> str | None:
        return f"{self.base}/{query}" if self.base else None

    def item(self, item_id: int | None) -> str | None:
        return f"{self.base}/items/{int(item_id)}" if self.base and item_id else None


def _mentions(db, label, start, end, limit, names, links, zone) -> list[dict[str, Any]]:
    rows = digest_store.top_mentions(db, label, start, end, limit)
    out = []
    for row in rows:
        url = safe_url(row["url"])
        out.append({
            "source": words.one_line(row["source"]),
            "author": words.one_line(row["author"]) or "anonymous",
            "location": words.one_line(names.get(row["location"], row["location"])) if row["location"] else "",
            "rating": round(row["rating"]) if row["rating"] is not None else None,
            "posted": words.local_time(row["posted_at"] or row["first_seen_at"], zone),
            "topics": [words.topic_name(t) for t in _topic_list(row["topics"])],
            "excerpt": _excerpt(row["text"] or row["title"]),
            "item_id": row["item_id"],
            "link": links.item(row["item_id"]),
            "url": None if url == "#" else url,
        })  # fmt: skip
    return out


def _topic_list(value: str | None) -> list[str]:
    """A classification's topics (a JSON list of names); a damaged value costs that mention its topics only."""
    try:
        topics = json.loads(value or "[]")
    except ValueError:
        return []
    return [t for t in topics if isinstance(t, str)] if isinstance(topics, list) else []


def _topics(db, start: str, end: str) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for topics in digest_store.complaint_topics(db, start, end):
        for topic in _topic_list(topics):
            counts[topic] = counts.get(topic, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"topic": t, "name": words.topic_name(t), "count": n} for t, n in ranked]


def _overdue(db, now: datetime, links: _Links, zone: ZoneInfo) -> tuple[list[dict[str, Any]], int]:
    stamp = now.isoformat()
    rows = digest_store.overdue_items(db, stamp, OVERDUE_SHOWN)
    shown = [
        {"id": row["id"], "due": words.local_time(row["sla_due_at"], zone),
         "late": words.overdue_by(row["sla_due_at"], now), "source": words.one_line(row["source"]),
         "author": words.one_line(row["author"]) or "anonymous",
         "assignee": f"assigned to {words.one_line(row['assignee'])}" if row["assignee"] else "unassigned",
         "excerpt": _excerpt(row["text"] or row["title"], 140), "link": links.item(row["id"])}
        for row in rows
    ]  # fmt: skip
    return shown, digest_store.count_overdue(db, stamp)


def _sources(db, zone: ZoneInfo) -> list[dict[str, Any]]:
    status = {"ok": "working", "partial": "partly failed", "failed": "failed"}
    return [
        {"source": words.one_line(run["source"]), "last": words.local_time(run["started_at"], zone),
         "status": status.get(run["status"], run["status"] or "still running"), "ok": run["status"] == "ok",
         "new": run["new"] or 0, "updated": run["updated"] or 0, "errors": run["errors"] or 0}
        for run in latest_crawl_runs(db)
    ]  # fmt: skip


def _shifts(db, config: Config, day: date, names, links, zone) -> dict[str, Any]:
    """Per-shift complaints over the week ending ``day`` (one day's are too few for the flag test), and the
    incidents that started on the digest's local day, in words."""
    summary = shifts_for_digest(db, config, day)
    rows = sorted(
        summary["shifts"], key=lambda r: (not r["flagged"], -(r["complaints"] or 0), r["location"], r["shift"])
    )
    shifts = [
        {"location": words.one_line(names.get(r["location"], r["location"])), "shift": words.one_line(r["shift"]),
         "hours": r["hours"].replace("-", "–"), "flagged": r["flagged"], "complaints": r["complaints"],
         "complaints_words": words.plural(r["complaints"], "complaint"), "sentence": words.shift_sentence(r),
         "topics": [words.topic_name(t) for t, _ in r["top_topics"]]}
        for r in rows
    ]  # fmt: skip
    incidents = []
    for i in summary["incidents"]:
        incidents.append({
            "location": words.one_line(names.get(i["location"], i["location"])),
            "complaints": i["complaints"],
            "window": f"{words.local_time(i['window_start'], zone)}–{words.local_clock(i['window_end'], zone)}",
            "shift": words.one_line(i["shift"]) or "off-shift",
            "topic": words.topic_name(i["topic"]) if i["topic"] else "",
            "sources": [words.one_line(s) for s in i["sources"]],
            "link": links.inbox(f"shifts?location={i['location']}&from={day}&to={day}") if i["location"] else None,
        })  # fmt: skip
    few = any(words.shift_verdict(r).startswith("too few") for r in rows)
    note = (f"A shift is compared with the others once it has {config.shifts.min_shift_mentions} mentions and "
            f"{config.shifts.min_shift_complaints} complaints in these days." if few else "")  # fmt: skip
    return {"days": summary["days"], "shifts": shifts, "flagged": [s for s in shifts if s["flagged"]],
            "incidents": incidents, "note": note}  # fmt: skip


def _trends(db, config: Config, day: date) -> dict[str, Any]:
    """Spikes on the digest's day (or the day before) and each brand's net sentiment over two weeks."""
    from monitor.trends.report import trends_report
    from monitor.trends.series import NO_BRAND

    zone = ZoneInfo(config.trends.timezone)
    report = trends_report(db, config.trends, days=TREND_DAYS + ROLLING - 1,
                           now=datetime.combine(day, time(12), tzinfo=zone))  # fmt: skip
    spikes = [
        {"brand": words.one_line(s.brand), "period": s.period.strftime("%a %d %b"), "complaints": s.complaints,
         "baseline": words.whole(s.baseline)}
        for s in report.spikes if day - timedelta(days=1) <= s.period <= day
    ]  # fmt: skip
    brands = sorted({p.brand for p in report.points} - {NO_BRAND}, key=lambda b: (b != config.digest.brand, b))
    first_shown = day - timedelta(days=TREND_DAYS - 1)
    rolling: dict[str, list[tuple[date, float | None]]] = {}
    daily: dict[str, list[tuple[date, float | None]]] = {}
    summary = []
    for brand in brands:
        points = sorted((p for p in report.points if p.brand == brand), key=lambda p: p.period)
        rolling[brand], daily[brand] = [], []
        for i, p in enumerate(points):
            if p.period >= first_shown:
                rolling[brand].append((p.period, _net(points[max(0, i - ROLLING + 1) : i + 1])))
                daily[brand].append((p.period, p.net_sentiment))
        week_ago = day - timedelta(days=ROLLING)
        week = _net([p for p in points if p.period > week_ago])
        before = _net([p for p in points if week_ago - timedelta(days=ROLLING) < p.period <= week_ago])
        summary.append({"brand": words.one_line(brand), "net": words.net_words(week),
                        "before": words.net_words(before)})  # fmt: skip
    return {"spikes": spikes, "rolling": rolling, "daily": daily, "summary": summary}


def _net(points) -> float | None:
    classified = sum(p.complaint + p.neutral + p.praise for p in points)
    return (sum(p.praise for p in points) - sum(p.complaint for p in points)) / classified * 100 if classified else None


def _charts(data: dict[str, Any], trends: dict[str, Any]) -> list[Chart]:
    """The day's pictures: complaints by shift and location, net sentiment per brand, complaint topics."""
    from monitor.web.charts import colours

    charts = []
    shifts = (data.get("shifts") or {}).get("shifts") or []
    if shifts:
        bars = [(f"{s['location']} · {s['shift']}", float(s["complaints"] or 0), s["flagged"]) for s in shifts]
        alt = "; ".join(f"{s['location']} {s['shift']}: {s['complaints_words']}" for s in shifts)
        charts.append(Chart("shifts", f"Complaints by shift, last {SHIFT_DAYS} days",
                            f"Complaints by location and shift over the last {SHIFT_DAYS} days. {alt}",
                            labelled_bars(bars, f"complaints, last {SHIFT_DAYS} days (estimated)")))  # fmt: skip
    if trends["rolling"]:
        alt = "; ".join(f"{s['brand']}: {s['net']} over the last {ROLLING} days" for s in trends["summary"])
        charts.append(Chart("sentiment", f"Net sentiment, last {TREND_DAYS} days",
                            f"Net sentiment per brand over the last {TREND_DAYS} days ({ROLLING}-day average). {alt}",
                            sentiment_lines(trends["rolling"], trends["daily"], colours(list(trends["rolling"])),
                                            "net sentiment")))  # fmt: skip
    if data["topics"]:
        alt = "; ".join(f"{t['name']}: {t['count']}" for t in data["topics"])
        charts.append(Chart("topics", "Complaint topics", f"Complaint topics on the day. {alt}",
                            labelled_bars([(t["name"], t["count"], False) for t in data["topics"][:8]],
                                          "complaints naming it")))  # fmt: skip
    return charts


def gather_digest(
    db: sqlite_utils.Database,
    day: date,
    brand: str = "",
    config: Config | None = None,
    *,
    now: datetime | None = None,
    charts: bool = True,
) -> dict[str, Any]:
    """Everything the digest for ``day`` shows; shifts, incidents, trends and inbox links need ``config``.

    ``day`` is a calendar day in ``[schedule] timezone`` (UTC without a config): local midnight to the
    next local midnight, which is 23 or 25 hours on DST days. ``charts=False`` skips drawing the images.
    """
    now = now or datetime.now(UTC)
    zone = ZoneInfo(config.schedule.timezone) if config else ZoneInfo("UTC")
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    prev = datetime.combine(day - timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    iso = lambda d: d.isoformat()  # noqa: E731  (UTC text, as stored)
    counts = _count_labels(db, iso(start), iso(end))
    previous = _count_labels(db, iso(prev), iso(start))
    links = _Links((config.digest.inbox_url or config.alerts.inbox_url) if config else "")
    names = {loc.id: loc.name or loc.id for loc in config.locations} if config else {}
    labels = [
        {"label": label, "name": words.label_name(label), "count": counts.get(label, 0),
         "previous": previous.get(label, 0), "change": words.change_words(counts.get(label, 0), previous.get(label, 0))}
        for label in [*words.LABEL_ORDER, *sorted((set(counts) | set(previous)) - set(words.LABEL_ORDER))]
        if counts.get(label) or previous.get(label)
    ]  # fmt: skip
    overdue, overdue_total = _overdue(db, now, links, zone)
    trends = _trends(db, config, day) if config else {"spikes": [], "rolling": {}, "summary": []}
    data = {
        "day": day.isoformat(),
        "day_name": words.day_name(day),
        "day_short": day.strftime("%a %d %b"),
        "timezone": zone.key,
        "brand": words.one_line(brand),
        "generated_at": words.local_time(now, zone),
        "counts": counts,
        "previous": previous,
        "labels": labels,
        "total": sum(counts.values()),
        "previous_total": sum(previous.values()),
        "complaints": _mentions(db, "complaint", iso(start), iso(end), COMPLAINTS_SHOWN, names, links, zone),
        "complaints_total": counts.get("complaint", 0),
        "complaints_change": words.change_words(counts.get("complaint", 0), previous.get("complaint", 0)),
        "praise": _mentions(db, "praise", iso(start), iso(end), PRAISE_SHOWN, names, links, zone),
        "topics": _topics(db, iso(start), iso(end)),
        "overdue": overdue,  # the most overdue, OVERDUE_SHOWN at most
        "overdue_total": overdue_total,
        "overdue_more": overdue_total - len(overdue),
        "open_items": digest_store.count_open_items(db),
        # The team's last seven days up to the digest's day: the habit a manager steers.
        "responses": _response_metrics(db, end - timedelta(days=7), end, now),
        "sources": _sources(db, zone),
        "shifts": _shifts(db, config, day, names, links, zone) if config and config.locations else None,
        "spikes": trends["spikes"],
        "sentiment": trends["summary"],
        "inbox_url": links.inbox(),
        "overdue_url": links.inbox("?sla=overdue"),
        "charts": [],
    }
    data["replies"] = words.replies_sentence(data["responses"])
    if charts:
        data["charts"] = _charts(data, trends)
    return data


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor.digest", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["safe_url"] = safe_url
    env.filters["link_url"] = link_url
    env.filters["duration"] = words.human_minutes
    env.filters["plural"] = words.plural
    return env


def render_digest(data: dict[str, Any], fmt: str = "html", images: str = "inline") -> str:
    """``fmt``: html, md (Markdown, values escaped) or text (plain, for reading and the email's text part).

    ``images`` (HTML only): ``inline`` embeds the charts as data: URIs (the file works offline), ``cid``
    references the parts :func:`monitor.digest.send.build_message` attaches.
    """
    template = _environment().get_template(FORMATS[fmt])
    if fmt == "html":
        src = (lambda c: "cid:" + c.cid.strip("<>")) if images == "cid" else (lambda c: c.data_uri)
        return template.render(**data, src=src)
    text = template.render(**data, fmt=fmt, esc=markdown_escape if fmt == "md" else words.one_line)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def save_digest(data: dict[str, Any], output: Path) -> Path:
    """Render gathered digest ``data`` to ``output``: .html, .md for Markdown, .txt for plain text."""
    fmt = SUFFIXES.get(output.suffix.lower(), "html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_digest(data, fmt), encoding="utf-8")
    return output


def write_digest(
    db: sqlite_utils.Database, output: Path, day: date, brand: str = "", config: Config | None = None
) -> Path:
    """Render the digest to ``output`` (.html, .md for Markdown, .txt for plain text)."""
    charts = SUFFIXES.get(output.suffix.lower(), "html") == "html"  # only the HTML shows images
    return save_digest(gather_digest(db, day, brand, config, charts=charts), output)
