"""The shifts stage's tables: incident-time estimates, shift attributions, incidents and the per-shift-date rollups."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.db.dialect import upsert_sql
from monitor.store.migrations import take_dirty_marks, topic_items_sql

_MENTION_COLUMNS = (
    "m.id, m.source, m.url, m.raw, m.title, m.text, m.posted_at, m.first_seen_at, m.experienced_at, m.location"
)
# A mention whose stored values of these changed since it was read is left to a later pass (``stored_time_and_place``).
TIME_AND_PLACE = ("posted_at", "first_seen_at", "experienced_at", "location", "url")
# Rows per multi-row upsert on PostgreSQL: well under its 65,535 parameters a statement at 7 columns.
UPSERT_ROWS = 1000


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _has_backfill(db: sqlite_utils.Database) -> bool:
    # mentions.backfill (no trustworthy time) arrived with a later schema; before it nothing is backfill.
    return "backfill" in db["mentions"].columns_dict


def _columns(db: sqlite_utils.Database) -> str:
    return _MENTION_COLUMNS + (", m.backfill" if _has_backfill(db) else ", 0 as backfill")


# ---------------------------------------------------------------- mentions to estimate


def unestimated_mentions(db: sqlite_utils.Database, after: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` mentions above id ``after`` without an estimate, by id, with what the estimate reads."""
    return list(
        db.query(
            f"select {_columns(db)} from mentions m where m.id > ? and not exists "
            "(select 1 from incident_estimates e where e.mention_id = m.id) order by m.id limit ?",
            [after, limit],
        )
    )


def revisions_after(db: sqlite_utils.Database, mark: int, limit: int) -> list[tuple[int, int]]:
    """(revision id, mention id) of up to ``limit`` mention revisions above id ``mark``, by id."""
    rows = db.execute("select id, mention_id from mention_revisions where id > ? order by id limit ?", [mark, limit])
    return [(revision_id, mention_id) for revision_id, mention_id in rows.fetchall()]


def mentions_to_estimate(db: sqlite_utils.Database, mention_ids: list[int]) -> list[dict[str, Any]]:
    """The mentions ``mention_ids`` (those still there) with what the estimate reads."""
    if not mention_ids:
        return []
    return list(db.query(f"select {_columns(db)} from mentions m where m.id in ({_marks(mention_ids)})", mention_ids))


