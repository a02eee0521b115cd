"""What the daily digest reads: a day's label counts, its top complaints and praise, topics, overdue items."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from monitor.store.queue_items import LOCATION_SQL


def label_counts(db: sqlite_utils.Database, start: str, end: str) -> dict[str, int]:
    """Mentions posted (or first seen) from ``start`` up to ``end`` per label; ``unclassified`` for none yet."""
    rows = db.query(
        "select coalesce(c.label, 'unclassified') as label, count(*) as n from mentions m "
        "left join classifications c on c.mention_id = m.id "
        "where coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ? "
        "group by 1",
        [start, end],
    )
    return {row["label"]: row["n"] for row in rows}


def top_mentions(db: sqlite_utils.Database, label: str, start: str, end: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most confident mentions with ``label`` posted from ``start`` up to ``end``, with their
    location and queue item id."""
    return list(
        db.query(
            "select m.id, m.source, m.author, m.title, m.text, m.rating, m.url, "
            f"{LOCATION_SQL} as location, m.posted_at, m.first_seen_at, c.score, c.topics, "
            "(select q.id from queue_items q where q.mention_id = m.id) as item_id "
            "from mentions m join classifications c on c.mention_id = m.id "
            "where c.label = ? and coalesce(m.posted_at, m.first_seen_at) >= ? "
            "and coalesce(m.posted_at, m.first_seen_at) < ? order by c.score desc, m.id limit ?",
            [label, start, end, limit],
        )
    )


def complaint_topics(db: sqlite_utils.Database, start: str, end: str) -> list[str | None]:
    """The stored topics (JSON lists) of each complaint posted from ``start`` up to ``end``."""
    return [
        row["topics"]
        for row in db.query(
            "select c.topics from mentions m join classifications c on c.mention_id = m.id "
            "where c.label = 'complaint' "
            "and coalesce(m.posted_at, m.first_seen_at) >= ? and coalesce(m.posted_at, m.first_seen_at) < ?",
            [start, end],
        )
    ]


def overdue_items(db: sqlite_utils.Database, due_before: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` open items longest past their SLA (due before ``due_before``), with their mention."""
    return list(
        db.query(
            "select q.id, q.sla_due_at, q.assignee, m.source, m.author, m.title, m.text "
            "from queue_items q join mentions m on m.id = q.mention_id "
            "where q.state in ('new', 'assigned') and q.sla_due_at < ? order by q.sla_due_at, q.id limit ?",
            [due_before, limit],
        )
    )


def count_overdue(db: sqlite_utils.Database, due_before: str) -> int:
    """Open items whose SLA fell due before ``due_before``."""
    return db.execute(
        "select count(*) from queue_items where state in ('new', 'assigned') and sla_due_at < ?", [due_before]
    ).fetchone()[0]


def count_open_items(db: sqlite_utils.Database) -> int:
    """Open (new or assigned) queue items."""
    return db.execute("select count(*) from queue_items where state in ('new', 'assigned')").fetchone()[0]
