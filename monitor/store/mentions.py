"""Mentions: recording a crawl's items (dedup, upsert, revisions), reading and searching them."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from monitor.db import SQLITE, Dialect, dialect_of
from monitor.store.transactions import retry_conflicts, utcnow, write_transaction
from monitor.textsafe import valid_unicode

MENTION_FIELDS = (
    "url",
    "kind",
    "author",
    "author_reach",
    "title",
    "text",
    "rating",
    "lang",
    "posted_at",
    "experienced_at",
    "location",
    "brand",
    "parent_id",
)
# Changes to these fields are kept as revisions (an edited review is a signal).
REVISED_FIELDS = ("title", "text", "rating")


@dataclass
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    mention_ids: list[int] = field(default_factory=list)

    def add(self, other: UpsertCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.mention_ids.extend(other.mention_ids)


def _number(value: Any, kind: type) -> Any:
    """A finite number of ``kind``, or None for what a hostile payload sends instead (a list, "abc", NaN, 1e999)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if isinstance(number, int) and abs(number) >= 2**63:
        return None  # SQLite's integers are 64-bit
    return number


def _storable(value: Any) -> Any:
    """A value SQLite takes: valid text (lone surrogates replaced), a number, or JSON text for a list/table."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)  # SQLite's integers are 64-bit
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return valid_unicode(value)


# The text columns of a mention.
_TEXT_COLUMNS = tuple(k for k in (*MENTION_FIELDS, "raw") if k not in ("rating", "author_reach"))


def _text(value: Any, postgres: bool = False) -> Any:
    """A value for a text column, as text. SQLite's text affinity turns a stray number (a title of 5, a bool)
    into text when storing it anyway, so a re-crawl compared the stored "5" with 5 and recorded a false edit;
    PostgreSQL refuses a number in a text column of a multi-row insert. On PostgreSQL NUL, which its text
    cannot hold, becomes U+FFFD (the one place the engines store different text: docs/postgres-port.md)."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(int(value)) if isinstance(value, bool) else str(value)
    return value.replace("\x00", "\ufffd") if postgres and "\x00" in value else value


def _clean(mention: dict[str, Any], dialect: Dialect = SQLITE) -> dict[str, Any]:
    """One bad field costs only that field: every value is made storable, never a reason to lose the item."""
    row = {key: _storable(mention.get(key)) for key in MENTION_FIELDS}
    row["rating"] = _number(mention.get("rating"), float)
    row["author_reach"] = _number(mention.get("author_reach"), int)
    raw = mention.get("raw")
    row["raw"] = _storable(raw)
    row["backfill"] = 1 if mention.get("backfill") else 0  # set by the crawlers (docs/time-trust.md)
    for key in _TEXT_COLUMNS:
        row[key] = _text(row[key], dialect.postgres)
    return row