def stored_time_and_place(db: sqlite_utils.Database, mention_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Mention id -> its stored :data:`TIME_AND_PLACE` values and backfill flag (0 before the column existed)."""
    if not mention_ids:
        return {}
    columns = ", ".join(f"m.{c}" for c in TIME_AND_PLACE)
    backfill = "m.backfill" if _has_backfill(db) else "0"
    rows = db.execute(
        f"select m.id, {columns}, {backfill} from mentions m where m.id in ({_marks(mention_ids)})", mention_ids
    )
    return {row[0]: tuple(row[1:]) for row in rows}


# ---------------------------------------------------------------- writing estimates (in the caller's transaction)


def clear_estimates(db: sqlite_utils.Database) -> None:
    """Delete every estimate and attribution (the config they came from changed)."""
    db.execute("delete from shift_attributions")
    db.execute("delete from incident_estimates")


def delete_estimates(db: sqlite_utils.Database, mention_ids: list[int]) -> None:
    """Delete the estimates of ``mention_ids``."""
    if mention_ids:
        db.execute(f"delete from incident_estimates where mention_id in ({_marks(mention_ids)})", mention_ids)


def delete_attributions(db: sqlite_utils.Database, mention_ids: list[int]) -> None:
    """Delete the shift attributions of ``mention_ids``."""
    if mention_ids:
        db.execute(f"delete from shift_attributions where mention_id in ({_marks(mention_ids)})", mention_ids)


def replace_rows(db: sqlite_utils.Database, table: str, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """``insert_all(replace=True)``: sqlite-utils' own on SQLite (as before); on PostgreSQL, whose adapter
    inserts row by row, a few multi-row ``on conflict (keys) do update`` statements."""
    if not dialect_of(db).postgres:
        db[table].insert_all(rows, replace=True)
        return
    # A key twice in one statement is an error on PostgreSQL; replace semantics keep the last row.
    unique = list({tuple(row[k] for k in keys): row for row in rows}.values())
    columns = list(dict.fromkeys(c for row in unique for c in row))
    for start in range(0, len(unique), UPSERT_ROWS):
        batch = unique[start : start + UPSERT_ROWS]
        db.execute(upsert_sql(table, columns, keys, len(batch)), [row.get(c) for row in batch for c in columns])


def replace_estimates(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
    """Write ``incident_estimates`` rows, replacing a mention's earlier one."""
    replace_rows(db, "incident_estimates", ("mention_id",), rows)


def replace_attributions(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
    """Write ``shift_attributions`` rows, replacing one of the same mention, shift and shift date."""
    replace_rows(db, "shift_attributions", ("mention_id", "shift", "shift_date"), rows)


# ---------------------------------------------------------------- one mention, for the inbox


def mention_estimate(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any] | None:
    """The mention's ``incident_estimates`` row, or None."""
    rows = list(db.query("select * from incident_estimates where mention_id = ?", [mention_id]))
    return rows[0] if rows else None


def mention_attributions(db: sqlite_utils.Database, mention_id: int) -> list[dict[str, Any]]:
    """The mention's shifts (shift, shift_date, weight), heaviest first."""
    return list(
        db.query(
            "select shift, shift_date, weight from shift_attributions where mention_id = ? order by weight desc",
            [mention_id],
        )
    )


def mention_incident(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any] | None:
    """The incident the mention belongs to, or None."""
    rows = list(
        db.query(
            "select i.* from incidents i join incident_mentions im on im.incident_id = i.id where im.mention_id = ?",
            [mention_id],
        )
    )
    return rows[0] if rows else None


# ---------------------------------------------------------------- incidents


def complaint_estimates(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every complaint with a location and an estimated window: mention_id, location, window, source, topics."""
    return list(
        db.query(
            "select e.mention_id, e.location, e.window_start, e.window_end, m.source, c.topics "
            "from incident_estimates e join classifications c on c.mention_id = e.mention_id "
            "join mentions m on m.id = e.mention_id "
            "where c.label = 'complaint' and e.location is not null and e.window_start is not null"
        )
    )


def complaint_attributions(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every complaint's shift attributions (mention_id, shift, shift_date, weight)."""
    return list(
        db.query(
            "select a.mention_id, a.shift, a.shift_date, a.weight from shift_attributions a "
            "join classifications c on c.mention_id = a.mention_id where c.label = 'complaint'"
        )
    )


def incident_keys(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every stored incident's id, location, window_start and detected_at."""
    return list(db.query("select id, location, window_start, detected_at from incidents"))


def clear_incidents(db: sqlite_utils.Database) -> None:
    """Delete every incident and its mention links (inside the caller's write transaction)."""
    db.execute("delete from incident_mentions")
    db.execute("delete from incidents")


def insert_incident(db: sqlite_utils.Database, incident: dict[str, Any], mention_ids: list[int]) -> int:
    """Insert ``incident`` (with its ``id`` when it keeps an earlier one) and its mentions; return its id."""
    incident_id = db["incidents"].insert(incident).last_pk
    db["incident_mentions"].insert_all({"incident_id": incident_id, "mention_id": m} for m in mention_ids)
    return incident_id


def incidents_between(
    db: sqlite_utils.Database, start: str, end: str, location: str | None = None
) -> list[dict[str, Any]]:
    """Incidents whose window starts in ``[start, end)`` (UTC text), at ``location`` when given, newest first."""
    sql = "select * from incidents where window_start >= ? and window_start < ?"
    params: list[Any] = [start, end]
    if location:
        sql += " and location = ?"
        params.append(location)
    return list(db.query(sql + " order by window_start desc", params))


def incident_mention_ids(db: sqlite_utils.Database, incident_id: int) -> list[int]:
    """The ids of the incident's mentions."""
    return [r[0] for r in db.execute("select mention_id from incident_mentions where incident_id = ?", [incident_id])]


# ---------------------------------------------------------------- the per-shift-date rollups

# An attribution that counts towards a rate: a sentiment label, a location and a shift.
_RATED = "c.label in ('complaint', 'neutral', 'praise') and a.location is not null and a.shift is not null"


def has_shift_rollups(db: sqlite_utils.Database) -> bool:
    """Whether the store has the per-shift-date rollups (store migration 8)."""
    if dialect_of(db).postgres:
        return bool(db["shift_dirty"].exists())
    return bool(db.execute("select 1 from sqlite_master where type = 'table' and name = 'shift_dirty'").fetchone())


def has_dirty_shift_dates(db: sqlite_utils.Database) -> bool:
    """Whether a change marked any shift date for a recount."""
    return bool(db.execute("select 1 from shift_dirty limit 1").fetchone())


def recount_dirty_shift_dates(db: sqlite_utils.Database) -> None:
    """Recount the rollups of the shift dates marked dirty and clear the marks; inside the caller's (unscoped)
    write transaction, so nothing can mark a date between the recount and the clearing."""
    topics, topic, is_topic = topic_items_sql(db)
    params, dirty = take_dirty_marks(db, "shift_dirty", "shift_date")
    db.execute(f"delete from shift_day_counts where shift_date {dirty}", params)
    db.execute(f"delete from shift_day_topics where shift_date {dirty}", params)
    db.execute(
        "insert into shift_day_counts (location, shift, shift_date, mentions, complaints) "
        "select a.location, a.shift, a.shift_date, sum(a.weight), "
        "sum(case when c.label = 'complaint' then a.weight else 0.0 end) from shift_attributions a "
        f"join classifications c on c.mention_id = a.mention_id where a.shift_date {dirty} and {_RATED} "
        "group by 1, 2, 3",
        params,
    )
    # Topics as the classifier writes them, a JSON list of names; anything else names no topic.
    db.execute(
        "insert into shift_day_topics (location, shift, shift_date, topic, weight) "
        f"select a.location, a.shift, a.shift_date, {topic}, sum(a.weight) from shift_attributions a "
        f"join classifications c on c.mention_id = a.mention_id, {topics} "
        f"where a.shift_date {dirty} and {_RATED} and c.label = 'complaint' and {is_topic} "
        "group by 1, 2, 3, 4",
        params,
    )
    if not dialect_of(db).postgres:  # PostgreSQL's marks were taken (deleted) by take_dirty_marks
        db.execute("delete from shift_dirty")


def _date_filter(since: date, until: date, location: str | None, prefix: str = "") -> tuple[str, list[Any]]:
    where = f"{prefix}shift_date >= ? and {prefix}shift_date <= ?" + (f" and {prefix}location = ?" if location else "")
    return where, [since.isoformat(), until.isoformat(), *([location] if location else [])]


def shift_day_counts(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> list[tuple[str, str, str, float | None, float | None]]:
    """(location, shift, shift_date, mentions, complaints) rollup rows of shift dates in ``[since, until]``."""
    where, params = _date_filter(since, until, location)
    rows = db.execute(
        f"select location, shift, shift_date, mentions, complaints from shift_day_counts where {where} "
        "order by shift_date",
        params,
    )
    return [tuple(row) for row in rows]


def shift_day_topics(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> list[tuple[str, str, str, float | None]]:
    """(location, shift, topic, weight) rollup rows of shift dates in ``[since, until]``."""
    where, params = _date_filter(since, until, location)
    rows = db.execute(
        f"select location, shift, topic, weight from shift_day_topics where {where} order by shift_date", params
    )
    return [tuple(row) for row in rows]


def rated_attributions(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> list[dict[str, Any]]:
    """Attributions of labelled mentions with shift dates in ``[since, until]``: location, shift, shift_date,
    weight, and the classification's label and topics (the rows the rollups sum)."""
    where, params = _date_filter(since, until, location, prefix="a.")
    return list(
        db.query(
            "select a.location, a.shift, a.shift_date, a.weight, c.label, c.topics from shift_attributions a "
            "join classifications c on c.mention_id = a.mention_id "
            f"where c.label in ('complaint', 'neutral', 'praise') and {where}",
            params,
        )
    )


def complaint_windows(
    db: sqlite_utils.Database, since: date, until: date, location: str | None = None
) -> list[tuple[str, float | None, float | None]]:
    """(location, window start, window end) in epoch seconds of each complaint attributed to a shift date in
    ``[since, until]``, at ``location`` when given."""
    seconds = "(strftime('%s', {t}) + strftime('%f', {t}) - cast(strftime('%S', {t}) as integer))"
    if dialect_of(db).postgres:  # to the microsecond; SQLite's %f stops at the millisecond
        seconds = dialect_of(db).epoch_seconds("{t}")
    sql = (
        f"select e.location, {seconds.format(t='e.window_start')}, {seconds.format(t='e.window_end')} "
        "from incident_estimates e join classifications c on c.mention_id = e.mention_id "
        "where c.label = 'complaint' and e.mention_id in "
        "(select mention_id from shift_attributions where shift_date >= ? and shift_date <= ?)"
    )
    params: list[Any] = [since.isoformat(), until.isoformat()]
    if location:
        sql += " and e.location = ?"
        params.append(location)
    return [(loc, start, end) for loc, start, end in db.execute(sql, params)]
