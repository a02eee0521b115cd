"""`monitor shifts`: complaint rate per location and shift, with intervals, flags, topics and roster.

Counts are sums of attribution weights: a mention whose incident window spans two
shifts counts half to each. Only mentions with a sentiment label (complaint, neutral,
praise) count; ``unclassified_language`` ones say nothing about the rate. The date
range filters on the shift date (the local date the shift started).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlite_utils

from monitor.config import Config
from monitor.db import errors as db_errors
from monitor.shifts.attribute import OFF_SHIFT
from monitor.shifts.localtime import zone
from monitor.shifts.roster import load_roster, staff_on
from monitor.shifts.stats import flag_shifts, wilson_interval
from monitor.store import shifts as shifts_store
from monitor.store import write_transaction

DEFAULT_DAYS = 30
CSV_COLUMNS = ("location", "shift", "hours", "mentions", "complaints", "rate", "ci_low", "ci_high", "p_value",
               "flagged", "top_topics", "staff")  # fmt: skip


def date_range(since: date | None, until: date | None) -> tuple[date, date]:
    """Inclusive local-date range; the last 30 days by default."""
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    return since, until


def shift_counts(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """(location, shift) -> {mentions, complaints, topics, days} summed over attribution weights.

    From the per-shift-date rollups (``shift_day_counts``, ``shift_day_topics``; store migration 8) where the
    store has them, recounting the dates a change marked dirty first; else from every attribution row."""
    if not refresh_shift_rollups(db):
        return counts_from_rows(db, since, until, location)
    out = _buckets()
    for loc, shift, shift_date, mentions, complaints in shifts_store.shift_day_counts(db, since, until, location):
        bucket = out[(loc, shift)]
        bucket["mentions"] += mentions or 0.0
        bucket["complaints"] += complaints or 0.0
        bucket["days"].add(shift_date)
    for loc, shift, topic, weight in shifts_store.shift_day_topics(db, since, until, location):
        out[(loc, shift)]["topics"][topic] += weight or 0.0
    return out


def _buckets() -> dict[tuple[str, str], dict[str, Any]]:
    return defaultdict(lambda: {"mentions": 0.0, "complaints": 0.0, "topics": defaultdict(float), "days": set()})


def refresh_shift_rollups(db: sqlite_utils.Database) -> bool:
    """Recount the shift dates a change marked dirty (store migration 8); False when the store has no rollups."""
    if not shifts_store.has_shift_rollups(db):
        return False
    if not shifts_store.has_dirty_shift_dates(db):
        return True
    try:
        with write_transaction(db):  # the write lock: nothing can mark a date between the recount and the clearing
            shifts_store.recount_dirty_shift_dates(db)
    except db_errors.BUSY_ERRORS:  # a read-only store, or a writer holding the lock past busy_timeout
        return False  # the rows still answer, only slower
    return True


def counts_from_rows(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """:func:`shift_counts` from every attribution row in the range (a store without the rollups)."""
    out = _buckets()
    for row in shifts_store.rated_attributions(db, since, until, location):
        bucket = out[(row["location"], row["shift"])]
        bucket["mentions"] += row["weight"] or 0.0
        bucket["days"].add(row["shift_date"])
        if row["label"] == "complaint":
            bucket["complaints"] += row["weight"] or 0.0
            for topic in topic_names(row["topics"]):
                bucket["topics"][topic] += row["weight"] or 0.0
    return out


def topic_names(topics: str | None) -> list[str]:
    """The names in a classification's topics (a JSON list), as the rollup reads them: text items only."""
    try:
        names = json.loads(topics or "[]")
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def shift_report(
    db: sqlite_utils.Database,
    config: Config,
    since: date | None = None,
    until: date | None = None,
    location: str | None = None,
) -> list[dict[str, Any]]:
    """One row per configured shift (and off-shift, when it has mentions) of each location."""
    if location:
        config.location(location)  # a ConfigError naming the known ids when it is wrong
    since, until = date_range(since, until)
    counts = shift_counts(db, since, until, location)
    roster = load_roster(config)
    days = [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]
    settings = config.shifts
    rows = []
    for loc in config.locations:
        if location and loc.id != location:
            continue
        names = [s.name for s in loc.shifts]
        empty = {"mentions": 0.0, "complaints": 0.0, "topics": {}, "days": set()}
        per_shift = {name: counts.get((loc.id, name), empty) for name in names}
        flags = flag_shifts(
            {name: (c["complaints"], c["mentions"]) for name, c in per_shift.items()},
            alpha=settings.alpha,
            min_mentions=settings.min_shift_mentions,
            min_complaints=settings.min_shift_complaints,
        )
        if (loc.id, OFF_SHIFT) in counts:
            per_shift[OFF_SHIFT] = counts[(loc.id, OFF_SHIFT)]
        hours = {s.name: s.hours for s in loc.shifts}
        for name, c in per_shift.items():
            low, high = wilson_interval(c["complaints"], c["mentions"])
            flag = flags.get(name)
            top = sorted(c["topics"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            rows.append(
                {
                    "location": loc.id,
                    "shift": name,
                    "hours": hours.get(name, ""),
                    "mentions": round(c["mentions"], 2),
                    "complaints": round(c["complaints"], 2),
                    "rate": round(c["complaints"] / c["mentions"], 4) if c["mentions"] else None,
                    "ci_low": round(low, 4),
                    "ci_high": round(high, 4),
                    "p_value": round(flag.p_value, 6) if flag and flag.p_value is not None else None,
                    "flagged": bool(flag and flag.flagged),
                    "top_topics": [[topic, round(weight, 2)] for topic, weight in top],
                    "staff": staff_on(roster, loc.id, name, days) if name != OFF_SHIFT else {},
                }
            )
    return rows


# ------------------------------------------------------------------ heatmap


def complaint_heatmap(
    db: sqlite_utils.Database,
    config: Config,
    since: date | None = None,
    until: date | None = None,
    location: str | None = None,
) -> dict[str, list[list[float]]]:
    """location -> 7 x 24 grid (Monday first, local hours) of complaints by estimated incident time.

    A complaint's window is spread over the hours it covers, like attribution; a point goes to its hour.
    Each window is split at UTC quarter hours (zone offsets are whole, half or three-quarter hours, so a piece
    lies in one local hour); the pieces are summed per quarter hour with a running sum for the whole quarters
    in between, and each quarter hour that has any is then placed in its location's local weekday and hour.
    """
    since, until = date_range(since, until)
    grids: dict[str, list[list[float]]] = {}
    timezones = {loc.id: zone(loc.timezone) for loc in config.locations}
    for loc in config.locations:
        if not location or loc.id == location:
            grids[loc.id] = [[0.0] * 24 for _ in range(7)]
    quarters: dict[str, dict[int, float]] = {loc: defaultdict(float) for loc in grids}
    runs: dict[str, dict[int, float]] = {loc: defaultdict(float) for loc in grids}  # steps of a running sum
    for loc, start, end in shifts_store.complaint_windows(db, since, until, location):
        if loc not in grids or start is None or end is None:
            continue
        first, last = int(start // QUARTER), int(end // QUARTER)
        if end <= start or first == last:
            quarters[loc][first] += 1.0
            continue
        total = end - start
        quarters[loc][first] += ((first + 1) * QUARTER - start) / total
        quarters[loc][last] += (end - last * QUARTER) / total
        if last > first + 1:
            runs[loc][first + 1] += QUARTER / total
            runs[loc][last] -= QUARTER / total
    for loc, grid in grids.items():
        cells, steps, level = quarters[loc], runs[loc], 0.0
        if steps:
            for quarter in range(min(steps), max(steps) + 1):
                level += steps.get(quarter, 0.0)
                if abs(level) > 1e-12:  # what a window's steps up and down leave over is rounding, not weight
                    cells[quarter] += level
        tz = timezones[loc]
        for quarter, weight in cells.items():
            if weight:
                local = datetime.fromtimestamp(quarter * QUARTER, tz)
                grid[local.weekday()][local.hour] += weight
    return grids


QUARTER = 900  # seconds


# ------------------------------------------------------------------ output


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'location':<12} {'shift':<12} {'hours':<11} {'mentions':>8} {'complaints':>10} {'rate':>7} "
        f"{'95% CI':>15}  flag  top topics / staff"
    ]
    for r in rows:
        ci = f"{_pct(r['ci_low'])}-{_pct(r['ci_high'])}" if r["mentions"] else "-"
        topics = ", ".join(t for t, _ in r["top_topics"])
        staff = ", ".join(r["staff"])
        extra = "; ".join(x for x in (topics, f"staff: {staff}" if staff else "") if x)
        lines.append(
            f"{r['location']:<12} {r['shift']:<12} {r['hours']:<11} {r['mentions']:>8.1f} {r['complaints']:>10.1f} "
            f"{_pct(r['rate']):>7} {ci:>15}  {'HIGH' if r['flagged'] else '    '}  {extra}"
        )
    return "\n".join(lines)


def format_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        for key, value in row.items():
            if key == "top_topics":
                flat[key] = "; ".join(f"{t} {w:g}" for t, w in value)
            elif key == "staff":
                flat[key] = "; ".join(f"{name} ({n})" for name, n in value.items())
            elif isinstance(value, list | dict):
                flat[key] = json.dumps(value, ensure_ascii=False)
        writer.writerow(flat)
    return buffer.getvalue()


INCIDENT_COLUMNS = ("id", "location", "window_start", "window_end", "shift", "shift_date", "complaints", "topic",
                    "sources", "mention_ids")  # fmt: skip


def format_incidents(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no incidents in this range"
    lines = [f"{'#':>4} {'location':<12} {'from (UTC)':<20} {'to':<20} {'shift':<16} {'n':>3}  topic · sources"]
    for r in rows:
        shift = f"{r['shift']} {r['shift_date']}"
        lines.append(
            f"{r['id']:>4} {r['location']:<12} {r['window_start'][:16]:<20} {r['window_end'][:16]:<20} "
            f"{shift:<16} {r['complaints']:>3}  {r['topic'] or '-'} · {', '.join(r['sources'])}"
        )
    return "\n".join(lines)
