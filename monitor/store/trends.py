"""Trend reads: mention counts per brand, label and topic from the hourly rollups or the rows, and their recount."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.store.migrations import take_dirty_marks, topic_items_sql, trend_hour_sql

NO_BRAND = "(no brand)"
# A mention with a day: dated, or (stored before backfill existed, or by hand) first seen on it.
HAS_DAY = "not (m.backfill = 1 and m.posted_at is null)"

# (start hour, stop hour, period) runs passed as one JSON parameter: no limit on how many.
RUNS_SQL = ("select json_extract(value, '$[0]') as start, json_extract(value, '$[1]') as stop, "
            "json_extract(value, '$[2]') as period from json_each(?)")  # fmt: skip


def runs_sql(db: Any) -> str:
    """:data:`RUNS_SQL` for the engine of ``db`` (PostgreSQL reads the JSON parameter as jsonb)."""
    dialect = dialect_of(db)
    if not dialect.postgres:
        return RUNS_SQL
    items = ", ".join(
        f"{dialect.json_item('r.value', i)} as {name}" for i, name in enumerate(("start", "stop", "period"))
    )
    return f"select {items} from jsonb_array_elements(cast(? as jsonb)) r"


def json_list_param(db: Any) -> str:
    """A subquery of the text values of a JSON list passed as the next ``?`` (``x in (...)``)."""
    if dialect_of(db).postgres:
        return "select value from jsonb_array_elements_text(cast(? as jsonb))"
    return "select value from json_each(?)"


def _utc_text(moment: datetime) -> str:
    # Stored times are UTC text: compare with UTC text, whatever zone the bounds were made in.
    return moment.astimezone(UTC).isoformat()


# ---------------------------------------------------------------- the rollups


def has_trend_rollups(db: sqlite_utils.Database) -> bool:
    """Whether the store has the hourly trend rollups (store migration 8)."""
    if dialect_of(db).postgres:
        return bool(db["trend_dirty"].exists())
    return bool(db.execute("select 1 from sqlite_master where type = 'table' and name = 'trend_dirty'").fetchone())


def has_dirty_trend_hours(db: sqlite_utils.Database) -> bool:
    """Whether a change marked any trend hour for a recount."""
    return bool(db.execute("select 1 from trend_dirty limit 1").fetchone())


def recount_dirty_trend_hours(db: sqlite_utils.Database) -> None:
    """Recount ``trend_hours`` and ``trend_topic_hours`` for the hours marked dirty, and clear the marks. Run it
    inside the write transaction: no crawl may mark an hour between the recount and the clearing."""
    pg = dialect_of(db).postgres
    hour, (topics, topic, is_topic) = trend_hour_sql(db, "m."), topic_items_sql(db)
    params, dirty = take_dirty_marks(db, "trend_dirty", "hour")
    db.execute(f"delete from trend_hours where hour {dirty}", params)
    db.execute(f"delete from trend_topic_hours where hour {dirty}", params)
    db.execute(
        f"insert into trend_hours (hour, brand, label, mentions) select {hour}, coalesce(m.brand, ''), "
        "coalesce(c.label, ''), count(*) from mentions m left join classifications c on c.mention_id = m.id "
        f"where {hour} {dirty} and {HAS_DAY} group by 1, 2, 3",
        params,
    )
    # Topics as the classifier writes them, a JSON list of names; anything else names no topic.
    db.execute(
        "insert into trend_topic_hours (hour, brand, topic, complaints) "
        f"select {hour}, coalesce(m.brand, ''), {topic}, count(*) "
        "from mentions m join classifications c on c.mention_id = m.id, "
        f"{topics} "
        f"where {hour} {dirty} and {HAS_DAY} and c.label = 'complaint' and {is_topic} group by 1, 2, 3",
        params,
    )
    if not pg:  # PostgreSQL's take_dirty_marks already deleted the marks it took
        db.execute("delete from trend_dirty")


def trend_hour_counts(db: sqlite_utils.Database, runs: list[list[str]]) -> list[tuple[str, str, str, int]]:
    """(period, brand or :data:`NO_BRAND`, label, mentions) summed from ``trend_hours`` over the runs of whole
    hours ``[first hour, stop hour, period]`` (``series.hour_runs``)."""
    rows = db.execute(
        "select r.period, coalesce(nullif(t.brand, ''), ?), t.label, sum(t.mentions) "
        f"from ({runs_sql(db)}) r join trend_hours t on t.hour >= r.start and t.hour < r.stop group by 1, 2, 3",
        [NO_BRAND, json.dumps(runs)],
    )
    # PostgreSQL's sum(bigint) is a Decimal
    return [(period, brand, label, int(n)) for period, brand, label, n in rows]


def topic_hour_counts(
    db: sqlite_utils.Database, runs: list[list[str]], brands: list[str] | None
) -> list[tuple[str, str, int]]:
    """(topic, period, complaints) summed from ``trend_topic_hours`` over the runs of whole hours, for ``brands``
    (brand names, :data:`NO_BRAND` for none; every brand when None or empty)."""
    wanted = json.dumps(brands) if brands else None
    unwanted = "cast(? as text) is null" if dialect_of(db).postgres else "? is null"  # PostgreSQL: a typed NULL
    rows = db.execute(
        f"select t.topic, r.period, sum(t.complaints) from ({runs_sql(db)}) r join trend_topic_hours t "
        f"on t.hour >= r.start and t.hour < r.stop where {unwanted} or coalesce(nullif(t.brand, ''), ?) in "
        f"({json_list_param(db)}) group by 1, 2",
        [json.dumps(runs), wanted, NO_BRAND, wanted or "[]"],
    )
    return [(topic, period, int(n)) for topic, period, n in rows]  # PostgreSQL's sum(bigint) is a Decimal


# ---------------------------------------------------------------- the rows


def mentions_in_hours(
    db: sqlite_utils.Database, hours: list[str], complaints: bool = False
) -> list[tuple[str, str, str | None, str | None]]:
    """(brand or :data:`NO_BRAND`, stored time, label, topics) of the mentions with a day in these UTC hours
    (``YYYY-MM-DDTHH``); only complaints when ``complaints``."""
    if not hours:
        return []
    rows = db.execute(
        "select coalesce(nullif(m.brand, ''), ?), coalesce(m.posted_at, m.first_seen_at), c.label, c.topics "
        f"from mentions m {'join' if complaints else 'left join'} classifications c on c.mention_id = m.id "
        f"where {trend_hour_sql(db, 'm.')} in ({json_list_param(db)}) and {HAS_DAY}"
        + (" and c.label = 'complaint'" if complaints else ""),
        [NO_BRAND, json.dumps(hours)],
    )
    return [(brand, at, label, topics) for brand, at, label, topics in rows]


def labelled_mentions_between(
    db: sqlite_utils.Database, since: datetime, until: datetime
) -> list[tuple[str, str, str | None]]:
    """(brand or :data:`NO_BRAND`, stored time, label) of every mention with a day in [since, until)."""
    rows = db.query(
        "select coalesce(nullif(m.brand, ''), ?) as brand, coalesce(m.posted_at, m.first_seen_at) as at, c.label "
        "from mentions m left join classifications c on c.mention_id = m.id "
        "where coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ? "
        f"and {HAS_DAY}",
        [NO_BRAND, _utc_text(since), _utc_text(until)],
    )
    return [(row["brand"], row["at"], row["label"]) for row in rows]


def complaint_topics_between(
    db: sqlite_utils.Database, since: datetime, until: datetime
) -> list[tuple[str, str, str | None]]:
    """(brand or :data:`NO_BRAND`, stored time, topics) of every complaint with a day in [since, until)."""
    rows = db.execute(
        "select coalesce(nullif(m.brand, ''), ?), coalesce(m.posted_at, m.first_seen_at), c.topics "
        "from mentions m join classifications c on c.mention_id = m.id "
        "where c.label = 'complaint' and coalesce(m.posted_at, m.first_seen_at) >= ? "
        f"and coalesce(m.posted_at, m.first_seen_at) < ? and {HAS_DAY}",
        [NO_BRAND, _utc_text(since), _utc_text(until)],
    )
    return [(brand, at, topics) for brand, at, topics in rows]


def undated_mentions_by_brand(db: sqlite_utils.Database, since: datetime, until: datetime) -> list[tuple[str, int]]:
    """(brand or :data:`NO_BRAND`, count) of backfill mentions without a date first seen in [since, until)."""
    rows = db.execute(
        "select coalesce(nullif(brand, ''), ?), count(*) from mentions "
        "where backfill = 1 and posted_at is null and first_seen_at >= ? and first_seen_at < ? group by 1",
        [NO_BRAND, _utc_text(since), _utc_text(until)],
    ).fetchall()
    return [(brand, count) for brand, count in rows]
