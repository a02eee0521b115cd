"""What deserves an alert now. Each alert has a kind and a subject key that names it for good.

| kind | raised for | subject key |
|---|---|---|
| ``urgent_item`` | an open queue item whose mention carries one of ``[alerts] flags`` | the queue item id |
| ``incident`` | an incident (``monitor/shifts/incidents.py``) | ``location@window_start`` |
| ``spike`` | a brand's complaint spike today (``monitor/trends``) | ``brand@day`` |
| ``sla_breach`` | an open item whose SLA has passed (priority ≥ ``sla_min_priority``) | ``item id@sla_due_at`` |

Only what happened within ``[alerts] max_age`` counts, so switching alerts on (or crawling a
source's backlog for the first time) does not page anyone about last month. Mentions marked
``backfill`` (no trustworthy time: no date in the payload, or found on a source's first crawl long
after they were posted) raise no urgent-item or SLA alert and make no incident look new: their
clocks would start at the crawl, not at the post. Mention text in an
alert is an excerpt: control and bidi characters removed, whitespace collapsed, truncated. It is
still hostile — the renderers escape it.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.config import Config
from monitor.escaping import safe_url
from monitor.shifts.localtime import parse_utc
from monitor.shifts.stage import LocationResolver
from monitor.store import alerts as alerts_store
from monitor.trends.report import trends_report
from monitor.trends.series import NO_BRAND

log = logging.getLogger("monitor.alerts")

FLAG_NAMES = {
    "safety_health": "Safety / health",
    "legal_threat": "Legal threat",
    "churn_threat": "Churn threat",
    "high_reach": "High reach",
    "question": "Question",
}
MAX_EXCERPTS = 3  # mentions quoted in an incident or spike alert
_BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass
class Alert:
    """One alert. ``title`` holds no mention text (it becomes an email subject); ``facts`` values,
    ``excerpts`` and ``detail`` may (authors, brands and texts come from strangers)."""

    kind: str
    key: str
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    excerpts: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, http(s) URL)
    detail: dict[str, Any] = field(default_factory=dict)  # structured, for the JSON webhook and the ledger

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "title": self.title, "facts": dict(self.facts),
                "excerpts": list(self.excerpts), "links": dict(self.links), "detail": self.detail}  # fmt: skip


def excerpt(text: str | None, limit: int) -> str:
    """Mention text fit for an alert: no control or bidi-override characters, one line, at most ``limit`` chars."""
    cleaned = "".join(
        " " if ch.isspace() else ch
        for ch in (text or "")
        if ch.isspace() or (unicodedata.category(ch) != "Cc" and ch not in _BIDI)
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    if len(cleaned) <= limit:
        return cleaned
    cut = cleaned[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip() + "…"


def _one_line(value: Any, limit: int = 80) -> str:
    return excerpt("" if value is None else str(value), limit)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


class _Context:
    """What every detector needs: config, clock, location names and zones, links."""

    def __init__(self, config: Config, now: datetime) -> None:
        self.config = config
        self.alerts = config.alerts
        self.now = now
        self.cutoff = now - config.alerts.max_age
        self.locations = {loc.id: loc for loc in config.locations}
        self.inbox = config.alerts.inbox_url.rstrip("/")
        self._resolver: LocationResolver | None = None

    def place(self, db: sqlite_utils.Database, row: dict[str, Any]) -> None:
        """Fill ``row["location"]`` the way the shifts stage would, when it has not run on the mention yet."""
        if row["location"] or not self.locations:
            return
        self._resolver = self._resolver or LocationResolver(self.config)
        row["location"] = self._resolver({**row, "raw": alerts_store.mention_raw(db, row["mention_id"])})

    def location_name(self, location_id: str | None) -> str:
        if not location_id:
            return ""
        location = self.locations.get(location_id)
        return (location.name or location.id) if location else location_id

    def local(self, moment: datetime | None, location_id: str | None = None) -> str:
        """A time for people: in the location's zone when known, else UTC."""
        if moment is None:
            return ""
        location = self.locations.get(location_id or "")
        zone = ZoneInfo(location.timezone) if location else UTC
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    def inbox_link(self, path: str) -> list[tuple[str, str]]:
        return [("Inbox", f"{self.inbox}{path}")] if self.inbox else []

    def mention_link(self, url: str | None) -> list[tuple[str, str]]:
        link = safe_url(url)
        # A crawled URL with a line break or other invisible character could add a fake line to the text.
        if link == "#" or any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in link):
            return []
        return [("Mention", link)]

    def mention_facts(self, row: dict[str, Any], location: str | None) -> list[tuple[str, str]]:
        facts = [("Source", _one_line(row["source"]))]
        if row.get("brand"):
            facts.append(("Brand", _one_line(row["brand"])))
        if location:
            facts.append(("Location", _one_line(self.location_name(location))))
        if row.get("author"):
            reach = f" ({row['author_reach']} followers)" if row.get("author_reach") else ""
            facts.append(("Author", _one_line(row["author"]) + reach))
        if row.get("rating") is not None:
            facts.append(("Rating", f"{row['rating']:g}/5"))
        posted = parse_utc(row.get("posted_at") or row.get("first_seen_at"))
        if posted:
            facts.append(("Posted", self.local(posted, location)))
        return facts

    def mention_text(self, row: dict[str, Any]) -> str:
        title, text = row.get("title") or "", row.get("text") or ""
        return excerpt(f"{title} — {text}" if title and title not in text else text, self.alerts.excerpt_chars)


