"""Dashboard pages: /trends, /shifts (with incidents), /sources and the /metrics chart.

A blueprint of the inbox app, so the same login, CSRF, Content-Security-Policy and autoescaping
apply. Charts are separate SVG responses shown with ``<img>`` (``img-src 'self'``): the page's own
CSP forbids inline styles, which matplotlib's SVG uses, and an image runs no script. A page and its
charts share one computation through a one-minute cache (dashboard_data.TTLCache).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup

from monitor.config import Config
from monitor.shifts.incidents import list_incidents
from monitor.shifts.report import complaint_heatmap, shift_report
from monitor.trends.export import write_trends_csv, write_trends_png
from monitor.trends.report import trends_report
from monitor.trends.series import period_of
from monitor.web import charts
from monitor.web.dashboard_data import (
    PLATFORM_CAPS,
    TTLCache,
    interval_words,
    mentions_by_id,
    metrics_by_day,
    rate_sentence,
    source_health,
    topic_name,
    topic_series,
)

blueprint = Blueprint("dashboards", __name__)
cache = TTLCache(seconds=60)
DEFAULT_DAYS, MAX_DAYS, SOURCE_DAYS, TOP_TOPICS, INCIDENT_MENTIONS = 30, 366, 14, 5, 10
TREND_CHARTS = ("volume", "net", "complaints", "share", "topics")


def _config() -> Config:
    return current_app.config["MONITOR"]


def _db():
    if "db" not in g:  # the app's teardown gives it back
        g.db = current_app.extensions["monitor_connections"].get()
    return g.db


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat((request.args.get(name) or "").strip()[:10])
    except ValueError:
        return None


def _range(timezone: str) -> tuple[date, date]:
    """The ?from= / ?to= local dates (inclusive), the last 30 days by default, at most a year long."""
    today = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    until = min(_date_arg("to") or today, today + timedelta(days=1))
    since = _date_arg("from") or until - timedelta(days=DEFAULT_DAYS - 1)
    since, until = min(since, until), max(since, until)
    return max(since, until - timedelta(days=MAX_DAYS - 1)), until


@blueprint.app_template_filter("dash_time")
def dash_time(iso: str | None, location: str | None = None) -> Markup:
    """A stored UTC time the way the inbox shows times (its ``when`` filter, ``inbox_view.time_filter``): local
    (the location's zone, else ``[schedule] timezone``) in a ``<time>`` element with the UTC time on hover."""
    if not iso:
        return Markup("–")
    return current_app.jinja_env.filters["when"](iso, location)


blueprint.add_app_template_filter(topic_name, "dash_topic")


@blueprint.app_template_filter("dash_day")
def dash_day(day: date | str) -> str:
    """A calendar day (or an ISO date string, as stored for shift dates) the same way everywhere."""
    try:
        day = date.fromisoformat(day) if isinstance(day, str) else day
    except ValueError:
        return str(day)
    return day.strftime("%a %d %b %Y")


def _svg(body: bytes) -> Response:
    return Response(body, mimetype="image/svg+xml")  # the app marks it no-store, like every page


# ---------------------------------------------------------------- trends


def _trend_args() -> tuple[date, date, str, tuple[str, ...]]:
    since, until = _range(_config().trends.timezone)
    by = "week" if request.args.get("by") == "week" else "day"
    brands = tuple(sorted({b.strip() for b in request.args.getlist("brand") if b.strip()}))
    return since, until, by, brands


def _config_brands(config: Config) -> set[str]:
    names = {s.brand for s in config.sources if s.brand}
    for source in config.sources:
        table = source.options.get("brands")
        names |= set(table) if isinstance(table, dict) else set()
    return names


def _trends(args: tuple[date, date, str, tuple[str, ...]]) -> dict[str, Any]:
    since, until, by, brands = args
    config = _config()
    zone = ZoneInfo(config.trends.timezone)
    report = trends_report(_db(), config.trends, days=(until - since).days + 1, by=by, brands=list(brands) or None,
                           now=datetime.combine(until, time(12), tzinfo=zone))  # fmt: skip
    names = sorted({p.brand for p in report.points})
    series = {name: sorted((p for p in report.points if p.brand == name), key=lambda p: p.period) for name in names}
    window = 7 if by == "day" else 4
    rolling, rate = {}, {}
    for name, points in series.items():
        rolling[name], rate[name] = [], []
        for i, p in enumerate(points):
            part = points[max(0, i - window + 1) : i + 1]
            classified = sum(q.complaint + q.neutral + q.praise for q in part)
            net = (
                (sum(q.praise for q in part) - sum(q.complaint for q in part)) / classified * 100
                if classified
                else None
            )
            rolling[name].append((p.period, net))
            mine = p.complaint + p.neutral + p.praise
            rate[name].append((p.period, 100 * p.complaint / mine if mine else None))
    first = min((p.period for p in report.points), default=since)
    topics = topic_series(_db(), datetime.combine(first, time(), tzinfo=zone),
                          datetime.combine(until + timedelta(days=1), time(), tzinfo=zone), by, config.trends.timezone,
                          list(brands) or None)  # fmt: skip
    totals = sorted(((sum(c.values()), t) for t, c in topics.items()), key=lambda kv: (-kv[0], kv[1]))
    periods = sorted({p.period for p in report.points})
    top = [t for _, t in totals[:TOP_TOPICS]]
    all_complaints = sum(p.complaint for p in report.points) or 1
    return {
        "report": report, "series": series, "rolling": rolling, "rate": rate, "window": window,
        "summary": report.brand_summary(), "periods": periods,
        "topics": [{"name": topic_name(t), "count": n, "share": n / all_complaints} for n, t in totals[:10]],
        "topic_series": {topic_name(t): [(d, topics[t].get(d, 0)) for d in periods] for t in top},
        "brands": names,
    }  # fmt: skip


@blueprint.get("/trends")
def trends():
    args = _trend_args()
    data = cache.get(("trends", str(_config().storage_target), args), lambda: _trends(args))
    since, until, by, brands = args
    known = sorted(_config_brands(_config()) | set(data["brands"]) | set(brands))
    query = {"from": since.isoformat(), "to": until.isoformat(), "by": by, "brand": list(brands)}
    return render_template("trends.html", data=data, since=since, until=until, by=by, brands=brands, known=known,
                           query=query, charts=TREND_CHARTS, timezone=_config().trends.timezone)  # fmt: skip


@blueprint.get("/trends/chart/<name>.svg")
def trends_chart(name: str):
    if name not in TREND_CHARTS:
        abort(404)
    args = _trend_args()
    data = cache.get(("trends", str(_config().storage_target), args), lambda: _trends(args))
    palette = charts.colours(sorted(_config_brands(_config()) | set(data["brands"])))
    series = data["series"]
    flagged = {(s.brand, s.period) for s in data["report"].spikes}
    # Today (or this week) is still filling up: dotted, not read as a collapse.
    partial = period_of(datetime.now(UTC), ZoneInfo(_config().trends.timezone), args[2])
    if name == "volume":
        body = charts.line_chart({n: [(p.period, p.mentions) for p in ps] for n, ps in series.items()},
                                 "mentions", palette, partial_from=partial)  # fmt: skip
    elif name == "net":
        faint = {n: [(p.period, p.net_sentiment) for p in ps] for n, ps in series.items()}
        marks = {n: [pt for pt in data["rolling"][n] if (n, pt[0]) in flagged] for n in series}
        body = charts.line_chart(data["rolling"], "net sentiment", palette, marks=marks, faint=faint,
                                 ylim=(-100, 100), zero_line=True, partial_from=partial)  # fmt: skip
    elif name == "complaints":
        marks = {n: [pt for pt in data["rate"][n] if (n, pt[0]) in flagged] for n in series}
        body = charts.line_chart(data["rate"], "complaints, % of mentions", palette, marks=marks,
                                 partial_from=partial)  # fmt: skip
    elif name == "share":
        shares = {n: [(p.period, p.share_of_voice) for p in ps] for n, ps in series.items() if n != "(no brand)"}
        body = charts.share_chart(shares, palette)
    else:
        body = charts.line_chart(data["topic_series"], "complaints naming it",
                                 charts.colours(list(data["topic_series"])), partial_from=partial)  # fmt: skip
    return _svg(body)


@blueprint.get("/trends.<fmt>")
def trends_download(fmt: str):
    if fmt not in ("csv", "png"):
        abort(404)
    since, until, by, brands = args = _trend_args()
    report = cache.get(("trends", str(_config().storage_target), args), lambda: _trends(args))["report"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"trends.{fmt}"
        if fmt == "csv":
            write_trends_csv(path, report.points, report.spikes)
        else:
            write_trends_png(path, report.points, report.spikes)
        body = path.read_bytes()
    name = f"trends-{since.isoformat()}-{until.isoformat()}-{by}.{fmt}"
    return Response(body, mimetype="text/csv" if fmt == "csv" else "image/png",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


# ---------------------------------------------------------------- shifts


def _shift_args() -> tuple[date, date, str | None]:
    since, until = _range(_config().schedule.timezone)
    location = request.args.get("location") or None
    return since, until, location if location in {loc.id for loc in _config().locations} else None


@blueprint.get("/incidents")
def incidents():
    """Incidents live on the shifts page, beside the shift that was on: same range and location filters."""
    query = {k: v for k, v in request.args.items() if k in ("from", "to", "location")}
    return redirect(url_for("dashboards.shifts", **query) + "#incidents")


@blueprint.get("/shifts")
def shifts():
    config = _config()
    since, until, location = _shift_args()
    rows = shift_report(_db(), config, since, until, location)
    for row in rows:
        row["rate_words"] = rate_sentence(row["rate"]) if row["mentions"] else "no mentions"
        row["interval_words"] = interval_words(row["ci_low"], row["ci_high"]) if row["mentions"] else ""
    zone = ZoneInfo(config.schedule.timezone)
    incidents = list_incidents(_db(), datetime.combine(since, time(), tzinfo=zone),
                               datetime.combine(until + timedelta(days=1), time(), tzinfo=zone), location)  # fmt: skip
    mentions = mentions_by_id(_db(), [m for i in incidents for m in i["mention_ids"][:INCIDENT_MENTIONS]])
    locations = [loc for loc in config.locations if not location or loc.id == location]
    return render_template(
        "shifts.html", locations=locations, all_locations=config.locations, location=location, since=since,
        until=until, rows=rows, incidents=incidents, mentions=mentions, roster=bool(config.shifts.roster),
        names={loc.id: loc.name or loc.id for loc in config.locations}, shown=INCIDENT_MENTIONS,
        timezone=config.schedule.timezone,
    )  # fmt: skip


@blueprint.get("/shifts/heatmap/<location>.svg")
def shifts_heatmap(location: str):
    config = _config()
    known = {loc.id: loc for loc in config.locations}
    if location not in known:
        abort(404)
    since, until, _ = _shift_args()
    key = ("heatmap", str(config.storage_target), since, until, location)
    grids = cache.get(key, lambda: complaint_heatmap(_db(), config, since, until, location))
    return _svg(charts.heatmap_chart(grids[location], known[location].timezone))


# ---------------------------------------------------------------- sources


def _health() -> dict[str, dict[str, Any]]:
    config = _config()
    since = datetime.now(UTC) - timedelta(days=SOURCE_DAYS)
    return cache.get(("sources", str(config.storage_target), since.strftime("%Y%m%d%H%M")),
                     lambda: source_health(_db(), since, config.schedule.timezone))  # fmt: skip


@blueprint.get("/sources")
def sources():
    config = _config()
    health = _health()
    rows = []
    for source in config.sources:
        state = health.get(source.name, {})
        rows.append({"name": source.name, "type": source.type, "enabled": source.enabled, "brand": source.brand,
                     "location": source.location, "cap": PLATFORM_CAPS.get(source.type, ""), **state})  # fmt: skip
    configured = {s.name for s in config.sources}
    for name in sorted(set(health) - configured):  # crawled once, since removed from the config
        rows.append({"name": name, "type": "not configured", "enabled": False, "cap": "", **health[name]})
    for row in rows:
        row["new_items"] = sum(row.get("per_day", {}).values())
    return render_template("sources.html", rows=rows, days=SOURCE_DAYS, timezone=config.schedule.timezone,
                           chart_height=charts.sources_chart_height(len(rows)))  # fmt: skip


@blueprint.get("/sources/chart.svg")
def sources_chart():
    config = _config()
    health = _health()
    today = datetime.now(UTC).astimezone(ZoneInfo(config.schedule.timezone)).date()
    days = [today - timedelta(days=i) for i in range(SOURCE_DAYS - 1, -1, -1)]
    names = [s.name for s in config.sources] + sorted(set(health) - {s.name for s in config.sources})
    series = {n: [(d, health.get(n, {}).get("per_day", {}).get(d, 0)) for d in days] for n in names}
    return _svg(charts.sources_chart(series, days))


# ---------------------------------------------------------------- metrics


@blueprint.get("/metrics/chart.svg")
def metrics_chart():
    config = _config()
    days_arg = request.args.get("days", "30")
    days = min(max(int(days_arg), 1), 3650) if days_arg.isascii() and days_arg.isdigit() else 30
    now = datetime.now(UTC)
    points = cache.get(("metrics", str(config.storage_target), days, now.strftime("%Y%m%d%H%M")),
                       lambda: metrics_by_day(_db(), now - timedelta(days=days), now + timedelta(seconds=1),
                                              config.schedule.timezone, now, weekly=days > 31))  # fmt: skip
    return _svg(charts.metrics_chart([d for d, _ in points], [m.median_first_response_minutes for _, m in points],
                                     [m.response_rate for _, m in points]))  # fmt: skip
