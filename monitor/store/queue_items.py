"""Reply-queue items: their rows, state changes, events, replies, notes, activity marks and item-page look-ups."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.db import errors as db_errors
from monitor.store.meta import get_meta

STATES = ("new", "assigned", "replied", "dismissed")
OPEN_STATES = ("new", "assigned")

# A mention's location: the configured one, else the one the shifts stage inferred (a Reddit post about the
# airport store). Everything that filters, groups or fills placeholders by location reads this.
LOCATION_SQL = (
    "coalesce(nullif(m.location, ''), (select e.location from incident_estimates e where e.mention_id = m.id))"
)


def untimed_sql(db: sqlite_utils.Database) -> str:
    """SQL over ``q`` (queue_items) and ``m`` (mentions): 1 for an item with no SLA clock, else 0.

    A mention marked ``backfill`` has no trustworthy time (no date from the platform, or a years-old post
    found by a source's first crawl): it is queued and shown, but its clock would start at an arbitrary
    moment and breach as if new. New activity that reopens it is real, so a reopened item has a clock.
    Works before ``mentions.backfill`` exists (then nothing is untimed).
    """
    if "backfill" not in db["mentions"].columns_dict:
        return "false" if dialect_of(db).postgres else "0"
    return (
        "(coalesce(m.backfill, 0) = 1 and not exists (select 1 from queue_events ev "
        "where ev.queue_item_id = q.id and ev.action = 'new'))"
    )


# ---------------------------------------------------------------- making items, priorities, reopening


def unqueued_classified(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Classified mentions with no queue item yet, with what deciding and timing an item needs (``backfill`` is 0
    on a store from before ``mentions.backfill``)."""
    backfill = "m.backfill" if "backfill" in db["mentions"].columns_dict else "0"
    return list(
        db.query(
            "select m.id, m.source, m.kind, m.rating, m.author_reach, m.posted_at, m.first_seen_at, "
            f"{backfill} as backfill, c.label, c.probs, c.urgency "
            "from mentions m join classifications c on c.mention_id = m.id "
            "left join queue_items q on q.mention_id = m.id where q.id is null"
            # Items are numbered in mention order: SQLite's join returns that order, PostgreSQL's hash join need not.
            + (" order by m.id" if dialect_of(db).postgres else "")
        )
    )


def is_queued(db: sqlite_utils.Database, mention_id: int) -> bool:
    """Whether the mention has a queue item."""
    return db.execute("select 1 from queue_items where mention_id = ?", [mention_id]).fetchone() is not None


def insert_item(db: sqlite_utils.Database, item: dict[str, Any]) -> int:
    """Store a new queue item (a queue_items row's columns); its id."""
    return db["queue_items"].insert(item).last_pk


def log_event(db: sqlite_utils.Database, item_id: int, actor: str, action: str, detail: str, at: str) -> None:
    """One line of an item's history."""
    db["queue_events"].insert({"queue_item_id": item_id, "at": at, "actor": actor, "action": action,
                               "detail": detail})  # fmt: skip


def newest_activity_ids(db: sqlite_utils.Database) -> tuple[int, int]:
    """The highest mention-revision id and the highest mention id (0 when there are none)."""
    revision_high = db.execute("select coalesce(max(id), 0) from mention_revisions").fetchone()[0]
    mention_high = db.execute("select coalesce(max(id), 0) from mentions").fetchone()[0]
    return revision_high, mention_high


def read_mark(db: sqlite_utils.Database, key: str) -> int:
    """A row-id mark stored in ``meta`` under ``key``; 0 when none was stored."""
    value = get_meta(db, key)
    return int(value) if value is not None else 0


def save_marks(db: sqlite_utils.Database, marks: dict[str, int]) -> None:
    """Store row-id marks in ``meta`` (replacing the previous ones)."""
    db["meta"].upsert_all([{"key": key, "value": str(value)} for key, value in marks.items()], pk="key")


def open_item_signals(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every open item with what its priority is computed from, and ``untimed`` (see :func:`untimed_sql`)."""
    return list(
        db.query(
            "select q.id, q.sla_due_at, m.source, m.kind, m.rating, m.author_reach, c.label, c.probs, c.urgency, "
            f"{untimed_sql(db)} as untimed from queue_items q join mentions m on m.id = q.mention_id "
            "left join classifications c on c.mention_id = m.id where q.state in ('new', 'assigned')"
        )
    )


def _executemany(db: sqlite_utils.Database, sql: str, rows: list[tuple[Any, ...]]) -> None:
    # sqlite-utils has no executemany of its own; PostgreSQL's goes through the adapter (parameter marks).
    if dialect_of(db).postgres:
        db.executemany(sql, rows)
    else:
        db.conn.executemany(sql, rows)


def set_priorities(db: sqlite_utils.Database, updates: list[tuple[float, int]]) -> None:
    """Store each (priority, item id)."""
    _executemany(db, "update queue_items set priority = ? where id = ?", updates)


def clear_due_times(db: sqlite_utils.Database, item_ids: list[int]) -> None:
    """Take the SLA clock off these items."""
    _executemany(db, "update queue_items set sla_due_at = null where id = ?", [(item_id,) for item_id in item_ids])


def reopen_candidates(db: sqlite_utils.Database, since_revision: int, since_mention: int) -> list[dict[str, Any]]:
    """Handled items (id, state, kind, source, urgency) whose mention changed after handling, or whose thread got a
    reply that is not ours, among the mentions with a revision above ``since_revision`` or a new reply above
    ``since_mention`` (row ids). An edit already judged a recovery after the change does not count."""
    return list(
        db.query(
            "select q.id, q.state, m.kind, m.source, c.urgency from queue_items q "
            "join mentions m on m.id = q.mention_id left join classifications c on c.mention_id = m.id "
            "where q.state in ('replied', 'dismissed') and q.mention_id in ("
            "  select mention_id from mention_revisions where id > :rev "
            "  union select p.id from mentions c join mentions p on p.source = c.source "
            "  and p.external_id = c.parent_id where c.id > :men and c.parent_id is not null) and ("
            "  (m.updated_at > q.updated_at and not exists (select 1 from recoveries r "
            "   where r.queue_item_id = q.id and r.outcome = 'recovered' and r.detected_at >= m.updated_at))"
            "  or exists (select 1 from mentions c where c.source = m.source "
            "  and c.parent_id = m.external_id and c.first_seen_at > q.updated_at "
            "  and c.external_id not in (select external_id from replies p "
            "    where p.queue_item_id = q.id and p.external_id is not null)))"
            # Item order on PostgreSQL, whose plan may return rows in any order (SQLite walks its indexes in mention
            # order, which is item order): events are logged, and items reopened, in this order.
            + (" order by q.id" if dialect_of(db).postgres else ""),
            {"rev": since_revision, "men": since_mention},
        )
    )


# ---------------------------------------------------------------- one item: its row, state, replies, notes


def item_row(db: sqlite_utils.Database, item_id: int) -> dict[str, Any] | None:
    """The queue_items row, or None."""
    rows = list(db.query("select * from queue_items where id = ?", [item_id]))
    return rows[0] if rows else None


def compare_and_set_state(
    db: sqlite_utils.Database, item_id: int, expected: str, state: str, at: str, fields: dict[str, Any]
) -> bool:
    """Move the item from ``expected`` to ``state`` (with ``fields``: column → value); False when it is not in
    ``expected`` (or does not exist). ``fields``' names are columns chosen by code, never by a user."""
    assignments = ", ".join(f"{name} = ?" for name in fields)
    return bool(
        db.execute(
            f"update queue_items set state = ?, updated_at = ?{', ' if fields else ''}{assignments} "
            "where id = ? and state = ?",
            [state, at, *fields.values(), item_id, expected],
        ).rowcount
    )


def insert_reply(db: sqlite_utils.Database, item_id: int, actor: str, at: str, reply: dict[str, Any]) -> None:
    """Record a reply (text, channel, template, external_id) made to the item."""
    db["replies"].insert({"queue_item_id": item_id, "replied_by": actor, "replied_at": at, **reply})


def insert_note(db: sqlite_utils.Database, item_id: int, author: str, text: str, at: str) -> None:
    """An internal note on the item."""
    db["queue_notes"].insert({"queue_item_id": item_id, "author": author, "text": text, "at": at})


def state_and_assignee(db: sqlite_utils.Database, item_id: int) -> tuple[str, str | None] | None:
    """The item's (state, assignee), or None when there is no such item."""
    row = db.execute("select state, assignee from queue_items where id = ?", [item_id]).fetchone()
    return None if row is None else (row[0], row[1])


def item_events(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The item's history, oldest first."""
    return list(db.query("select * from queue_events where queue_item_id = ? order by id", [item_id]))


def item_replies(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The replies recorded for the item, oldest first."""
    return list(db.query("select * from replies where queue_item_id = ? order by id", [item_id]))


def item_notes(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The item's internal notes, oldest first."""
    return list(db.query("select * from queue_notes where queue_item_id = ? order by id", [item_id]))


def item_recovery(db: sqlite_utils.Database, item_id: int) -> dict[str, Any] | None:
    """The recovery recorded for the item, or None."""
    rows = list(db.query("select * from recoveries where queue_item_id = ?", [item_id]))
    return rows[0] if rows else None


def thread_parent(db: sqlite_utils.Database, source: str, parent_id: str) -> dict[str, Any] | None:
    """The stored post (id, author, title, text, posted_at, url) with external id ``parent_id``, or None."""
    rows = list(
        db.query(
            "select id, author, title, text, posted_at, url from mentions where source = ? and external_id = ?",
            [source, parent_id],
        )
    )
    return rows[0] if rows else None


def thread_children(db: sqlite_utils.Database, source: str, external_id: str, limit: int) -> list[dict[str, Any]]:
    """The stored replies under a post, oldest first (undated first)."""
    # PostgreSQL sorts NULL last where SQLite sorts it first; the id gives equal times one order.
    order = "posted_at nulls first, id" if dialect_of(db).postgres else "posted_at"
    return list(
        db.query(
            "select id, author, text, posted_at from mentions where source = ? and parent_id = ? "
            f"order by {order} limit ?",
            [source, external_id, limit],
        )
    )


# ---------------------------------------------------------------- reads with a time budget

BUDGET_STEPS = 2_000  # SQLite VM steps between looks at the clock (microseconds apart)


class Budget:
    """Stop a query that runs past ``seconds`` (SQLite's progress handler; PostgreSQL: each query gets a
    statement_timeout of the time left): a count or a look-up that a large store without the right index would
    make slow costs the page one number, not its response time. The seconds are for all the block's queries."""

    def __init__(self, db: sqlite_utils.Database, seconds: float, steps: int = BUDGET_STEPS) -> None:
        self.db, self.conn, self.deadline = db, db.conn, time.monotonic() + seconds
        self.postgres = dialect_of(db).postgres
        self.steps = steps

    def __enter__(self) -> Budget:
        if not self.postgres:
            self.conn.set_progress_handler(lambda: time.monotonic() > self.deadline, self.steps)
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self.postgres:
            self.conn.set_progress_handler(None, 0)

    def run(self, sql: str, params: list[Any]) -> list[tuple] | None:
        """The query's rows, or None when it ran out of time."""
        try:
            if not self.postgres:
                return self.conn.execute(sql, params).fetchall()
            left = self.deadline - time.monotonic()
            if left <= 0:  # statement_timeout cannot be zero (that is "no limit")
                return None
            with self.db.statement_timeout(left):
                return self.db.execute(sql, params).fetchall()
        except db_errors.INTERRUPTED_ERRORS as exc:
            if not db_errors.is_interrupted(exc):
                raise
            return None


AUTHOR_COLUMNS = ("mention_id", "source", "title", "text", "url", "rating", "posted_at", "first_seen_at", "location",
                  "item_id", "state", "label")  # fmt: skip


def author_other_mentions(
    budget: Budget, sources: list[str], author: str, exclude_mention_id: int, limit: int
) -> list[dict[str, Any]] | None:
    """``author``'s mentions on ``sources`` other than ``exclude_mention_id``, newest first (undated last), with
    their queue item if any; None when the look-up ran out of ``budget``'s time."""
    marks = ", ".join("?" * len(sources))
    sql = (
        "select m.id as mention_id, m.source, m.title, m.text, m.url, m.rating, m.posted_at, m.first_seen_at, "
        f"{LOCATION_SQL} as location, q.id as item_id, q.state, c.label "
        "from mentions m left join queue_items q on q.mention_id = m.id "
        "left join classifications c on c.mention_id = m.id "
        f"where m.author = ? and m.source in ({marks}) and m.id != ? "
        "order by coalesce(m.posted_at, m.first_seen_at) desc, m.id desc limit ?"
    )
    if budget.postgres:  # undated last, as SQLite sorts NULL in a descending order
        sql = sql.replace(" desc, m.id desc", " desc nulls last, m.id desc")
    rows = budget.run(sql, [author, *sources, exclude_mention_id, limit])
    return None if rows is None else [dict(zip(AUTHOR_COLUMNS, row, strict=True)) for row in rows]