def urgent_item_alerts(db: sqlite_utils.Database, ctx: _Context) -> list[Alert]:
    """Open items created within max_age whose mention (posted within max_age) carries an alerting flag."""
    out = []
    for row in alerts_store.open_items_created_since(db, _stamp(ctx.cutoff)):
        flags = [f for f in ctx.alerts.flags if f in json.loads(row["urgency"] or "[]")]
        posted = parse_utc(row["posted_at"])
        if posted and posted.time() == datetime.min.time():
            posted += timedelta(days=1)  # a date-only post time (midnight UTC) may be any time that day
        seen = parse_utc(row["first_seen_at"])
        if not flags or (seen and seen < ctx.cutoff) or (posted and posted < ctx.cutoff):
            continue
        ctx.place(db, row)
        what = row["label"] or "mention"
        where = f" at {ctx.location_name(row['location'])}" if row["location"] else ""
        title = f"{', '.join(FLAG_NAMES.get(f, f) for f in flags)}: {what} on {row['source']}{where}"
        due = parse_utc(row["sla_due_at"])
        facts = ctx.mention_facts(row, row["location"])
        facts.append(("Flags", ", ".join(flags)))
        if due:
            facts.append(("Answer by", ctx.local(due, row["location"])))
        out.append(
            _item_alert(
                ctx,
                row,
                "urgent_item",
                str(row["item_id"]),
                title,
                facts,
                flags=flags,
                brand=row["brand"],
                location=row["location"],
            )  # fmt: skip
        )
    return out


def _item_alert(ctx: _Context, row: dict[str, Any], kind: str, key: str, title: str,
                facts: list[tuple[str, str]], **detail: Any) -> Alert:  # fmt: skip
    """An alert about one queue item: its text, links to the inbox and the platform, and its facts."""
    return Alert(
        kind=kind,
        key=key,
        title=title,
        facts=facts,
        excerpts=[ctx.mention_text(row)],
        links=ctx.inbox_link(f"/items/{row['item_id']}") + ctx.mention_link(row["url"]),
        detail={
            "queue_item_id": row["item_id"],
            "mention_id": row["mention_id"],
            "label": row["label"],
            "source": row["source"],
            "sla_due_at": row["sla_due_at"],
            "priority": row["priority"],
            **detail,
        },  # fmt: skip
    )


def incident_alerts(db: sqlite_utils.Database, ctx: _Context) -> list[Alert]:
    """Incidents with a complaint we first saw within max_age (whenever the visits were)."""
    out = []
    newest_seen = alerts_store.incidents_newest_seen(db)
    for row in alerts_store.all_incidents(db):
        start, end = parse_utc(row["window_start"]), parse_utc(row["window_end"])
        if start is None or end is None:
            continue
        # New to us is what matters: reviews often arrive days after the visit they describe.
        newest = newest_seen.get(row["id"])
        if newest is None or parse_utc(newest) < ctx.cutoff:
            continue
        location = row["location"]
        name = ctx.location_name(location)
        mentions = alerts_store.incident_latest_mentions(db, row["id"], MAX_EXCERPTS)
        sources = json.loads(row["sources"] or "[]")
        facts = [("Location", _one_line(name)), ("Complaints", str(row["complaints"])),
                 ("Between", f"{ctx.local(start, location)} and {ctx.local(end, location)}")]  # fmt: skip
        if row["shift"]:
            facts.append(("Shift", f"{_one_line(row['shift'])} on {row['shift_date']}"))
        if row["topic"]:
            facts.append(("Main topic", _one_line(row["topic"])))
        facts.append(("Sources", _one_line(", ".join(sources), 200)))
        out.append(
            Alert(
                kind="incident",
                key=f"{location}@{row['window_start']}",
                title=f"Incident at {name}: {row['complaints']} complaints within "
                f"{_span(end - start)}" + (f" ({row['topic']})" if row["topic"] else ""),
                facts=facts,
                excerpts=[ctx.mention_text(m) for m in mentions],
                links=ctx.inbox_link(f"/?location={quote(location, safe='')}")
                + [link for m in mentions[:1] for link in ctx.mention_link(m["url"])],
                detail={
                    "incident_id": row["id"],
                    "location": location,
                    "window_start": row["window_start"],
                    "window_end": row["window_end"],
                    "complaints": row["complaints"],
                    "shift": row["shift"],
                    "shift_date": row["shift_date"],
                    "topic": row["topic"],
                    "sources": sources,
                },  # fmt: skip
            )
        )
    return out


