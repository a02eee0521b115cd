"""The alert ledger (``alerts_sent``) and what the alert detectors read: open items, incidents, complaints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from monitor.db import dialect_of

# --- the ledger -------------------------------------------------------------------------------------------------

_DELETE_UNSENT = "delete from alerts_sent where kind = ? and subject_key = ? and channel = ? and sent_at is null"


def _executemany(db: sqlite_utils.Database, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    # sqlite-utils' Database has no executemany (its connection has); the PostgreSQL adapter has its own,
    # which translates the ``?`` marks (the psycopg connection underneath would not).
    if dialect_of(db).postgres:
        db.executemany(sql, rows)
    else:
        db.conn.executemany(sql, rows)


def incident_details(db: sqlite_utils.Database, channel: str) -> list[str | None]:
    """The ``detail`` JSON of every incident row (sent or claimed) on ``channel``."""
    return [
        row["detail"]
        for row in db.query("select detail from alerts_sent where kind = 'incident' and channel = ?", [channel])
    ]


def ledger_keys(db: sqlite_utils.Database, channel: str) -> set[tuple[str, str]]:
    """(kind, subject key) of every alert sent or being sent on ``channel``."""
    return {(r[0], r[1]) for r in db.execute("select kind, subject_key from alerts_sent where channel = ?", [channel])}


def unsent_claims(db: sqlite_utils.Database, channel: str) -> list[tuple[str, str, str | None]]:
    """(kind, subject key, detail) of every claim on ``channel`` not yet marked sent."""
    rows = db.execute(
        "select kind, subject_key, detail from alerts_sent where channel = ? and sent_at is null", [channel]
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def delete_unsent(db: sqlite_utils.Database, keys: Iterable[tuple[str, str]], channel: str) -> None:
    """Delete the unsent claims on ``channel`` for these (kind, subject key) pairs; sent rows stay."""
    _executemany(db, _DELETE_UNSENT, [(kind, key, channel) for kind, key in keys])


def insert_claim(db: sqlite_utils.Database, kind: str, key: str, channel: str, title: str, detail: str) -> bool:
    """Insert an unsent claim row; False when a row for this alert and channel exists already.

    ``on conflict do nothing`` reports through ``rowcount`` on both engines whether it took the row."""
    cursor = db.execute(
        "insert into alerts_sent (kind, subject_key, channel, sent_at, title, detail) "
        "values (?, ?, ?, null, ?, ?) on conflict do nothing",
        [kind, key, channel, title, detail],
    )
    return cursor.rowcount == 1


def record_sent(db: sqlite_utils.Database, rows: Iterable[tuple[str, str, str, str, str, str]]) -> None:
    """Mark alerts sent from (kind, subject key, channel, sent_at, title, detail) rows: a claim is completed, a
    missing row inserted, a row sent already left as it was."""
    _executemany(
        db,
        "insert into alerts_sent (kind, subject_key, channel, sent_at, title, detail) values (?, ?, ?, ?, ?, ?) "
        "on conflict (kind, subject_key, channel) do update set sent_at = excluded.sent_at, "
        "title = excluded.title, detail = excluded.detail where alerts_sent.sent_at is null",
        rows,
    )


def count_sent(db: sqlite_utils.Database, channel: str | None = None) -> int:
    """Alerts delivered (on ``channel``, or on any); claims still being sent do not count."""
    if channel is None:
        return db.execute("select count(*) from alerts_sent where sent_at is not null").fetchone()[0]
    return db.execute(
        "select count(*) from alerts_sent where channel = ? and sent_at is not null", [channel]
    ).fetchone()[0]


# --- what the detectors read ------------------------------------------------------------------------------------

_ITEM_SQL = """
select q.id as item_id, q.state, q.priority, q.sla_due_at, q.created_at, q.assignee,
       m.id as mention_id, m.source, m.kind, m.author, m.author_reach, m.title, m.text, m.rating, m.url,
       m.posted_at, m.first_seen_at, m.brand, coalesce(m.location, e.location) as location,
       c.label, c.urgency, c.probs
from queue_items q join mentions m on m.id = q.mention_id
left join classifications c on c.mention_id = m.id
left join incident_estimates e on e.mention_id = m.id
where q.state in ('new', 'assigned')
"""


def _not_backfill(db: sqlite_utils.Database, alias: str = "m") -> str:
    """SQL condition leaving out backfill mentions; empty on a database whose ``mentions`` has no
    ``backfill`` column yet (it arrives with a migration)."""
    return f" and coalesce({alias}.backfill, 0) = 0" if "backfill" in db["mentions"].columns_dict else ""


def mention_raw(db: sqlite_utils.Database, mention_id: int) -> str | None:
    """A mention's raw payload (None when the mention or its payload is missing)."""
    row = db.execute("select raw from mentions where id = ?", [mention_id]).fetchone()
    return row[0] if row else None


def open_items_created_since(db: sqlite_utils.Database, since: str) -> list[dict[str, Any]]:
    """Open queue items created at or after ``since``, with their mention and classification, most urgent
    first; backfill mentions left out."""
    return list(
        db.query(_ITEM_SQL + _not_backfill(db) + " and q.created_at >= ? order by q.priority desc, q.id", [since])
    )


def open_items_due_between(db: sqlite_utils.Database, start: str, end: str) -> list[dict[str, Any]]:
    """Open queue items whose SLA fell due from ``start`` to ``end``, like :func:`open_items_created_since`."""
    return list(
        db.query(
            _ITEM_SQL + _not_backfill(db) + " and q.sla_due_at >= ? and q.sla_due_at <= ? "
            "order by q.priority desc, q.id",
            [start, end],
        )
    )


def all_incidents(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every incident, oldest window first."""
    return list(db.query("select * from incidents order by window_start, id"))


def incidents_newest_seen(db: sqlite_utils.Database) -> dict[int, str | None]:
    """Per incident id, when we first saw its newest non-backfill mention (incidents with none are left out)."""
    rows = db.execute(
        "select i.incident_id, max(coalesce(m.first_seen_at, m.posted_at)) from incident_mentions i "
        "join mentions m on m.id = i.mention_id" + _not_backfill(db) + " group by i.incident_id"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def incident_latest_mentions(db: sqlite_utils.Database, incident_id: int, limit: int) -> list[dict[str, Any]]:
    """The incident's ``limit`` latest mentions (source, title, text, url, at), newest first."""
    return list(
        db.query(
            "select m.source, m.title, m.text, m.url, coalesce(m.posted_at, m.first_seen_at) as at "
            "from incident_mentions i join mentions m on m.id = i.mention_id where i.incident_id = ? "
            "order by at desc, m.id desc limit ?",
            [incident_id, limit],
        )
    )


def brand_complaints_since(
    db: sqlite_utils.Database, brand: str, since: str, limit: int, no_brand: str
) -> list[dict[str, Any]]:
    """The brand's ``limit`` latest complaints posted (or seen) at or after ``since``, newest first; ``no_brand``
    is the name mentions with no brand go by."""
    return list(
        db.query(
            "select m.source, m.title, m.text, m.url from mentions m join classifications c on c.mention_id = m.id "
            "where c.label = 'complaint' and coalesce(nullif(m.brand, ''), ?) = ? "
            "and coalesce(m.posted_at, m.first_seen_at) >= ? "
            "order by coalesce(m.posted_at, m.first_seen_at) desc, m.id desc limit ?",
            [no_brand, brand, since, limit],
        )
    )
