"""Replies once sent: their records, edits and deletions, owner replies a crawl saw, and recoveries after them."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from monitor.db import dialect_of

# Deleted replies keep their row (the audit of what was said) under this channel suffix.
DELETED_SUFFIX = " (deleted)"


# ---------------------------------------------------------------- replies of an item


def item_mention_source(db: sqlite_utils.Database, item_id: int) -> str | None:
    """The source of the queue item's mention, or None when there is no such item."""
    rows = list(db.query("select m.source from queue_items q join mentions m on m.id = q.mention_id where q.id = ?",
                         [item_id]))  # fmt: skip
    return rows[0]["source"] if rows else None


def reply_count(db: sqlite_utils.Database, item_id: int) -> int:
    """How many replies are recorded for the item, deleted ones included."""
    return db.execute("select count(*) from replies where queue_item_id = ?", [item_id]).fetchone()[0]


def live_reply_count(db: sqlite_utils.Database, item_id: int) -> int:
    """How many of the item's recorded replies are not marked deleted (``DELETED_SUFFIX``)."""
    return db.execute(
        "select count(*) from replies where queue_item_id = ? and channel not like ?", [item_id, "%" + DELETED_SUFFIX]
    ).fetchone()[0]


def get_reply(db: sqlite_utils.Database, reply_id: int) -> dict[str, Any] | None:
    """The replies row, or None."""
    rows = list(db.query("select * from replies where id = ?", [reply_id]))
    return rows[0] if rows else None


def reply_ids_and_texts(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The ``external_id`` and ``text`` of every reply recorded for the item."""
    return list(db.query("select external_id, text from replies where queue_item_id = ?", [item_id]))


def update_reply_text(db: sqlite_utils.Database, reply_id: int, text: str, external_id: str | None) -> None:
    """A reply's new words and its (possibly new) platform id, after an edit on the platform."""
    db.execute("update replies set text = ?, external_id = ? where id = ?", [text, external_id, reply_id])


def set_reply_channel(db: sqlite_utils.Database, reply_id: int, channel: str) -> None:
    """Change the channel a reply is recorded under (``name + DELETED_SUFFIX`` marks it deleted)."""
    db.execute("update replies set channel = ? where id = ?", [channel, reply_id])


# ---------------------------------------------------------------- owner replies a crawl saw


def platform_reply_target(db: sqlite_utils.Database, source: str, external_id: str) -> dict[str, Any] | None:
    """The mention ``external_id`` of ``source`` as ``mention_id``, its queue ``item_id`` and ``state`` (None when
    not queued) and ``classified`` (truthy when it has a classification); None when no such mention is stored."""
    rows = list(
        db.query(
            "select m.id as mention_id, q.id as item_id, q.state, "
            "exists (select 1 from classifications c where c.mention_id = m.id) as classified "
            "from mentions m left join queue_items q on q.mention_id = m.id where m.source = ? and m.external_id = ?",
            [source, external_id],
        )
    )
    return rows[0] if rows else None


def backdate_latest_reply(db: sqlite_utils.Database, item_id: int, replied_at: str) -> None:
    """Set the time of the item's latest reply to ``replied_at`` and its first-reply time to the earliest reply."""
    db.execute(
        "update replies set replied_at = ? where id = (select max(id) from replies where queue_item_id = ?)",
        [replied_at, item_id],
    )
    db.execute(
        "update queue_items set first_replied_at = "
        "(select min(replied_at) from replies where queue_item_id = ?) where id = ?",
        [item_id, item_id],
    )


def source_state_with_prefix(db: sqlite_utils.Database, prefix: str, source: str | None = None) -> list[dict[str, Any]]:
    """The ``source``, ``key`` and ``value`` of every source_state entry whose key starts with ``prefix`` (a LIKE
    pattern: ``_`` matches any character), of one source when ``source`` is given."""
    sql = "select source, key, value from source_state where key like ?"
    params: list[Any] = [prefix + "%"]
    if source is not None:
        sql += " and source = ?"
        params.append(source)
    return list(db.query(sql, params))


def delete_source_state(db: sqlite_utils.Database, source: str, key: str) -> None:
    """Forget one source_state entry."""
    db.execute("delete from source_state where source = ? and key = ?", [source, key])


# ---------------------------------------------------------------- recoveries


def recovery_candidates(db: sqlite_utils.Database, since_revision: int) -> list[dict[str, Any]]:
    """Replied items (``item_id``, ``mention_id``, ``first_replied_at``, ``rating_now``) whose mention has a revision
    above id ``since_revision`` and was edited after the first reply and after the item's recorded recovery."""
    return list(
        db.query(
            "select q.id as item_id, q.mention_id, q.first_replied_at, m.rating as rating_now "
            "from queue_items q join mentions m on m.id = q.mention_id "
            "left join recoveries r on r.queue_item_id = q.id "
            "where q.mention_id in (select mention_id from mention_revisions where id > ?) "
            "and q.first_replied_at is not null and exists (select 1 from mention_revisions v "
            "  where v.mention_id = q.mention_id and v.seen_at >= q.first_replied_at "
            "  and (r.revision_id is null or v.id > r.revision_id))"
            # Item order on PostgreSQL, whose plan may return rows in any order (SQLite walks its indexes in mention
            # order, which is item order): recoveries and their events are recorded in this order.
            + (" order by q.id" if dialect_of(db).postgres else ""),
            [since_revision],
        )
    )


def revisions_seen_since(db: sqlite_utils.Database, mention_id: int, since: str) -> list[dict[str, Any]]:
    """The mention's revisions seen at or after ``since``, oldest first, every column."""
    return list(
        db.query(
            "select * from mention_revisions where mention_id = ? and seen_at >= ? order by id", [mention_id, since]
        )
    )


def upsert_recovery(db: sqlite_utils.Database, recovery: dict[str, Any]) -> None:
    """Record (or replace) the recovery of ``recovery["queue_item_id"]`` (a recoveries row's columns)."""
    db["recoveries"].upsert(recovery, pk="queue_item_id")