def _existing_rows(db: sqlite_utils.Database, source: str, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored rows of ``source`` for these ids: one query per 500 ids, not one per mention."""
    columns = ", ".join(["id", "external_id", *MENTION_FIELDS, "raw"])
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(external_ids), 500):
        chunk = external_ids[start : start + 500]
        cursor = db.execute(
            f"select {columns} from mentions where source = ? and external_id in ({', '.join('?' * len(chunk))})",
            [source, *chunk],
        )
        names = [d[0] for d in cursor.description]
        found.update((row[1], dict(zip(names, row, strict=True))) for row in cursor)
    return found


_STORED = (*MENTION_FIELDS, "raw")
# backfill is written on insert only: an item once judged old (or new) keeps that judgement on re-crawls.
_INSERTED = (*_STORED, "backfill")
# A change to one of these moves the mention's incident time or location: its shift estimate is dropped
# (the shifts stage re-estimates mentions without one). Not a revision: revisions are edits of what was
# said, and they reopen queue items as new activity.
_ESTIMATED_FROM = ("posted_at", "experienced_at", "location", "url")


def _insert_rows(
    db: sqlite_utils.Database, source: str, rows: list[tuple[str, dict[str, Any]]], now: str
) -> dict[str, int]:
    """Insert new mentions with one multi-row INSERT per chunk; return their ids by external id.

    One statement for many rows, not one per row: the full-text trigger then
    updates the FTS5 index once per statement (FTS5 flushes its pending terms
    at every statement boundary), which made per-row inserts twice as slow.
    Only columns the table has are written: a database opened before a migration added one
    (``backfill``, schema 7) keeps taking new mentions.
    """
    present = db["mentions"].columns_dict
    inserted = [k for k in _INSERTED if k in present]
    columns = ("source", "external_id", *inserted, "first_seen_at", "updated_at")
    # PostgreSQL's protocol carries at most 65535 parameters per statement.
    limit = 65535 if dialect_of(db).postgres else db.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(500, limit // len(columns)))
    row_marks = "(" + ", ".join("?" * len(columns)) + ")"
    ids: dict[str, int] = {}
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[Any] = []
        for external_id, row in chunk:
            params += (source, external_id, *[row[k] for k in inserted], now, now)
        cursor = db.execute(
            f"insert into mentions ({', '.join(columns)}) values {', '.join([row_marks] * len(chunk))} "
            "returning external_id, id",
            params,
        )
        ids.update(cursor.fetchall())
    return ids


def _update_row(
    db: sqlite_utils.Database, stored: dict[str, Any], row: dict[str, Any], now: str, counts: UpsertCounts
) -> bool:
    """Apply a re-crawled row to its stored version; False when nothing differs (nothing written)."""
    mention_id = stored["id"]
    changed = any(stored[k] != row[k] for k in REVISED_FIELDS)
    if changed:
        db.execute(
            "insert into mention_revisions (mention_id, seen_at, title_before, title_after, "
            "text_before, text_after, rating_before, rating_after) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [mention_id, now, stored["title"], row["title"], stored["text"], row["text"],
             stored["rating"], row["rating"]],
        )  # fmt: skip
        # The old classification no longer describes the text.
        db.execute("delete from classifications where mention_id = ?", [mention_id])
        counts.updated += 1
    else:
        counts.unchanged += 1
        if all(stored[k] == row[k] for k in _STORED):
            return False
    # Other fields (reach, url, raw) refresh silently; updated_at marks real edits only.
    assignments = ", ".join(f"{k} = ?" for k in _STORED)
    db.execute(
        f"update mentions set {assignments}" + (", updated_at = ?" if changed else "") + " where id = ?",
        [*(row[k] for k in _STORED), *([now] if changed else []), mention_id],
    )
    if any(stored[k] != row[k] for k in _ESTIMATED_FROM) and db["incident_estimates"].exists():
        # A filled-in or corrected time or place: the old window is wrong, and the shifts stage only
        # revisits estimated mentions that get a revision row. Without an estimate it is redone.
        db.execute("delete from shift_attributions where mention_id = ?", [mention_id])
        db.execute("delete from incident_estimates where mention_id = ?", [mention_id])
    return True


def record_mentions(db: sqlite_utils.Database, source: str, mentions: Iterable[dict[str, Any]]) -> UpsertCounts:
    """Upsert ``mentions`` for ``source`` by ``external_id``; keep edits as revisions.

    Returns counts of new, updated (title/text/rating changed) and unchanged
    rows, and the mention ids in input order. Runs in one transaction: either
    the whole batch is stored or none. A row whose stored values are all the
    same is not written at all, so a re-crawl of known items costs one lookup
    per 500 of them; new rows go in with one multi-row INSERT.
    """
    # Validate and normalise everything first: a bad item fails the batch before any write.
    dialect = dialect_of(db)
    batch = [(_external_id(mention, dialect), _clean(mention, dialect)) for mention in mentions]
    if not batch:
        return UpsertCounts()
    # Writers of different sources run side by side on PostgreSQL; one of two that meet on a shared rollup
    # mark in opposite order is rolled back by the server, and the whole batch simply runs again.
    return retry_conflicts(db, lambda: _record_batch(db, source, batch), f"storing {source}")


def _record_batch(db: sqlite_utils.Database, source: str, batch: list[tuple[str, dict[str, Any]]]) -> UpsertCounts:
    counts = UpsertCounts()
    now = utcnow()
    existing: dict[str, dict[str, Any]] = {}
    ids: list[int] = []
    new: dict[str, tuple[int, dict[str, Any]]] = {}  # not inserted yet: external id -> (index in ids, row)

    def insert_new() -> None:
        inserted = _insert_rows(db, source, [(eid, row) for eid, (_, row) in new.items()], now)
        for external_id, (index, row) in new.items():
            ids[index] = inserted[external_id]
            existing[external_id] = {"id": inserted[external_id], **row}
        new.clear()

    with write_transaction(db, scope=f"source:{source}"):
        # Read under the source's write lock: a concurrent writer of the same items (two crawls of one source,
        # a worker on another machine) cannot insert one between this look-up and our insert.
        existing.update(_existing_rows(db, source, list(dict.fromkeys(eid for eid, _ in batch))))
        for external_id, row in batch:
            if external_id in new:
                insert_new()  # the same id twice in a batch: the second is an edit of the first
            stored = existing.get(external_id)
            if stored is None:
                new[external_id] = (len(ids), row)
                ids.append(0)  # filled in by insert_new
                counts.new += 1
                continue
            ids.append(stored["id"])
            if _update_row(db, stored, row, now, counts):
                existing[external_id] = {"id": stored["id"], **row}
        if new:
            insert_new()
    counts.mention_ids = ids
    return counts


def _external_id(mention: dict[str, Any], dialect: Dialect) -> str:
    return _text(valid_unicode(str(mention["external_id"])), dialect.postgres)


def get_mention(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any] | None:
    rows = list(db.query("select * from mentions where id = ?", [mention_id]))
    return rows[0] if rows else None


def mention_revisions(db: sqlite_utils.Database, mention_id: int) -> list[dict[str, Any]]:
    return list(db.query("select * from mention_revisions where mention_id = ? order by id", [mention_id]))


def search_mentions(db: sqlite_utils.Database, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Full-text search over title and text, best match first: SQLite FTS5 with the query escaped as plain
    terms; PostgreSQL's GIN-indexed tsvector with ``plainto_tsquery`` (plain terms too, all required)."""
    if not query.strip():
        return []  # nothing to look for (FTS5 would reject the empty query)
    dialect = dialect_of(db)
    if not dialect.postgres:
        return list(db["mentions"].search(query, limit=limit, quote=True))
    terms = dialect.fts_terms(_text(valid_unicode(query), postgres=True))
    return list(
        db.query(
            f"select m.* from mentions m where {dialect.fts_match('m')} order by {dialect.fts_rank('m')}, m.id limit ?",
            [terms, terms, limit],
        )
    )