def _span(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 1)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h".replace(".0 h", " h")


def spike_alerts(db: sqlite_utils.Database, ctx: _Context) -> list[Alert]:
    """Brands whose complaints today (``[trends] timezone``) are a spike by ``monitor trends``' test."""
    trends = ctx.config.trends
    zone = ZoneInfo(trends.timezone)
    today = ctx.now.astimezone(zone).date()
    report = trends_report(db, trends, days=1, by="day", brands=ctx.alerts.spike_brands or None, now=ctx.now)
    start = datetime.combine(today, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    out = []
    for spike in report.spikes:
        if spike.period != today:
            continue
        complaints = alerts_store.brand_complaints_since(db, spike.brand, _stamp(start), MAX_EXCERPTS, NO_BRAND)
        facts = [("Brand", _one_line(spike.brand)), ("Day", f"{today.isoformat()} ({trends.timezone})"),
                 ("Complaints today", str(spike.complaints)), ("Normal", f"{spike.baseline:g} a day"),
                 ("Chance on a normal day", f"{spike.p_value:.1g}")]  # fmt: skip
        if spike.net_sentiment is not None:
            facts.append(("Net sentiment today", f"{spike.net_sentiment:+.0f}"))
        out.append(
            Alert(
                kind="spike",
                key=f"{spike.brand}@{today.isoformat()}",
                title=f"Complaint spike for {_one_line(spike.brand)} today: {spike.complaints} complaints "
                f"(normal {spike.baseline:g})",
                facts=facts,
                excerpts=[ctx.mention_text(m) for m in complaints],
                links=ctx.inbox_link(f"/?brand={quote(spike.brand, safe='')}&label=complaint")
                if spike.brand != NO_BRAND
                else ctx.inbox_link("/?label=complaint"),
                detail=spike.as_dict(),
            )
        )
    return out


def sla_alerts(db: sqlite_utils.Database, ctx: _Context) -> list[Alert]:
    """Open items whose SLA passed within max_age, with at least ``sla_min_priority``."""
    out = []
    from monitor.queue.items import priority, severity, sla_for

    for row in alerts_store.open_items_due_between(db, _stamp(ctx.cutoff), _stamp(ctx.now)):
        due = parse_utc(row["sla_due_at"])
        if due is None or not ctx.cutoff <= due <= ctx.now:
            continue
        # Judge the item as it stood at its deadline: the stored priority keeps climbing once overdue,
        # so a mild item would otherwise pass the bar hours later and alert late.
        flags = json.loads(row["urgency"] or "[]")
        complaint = json.loads(row["probs"] or "{}").get("complaint") if row["label"] == "complaint" else 0.0
        sla = sla_for(row["kind"], ctx.config.queue, row["source"], flags)
        at_deadline = priority(severity(complaint, row["rating"], flags), row["author_reach"], due, due, sla)
        if at_deadline < ctx.alerts.sla_min_priority:
            continue
        ctx.place(db, row)
        late = _span(ctx.now - due)
        what = row["label"] or "mention"
        where = f" at {ctx.location_name(row['location'])}" if row["location"] else ""
        facts = ctx.mention_facts(row, row["location"])
        facts += [("Answer was due", ctx.local(due, row["location"])), ("Priority", f"{row['priority']:.1f}"),
                  ("State", row["state"] + (f" (assigned to {_one_line(row['assignee'])})"
                                            if row["assignee"] else ""))]  # fmt: skip
        title = f"SLA passed {late} ago: {what} on {row['source']}{where} is unanswered"
        key = f"{row['item_id']}@{row['sla_due_at']}"
        out.append(_item_alert(ctx, row, "sla_breach", key, title, facts, state=row["state"], assignee=row["assignee"]))
    return out


def detect_alerts(db: sqlite_utils.Database, config: Config, now: datetime | None = None) -> list[Alert]:
    """Every alert the enabled triggers raise now (sent or not), most urgent kind first."""
    ctx = _Context(config, now or datetime.now(UTC))
    alerts: list[Alert] = []
    triggers = [
        (ctx.alerts.urgent_items and bool(ctx.alerts.flags), urgent_item_alerts),
        (ctx.alerts.incidents, incident_alerts),
        (ctx.alerts.spikes, spike_alerts),
        (ctx.alerts.sla_breaches, sla_alerts),
    ]
    for enabled, trigger in triggers:
        if not enabled:
            continue
        try:
            alerts += trigger(db, ctx)
        except Exception as exc:  # noqa: BLE001 - one broken trigger must not silence the others
            log.error("alerts: %s failed: %s: %s", trigger.__name__, type(exc).__name__, exc)
    return alerts
