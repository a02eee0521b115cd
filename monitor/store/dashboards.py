"""What the dashboard pages read besides the trends: source health, incident mentions, local days in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.db import SQLITE, Dialect
from monitor.db.dialect import local_day


def latest_run_of_each_source(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """The latest crawl run of each source, every column (``crawl_runs.latest_crawl_runs`` without its ordering)."""
    return list(db.query("select * from crawl_runs where id in (select max(id) from crawl_runs group by source)"))


def last_success_of_each_source(db: sqlite_utils.Database) -> list[tuple[str, str | None]]:
    """(source, finished_at) of each source's latest run that ended ``ok``."""
    rows = db.execute("select source, max(finished_at) from crawl_runs where status = 'ok' group by source")
    return [(source, finished) for source, finished in rows]


def runs_started_since(db: sqlite_utils.Database, since: datetime) -> list[tuple[str, str, str, int | None]]:
    """(source, started_at, status, new items) of every crawl run started at or after ``since``."""
    rows = db.execute(
        "select source, started_at, status, new from crawl_runs where started_at >= ?", [since.isoformat()]
    )
    return [(source, started, status, new) for source, started, status, new in rows]


def mentions_with_item_ids(db: sqlite_utils.Database, mention_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Mention id -> the mention's id, source, author, title, text, posted_at and its queue ``item_id`` (or None)."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(mention_ids), 500):  # SQLite's limit on parameters, with room to spare
        chunk = mention_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in db.query(
            "select m.id, m.source, m.author, m.title, m.text, m.posted_at, q.id as item_id from mentions m "
            f"left join queue_items q on q.mention_id = m.id where m.id in ({marks})",
            chunk,
        ):
            out[row["id"]] = row
    return out


# ---------------------------------------------------------------- local days


def local_day_sql(
    column: str, since: datetime, until: datetime, zone: ZoneInfo, dialect: Dialect = SQLITE
) -> tuple[str, dict[str, Any]]:
    """SQL for the local date (``YYYY-MM-DD``) in ``zone`` of a stored time ``column``, exact over [since, until):
    ``date(column, '+N minutes')`` with the UTC offset in force, switching where the zone changes offset (DST).
    Named parameters ``day_cut<i>`` (a julian day on SQLite, epoch seconds on PostgreSQL) and ``day_shift<i>``."""
    offsets = _offsets(since.astimezone(UTC), until.astimezone(UTC), zone)
    params: dict[str, Any] = {f"day_shift{i}": f"{minutes:+d} minutes" for i, (_start, minutes) in enumerate(offsets)}
    if dialect.postgres:
        branches = []
        for i, (start, _minutes) in enumerate(offsets[1:]):
            params[f"day_cut{i}"] = start.timestamp()
            day = local_day(dialect, column, f":day_shift{i}")
            branches.append(f"when {dialect.epoch_seconds(column)} < :day_cut{i} then {day}")
        last = local_day(dialect, column, f":day_shift{len(offsets) - 1}")
        return (f"case {' '.join(branches)} else {last} end" if branches else last), params
    if len(offsets) == 1:
        return f"date({column}, :day_shift0)", params
    branches = []
    for i, (start, _minutes) in enumerate(offsets[1:]):
        params[f"day_cut{i}"] = start.timestamp() / 86400 + 2440587.5  # the julian day of that instant
        branches.append(f"when julianday({column}) < :day_cut{i} then date({column}, :day_shift{i})")
    return f"case {' '.join(branches)} else date({column}, :day_shift{len(offsets) - 1}) end", params


def _offsets(since: datetime, until: datetime, zone: ZoneInfo) -> list[tuple[datetime, int]]:
    """(from when, UTC offset in minutes) for each offset ``zone`` keeps within [since, until), found a day at a
    time and then to the minute (zones change offset at most a few times a year, on a whole minute)."""

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds() // 60)

    out = [(since, offset(since))]
    cursor = since
    while cursor < until:
        following = min(cursor + timedelta(days=1), until)
        if offset(following) != out[-1][1]:
            low, high = cursor, following  # offset(low) is the old one, offset(high) the new
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == out[-1][1] else (low, middle)
            out.append((high.replace(second=0, microsecond=0), offset(high)))
        cursor = following
    return out
