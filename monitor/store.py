"""The store: SQLite through sqlite-utils (WAL mode, the default) or PostgreSQL, forward migrations.

Every stage reads and writes through these functions. Values always travel as
SQL parameters; mention text is never formatted into SQL. ``open_db`` takes a
SQLite path or a ``postgresql://`` URL; the PostgreSQL side (monitor/db/) offers
the same ``execute`` / ``query`` / ``atomic()`` and table helpers, and
``db.dialect`` says which SQL to write where the engines differ.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from monitor.db import SQLITE, Dialect, dialect_of, is_postgres_url, redirect
from monitor.db import errors as db_errors
from monitor.textsafe import valid_unicode

log = logging.getLogger("monitor.store")
T = TypeVar("T")

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


def utcnow() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@contextmanager
def write_transaction(db: sqlite_utils.Database, scope: str | None = None) -> Iterator[None]:
    """``BEGIN IMMEDIATE``: take the write lock first, so a concurrent writer makes us wait (busy_timeout)
    instead of failing a read-then-write transaction with SQLITE_BUSY. Inside another transaction it
    simply joins it.

    ``scope`` (PostgreSQL only; SQLite has one writer whatever the scope) names the only rows the transaction
    reads-then-writes, e.g. ``source:NAME``: transactions of different scopes then write side by side, and one
    without a scope still excludes them all (``monitor.db.pg.WRITE_LOCK``). Name a scope only for a transaction
    whose correctness needs nothing but its own rows kept still; rollup recounts, which read everyone's rows and
    clear the dirty marks, must stay unscoped."""
    if dialect_of(db).postgres:  # the counterpart of BEGIN IMMEDIATE: the database-wide write lock
        with db.atomic(scope=scope):
            yield
        return
    if db.conn.in_transaction:
        yield
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.conn.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:  # SQLite may have rolled back already; keep the original error
            db.conn.execute("ROLLBACK")
        raise


def retry_conflicts(db: sqlite_utils.Database, work: Callable[[], T], what: str, attempts: int = 5) -> T:
    """``work()`` -- one whole write transaction -- run again when the server rolled it back to resolve a
    conflict (a deadlock between two scoped writers on PostgreSQL; never on SQLite). Inside an outer transaction
    it runs once: the conflict aborted the outer one too, and only its owner can start it again."""
    nested = db.conn.in_transaction if not dialect_of(db).postgres else db.in_transaction
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except db_errors.RETRY_ERRORS as exc:
            if nested or attempt == attempts:
                raise
            log.info("%s: %s; running it again (attempt %d)", what, str(exc).splitlines()[0], attempt + 1)
            time.sleep(random.uniform(0, 0.05 * attempt))  # apart, so the two do not meet again at once
    raise AssertionError("unreachable")


class Database(sqlite_utils.Database):
    """sqlite-utils' Database whose outermost ``atomic()`` is ``BEGIN IMMEDIATE``.

    sqlite-utils opens a deferred ``BEGIN`` and reads table info (``PRAGMA table_info``) inside it before
    writing; when another connection commits in between, SQLite refuses the upgrade to a write with
    SQLITE_BUSY at once, without waiting out busy_timeout ("database is locked"). Taking the write lock
    at BEGIN makes every ``atomic()`` block -- ours and the library's own inserts and upserts -- wait
    its turn instead. Nested blocks keep sqlite-utils' savepoints.
    """

    dialect: Dialect = SQLITE

    @contextmanager
    def atomic(self) -> Iterator[Database]:
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        with write_transaction(self):
            yield self


def _enable_wal(db: sqlite_utils.Database) -> None:
    """Switch to WAL once; SQLite answers "locked" at once (no busy wait) when another process switches too."""
    for attempt in range(20):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 19:
                raise
            time.sleep(0.05 * (attempt + 1))


def open_db(path: str | Path, migrate: bool = True) -> Database:
    """Open (and by default create/migrate) the database at ``path``; every write transaction waits
    for the lock (see :class:`Database`). A ``postgresql://`` URL opens PostgreSQL instead (the password
    from the environment: PGPASSWORD or ~/.pgpass), with the same schema and functions."""
    if not is_postgres_url(path) and os.environ.get(redirect.ENV):
        path = redirect.target_for(path) or path  # the test suite on PostgreSQL (monitor/db/redirect.py)
    if is_postgres_url(path):
        from monitor.db.pg import connect  # psycopg only when PostgreSQL is used

        pg = connect(str(path))
        if migrate:
            migrate_db(pg)
        return pg  # type: ignore[return-value]  # the same interface as Database for the store's callers
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = Database(conn)
    if str(path) != ":memory:":
        _enable_wal(db)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 30000")
    if migrate:
        migrate_db(db)
    return db


# ---------------------------------------------------------------- migrations


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["mentions"].create(
        {
            "id": int,
            "source": str,
            "external_id": str,
            "url": str,
            "kind": str,
            "author": str,
            "author_reach": int,
            "title": str,
            "text": str,
            "rating": float,
            "lang": str,
            "posted_at": str,
            "experienced_at": str,
            "location": str,
            "brand": str,
            "parent_id": str,
            "first_seen_at": str,
            "updated_at": str,
            "raw": str,
        },
        pk="id",
        not_null={"source", "external_id"},
    )
    db["mentions"].create_index(["source", "external_id"], unique=True)
    db["mentions"].create_index(["posted_at"])
    db["mentions"].create_index(["brand", "posted_at"])
    db["mentions"].enable_fts(["title", "text"], create_triggers=True, tokenize="unicode61")

    db["mention_revisions"].create(
        {
            "id": int,
            "mention_id": int,
            "seen_at": str,
            "title_before": str,
            "title_after": str,
            "text_before": str,
            "text_after": str,
            "rating_before": float,
            "rating_after": float,
        },
        pk="id",
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    db["mention_revisions"].create_index(["mention_id"])

    db["classifications"].create(
        {
            "mention_id": int,
            "label": str,
            "score": float,
            "probs": str,
            "text_label": str,
            "topics": str,
            "urgency": str,
            "lang": str,
            "model": str,
            "classified_at": str,
        },
        pk="mention_id",
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    db["classifications"].create_index(["label"])

    db["queue_items"].create(
        {
            "id": int,
            "mention_id": int,
            "state": str,
            "priority": float,
            "reason": str,
            "sla_due_at": str,
            "assignee": str,
            "suggested_reply": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    db["queue_items"].create_index(["mention_id"], unique=True)
    db["queue_items"].create_index(["state", "priority"])

    db["queue_events"].create(
        {"id": int, "queue_item_id": int, "at": str, "actor": str, "action": str, "detail": str},
        pk="id",
        foreign_keys=[("queue_item_id", "queue_items", "id")],
    )
    db["queue_events"].create_index(["queue_item_id"])

    db["replies"].create(
        {
            "id": int,
            "queue_item_id": int,
            "text": str,
            "replied_by": str,
            "replied_at": str,
            "channel": str,
            "external_id": str,
        },
        pk="id",
        foreign_keys=[("queue_item_id", "queue_items", "id")],
    )

    db["crawl_runs"].create(
        {
            "id": int,
            "source": str,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "new": int,
            "updated": int,
            "unchanged": int,
            "errors": int,
            "messages": str,
        },
        pk="id",
    )
    db["crawl_runs"].create_index(["source", "started_at"])


def _m002_shifts(db: sqlite_utils.Database) -> None:
    """Incident-time estimates, their shift attributions, and detected incidents (monitor/shifts/)."""
    db["incident_estimates"].create(
        {
            "mention_id": int,
            "location": str,
            "window_start": str,
            "window_end": str,
            "basis": str,
            "detail": str,
            "estimated_at": str,
        },
        pk="mention_id",
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    db["incident_estimates"].create_index(["location", "window_start"])
    db["shift_attributions"].create(
        {"mention_id": int, "location": str, "shift": str, "shift_date": str, "weight": float},
        pk=("mention_id", "shift", "shift_date"),
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    db["shift_attributions"].create_index(["location", "shift_date"])
    db["incidents"].create(
        {
            "id": int,
            "location": str,
            "window_start": str,
            "window_end": str,
            "shift": str,
            "shift_date": str,
            "complaints": int,
            "sources": str,
            "topic": str,
            "detected_at": str,
        },
        pk="id",
    )
    db["incidents"].create_index(["location", "window_start"], unique=True)
    db["incident_mentions"].create(
        {"incident_id": int, "mention_id": int},
        pk=("incident_id", "mention_id"),
        foreign_keys=[("incident_id", "incidents", "id"), ("mention_id", "mentions", "id")],
    )
    db["incident_mentions"].create_index(["mention_id"])


def _m003_source_state(db: sqlite_utils.Database) -> None:
    # Per-source cursors / watermarks for incremental crawls.
    db["source_state"].create({"source": str, "key": str, "value": str, "updated_at": str}, pk=("source", "key"))


def _m004_fts_update_trigger(db: sqlite_utils.Database) -> None:
    # The trigger sqlite-utils creates re-indexes a mention on *any* update (reach, raw...);
    # only a changed title or text needs the full-text index touched.
    db.execute("drop trigger if exists mentions_au")
    db.execute(
        'CREATE TRIGGER "mentions_au" AFTER UPDATE OF "title", "text" ON "mentions" BEGIN\n'
        '  INSERT INTO "mentions_fts" ("mentions_fts", rowid, "title", "text") '
        'VALUES(\'delete\', old.rowid, old."title", old."text");\n'
        '  INSERT INTO "mentions_fts" (rowid, "title", "text") VALUES (new.rowid, new."title", new."text");\n'
        "END"
    )


def _m005_reply_work(db: sqlite_utils.Database) -> None:
    """Internal notes, reply templates used (for rotation), recoveries, and inbox filter indexes."""
    db["queue_notes"].create(
        {"id": int, "queue_item_id": int, "author": str, "text": str, "at": str},
        pk="id",
        foreign_keys=[("queue_item_id", "queue_items", "id")],
    )
    db["queue_notes"].create_index(["queue_item_id"])
    db["replies"].add_column("template", str)
    db["replies"].create_index(["queue_item_id"])
    db["replies"].create_index(["template"])
    # One row per replied item: what the customer did after our reply.
    db["recoveries"].create(
        {
            "queue_item_id": int,
            "mention_id": int,
            "replied_at": str,
            "detected_at": str,
            "rating_before": float,
            "rating_after": float,
            "text_changed": int,
            "outcome": str,
            "revision_id": int,
        },
        pk="queue_item_id",
        foreign_keys=[("queue_item_id", "queue_items", "id"), ("mention_id", "mentions", "id")],
    )
    db["queue_items"].add_column("first_replied_at", str)
    db.execute(
        "update queue_items set first_replied_at = "
        "(select min(replied_at) from replies r where r.queue_item_id = queue_items.id)"
    )
    db["queue_items"].create_index(["assignee", "state", "priority"])
    db["queue_items"].create_index(["sla_due_at"])
    # The inbox's default view: open items by priority. Partial, so it holds only the open few
    # and the first page is read in index order without sorting (queries repeat the literal IN).
    db.execute(
        "create index if not exists queue_items_open_by_priority on queue_items (priority desc, sla_due_at) "
        "where state in ('new', 'assigned')"
    )
    # Thread lookups (reopen on new replies, thread context) would scan every mention without it.
    db["mentions"].create_index(["source", "parent_id"])


def _m006_alerts_sent(db: sqlite_utils.Database) -> None:
    """One row per alert delivered on a channel (monitor/alerts/): it is never sent there again."""
    db["alerts_sent"].create(
        {"kind": str, "subject_key": str, "channel": str, "sent_at": str, "title": str, "detail": str},
        pk=("kind", "subject_key", "channel"),
    )
    db["alerts_sent"].create_index(["sent_at"])


def _m007_time_trust(db: sqlite_utils.Database) -> None:
    """``mentions.backfill``: 1 for an item with no trustworthy time (no date from the platform, or old when a
    source's first crawl found it): stored, shown and counted, never treated as new (docs/time-trust.md).
    ``crawl_runs.pid``: the crawling process, so a run left ``running`` by a killed process can be told apart
    from one still going."""
    db["mentions"].add_column("backfill", int, not_null_default=0)
    # Undated items stored before this migration fell on the day they were first seen; they have no day.
    db.execute("update mentions set backfill = 1 where posted_at is null")
    db["crawl_runs"].add_column("pid", int)
    db["crawl_runs"].create_index(["status"])


# A mention's UTC hour in the trends series (SQLite applies a stored "+05:30"-style offset); the rollups and the
# expression index below repeat it literally, so SQLite can use the index for it.
TREND_HOUR_SQL = "strftime('%Y-%m-%dT%H', coalesce({m}posted_at, {m}first_seen_at))"
# A classification's topics for json_each in the rollups: the JSON list the classifier writes; anything else, none.
TOPIC_LIST_SQL = (
    "case when not json_valid(c.topics) then '[]' when json_type(c.topics) = 'array' then c.topics else '[]' end"
)


def trend_hour_sql(db: Any, m: str = "") -> str:
    """A mention's trend hour in the form the engine's expression index is built on, so the rollups can use it:
    ``TREND_HOUR_SQL`` on SQLite, ``monitor_utc_hour(coalesce(...))`` on PostgreSQL (monitor/db/pg_schema.py).
    ``m`` is the table prefix (``"m."``)."""
    dialect = dialect_of(db)
    if dialect.postgres:
        return dialect.utc_hour(f"coalesce({m}posted_at, {m}first_seen_at)")
    return TREND_HOUR_SQL.format(m=m)


def topic_items_sql(db: Any) -> tuple[str, str, str]:
    """The topic names of classification ``c`` as SQL pieces: (a row source aliased ``j`` for the FROM list, the
    name, a condition). Names are the text items of the JSON list the classifier writes; a number in the list,
    or anything that is not a list, names no topic (``shifts.report.topic_names``)."""
    if dialect_of(db).postgres:
        # jsonb_array_elements_text would turn a number into a name: keep the jsonb items to test their type.
        return ("jsonb_array_elements(monitor_json_array(c.topics)) j", "(j.value #>> '{}')",
                "jsonb_typeof(j.value) = 'string'")  # fmt: skip
    return f"json_each({TOPIC_LIST_SQL}) j", "j.value", "j.type = 'text'"


def _m008_dashboard_rollups(db: sqlite_utils.Database) -> None:
    """Rollups the dashboards read instead of every row (docs/benchmarks.md, "Dashboards"): mentions per UTC
    hour, brand and label, complaint topics per hour and brand, shift weights per shift date. Triggers only
    mark the hours / shift dates a change touches as dirty (idempotent, so ``insert or replace`` and
    ``insert or ignore`` cannot put them out of step); the readers (monitor/trends/series.py,
    monitor/shifts/report.py) recount dirty ones from the rows before reading. Everything starts dirty."""
    hour_new, hour_old = TREND_HOUR_SQL.format(m="new."), TREND_HOUR_SQL.format(m="old.")
    db.execute(f"create index if not exists mentions_trend_hour on mentions ({TREND_HOUR_SQL.format(m='')})")
    db.execute("create table trend_hours (hour text, brand text, label text, mentions integer, "
               "primary key (hour, brand, label)) without rowid")  # fmt: skip
    db.execute("create table trend_topic_hours (hour text, brand text, topic text, complaints integer, "
               "primary key (hour, topic, brand)) without rowid")  # fmt: skip
    db.execute("create table trend_dirty (hour text primary key) without rowid")
    mark_new = f"insert or ignore into trend_dirty select {hour_new} where {hour_new} is not null;"
    mark_old = f"insert or ignore into trend_dirty select {hour_old} where {hour_old} is not null;"
    of_mention = "insert or ignore into trend_dirty select {h} from mentions m where m.id = {who}.mention_id " \
                 "and {h} is not null;".replace("{h}", TREND_HOUR_SQL.format(m="m."))  # fmt: skip
    triggers = {
        "rollup_mentions_ai": f"after insert on mentions begin {mark_new} end",
        "rollup_mentions_au": "after update of posted_at, first_seen_at, brand, backfill on mentions "
                              f"begin {mark_old} {mark_new} end",
        "rollup_mentions_ad": f"after delete on mentions begin {mark_old} end",
        "rollup_classifications_ai": f"after insert on classifications begin {of_mention.format(who='new')} "
                                     "insert or ignore into shift_dirty select shift_date from shift_attributions "
                                     "where mention_id = new.mention_id and shift_date is not null; end",
        "rollup_classifications_au": "after update of label, topics, mention_id on classifications "
                                     f"begin {of_mention.format(who='old')} "
                                     f"{of_mention.format(who='new')} insert or ignore into shift_dirty "
                                     "select shift_date from shift_attributions where mention_id in "
                                     "(old.mention_id, new.mention_id) and shift_date is not null; end",
        "rollup_classifications_ad": f"after delete on classifications begin {of_mention.format(who='old')} "
                                     "insert or ignore into shift_dirty select shift_date from shift_attributions "
                                     "where mention_id = old.mention_id and shift_date is not null; end",
        "rollup_attributions_ai": "after insert on shift_attributions begin insert or ignore into shift_dirty "
                                  "select new.shift_date where new.shift_date is not null; end",
        "rollup_attributions_au": "after update on shift_attributions begin insert or ignore into shift_dirty "
                                  "select d from (select old.shift_date as d union select new.shift_date) "
                                  "where d is not null; end",
        "rollup_attributions_ad": "after delete on shift_attributions begin insert or ignore into shift_dirty "
                                  "select old.shift_date where old.shift_date is not null; end",
    }  # fmt: skip
    db.execute("create table shift_day_counts (location text, shift text, shift_date text, mentions real, "
               "complaints real, primary key (shift_date, location, shift)) without rowid")  # fmt: skip
    db.execute("create table shift_day_topics (location text, shift text, shift_date text, topic text, weight real, "
               "primary key (shift_date, location, shift, topic)) without rowid")  # fmt: skip
    db.execute("create table shift_dirty (shift_date text primary key) without rowid")
    db["shift_attributions"].create_index(["shift_date"], if_not_exists=True)
    for name, body in triggers.items():
        db.execute(f"create trigger if not exists {name} {body}")
    db.execute(f"insert or ignore into trend_dirty select distinct {TREND_HOUR_SQL.format(m='')} from mentions "
               f"where {TREND_HOUR_SQL.format(m='')} is not null")  # fmt: skip
    db.execute(
        "insert or ignore into shift_dirty select distinct shift_date from shift_attributions "
        "where shift_date is not null"
    )
    # Queue metrics over time (/metrics, its chart) read items by creation time.
    db["queue_items"].create_index(["created_at"], if_not_exists=True)


def _m009_lookup_indexes(db: sqlite_utils.Database) -> None:
    """Indexes for look-ups that read every row without them on a large store (docs/benchmarks.md):
    the item page's "author's other mentions" (``queue.items.author_mentions``: author on the same platform) and
    its thread (``thread_context``: replies under a post, oldest first: with ``posted_at`` in the index SQLite
    reads them in order, and never prefers walking every mention by date because most have no parent), and
    response metrics (``queue.metrics``), which read each item in a creation-time range for its state, reply
    and due times and group: covering, so the items table is not visited. Each new index starts with the
    columns of the one it replaces (migration 5's thread index, migration 8's ``queue_items(created_at)``)."""
    db["mentions"].create_index(["author", "source"], if_not_exists=True)
    db["mentions"].create_index(["source", "parent_id", "posted_at"], if_not_exists=True)
    db.execute("drop index if exists idx_mentions_source_parent_id")
    db.execute(
        "create index if not exists queue_items_metrics on queue_items "
        "(created_at, state, first_replied_at, sla_due_at, assignee, mention_id)"
    )
    db.execute("drop index if exists idx_queue_items_created_at")


def _m010_leases(db: sqlite_utils.Database) -> None:
    """``leases``: one row per lease (``scheduler``: the one `monitor run` that may start jobs, monitor/lease.py),
    naming its holder (``host:pid:random``) and when it expires unless renewed. Changed only by compare-and-set
    under ``BEGIN IMMEDIATE``. (Digests are claimed in ``alerts_sent``, kind ``digest``: monitor/digest/send.py.)"""
    db.execute(
        "create table if not exists leases (name text primary key, holder text not null, acquired_at text, "
        "renewed_at text, expires_at text not null)"
    )


def _m011_classify_claims(db: sqlite_utils.Database) -> None:
    """``classify_claims``: mention id ranges a classifier is working on (monitor/classify/stage.py), so two workers
    never classify one mention twice. Taken and released under ``BEGIN IMMEDIATE``; ``holder`` is unique per batch
    (``host:pid:random``), and a claim past ``expires_at`` or whose process is gone (same host) is taken over."""
    db.execute(
        "create table if not exists classify_claims (holder text primary key, first_id integer not null, "
        "last_id integer not null, claimed_at text, expires_at text not null)"
    )


def _m012_crawl_run_host(db: sqlite_utils.Database) -> None:
    """``crawl_runs.host``: the machine whose process ``pid`` runs the crawl. Workers crawl on several machines, and
    a pid means nothing on another one: a run from another host is judged by its age alone (monitor/crawl.py)."""
    if "host" not in db["crawl_runs"].columns_dict:
        db.execute("alter table crawl_runs add column host text")


def _m013_statement_marks(db: sqlite_utils.Database) -> None:
    """Nothing on SQLite. On PostgreSQL the rollup marks of inserted rows move from row triggers to statement
    triggers (monitor/db/pg_schema.py, M013): the number keeps both engines' versions in step."""


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_shifts,
    _m003_source_state,
    _m004_fts_update_trigger,
    _m005_reply_work,
    _m006_alerts_sent,
    _m007_time_trust,
    _m008_dashboard_rollups,
    _m009_lookup_indexes,
    _m010_leases,
    _m011_classify_claims,
    _m012_crawl_run_host,
    _m013_statement_marks,
]
SCHEMA_VERSION = len(MIGRATIONS)


def take_dirty_marks(db: sqlite_utils.Database, table: str, column: str) -> tuple[list[Any], str]:
    """(params, SQL condition) selecting the rollup keys marked dirty in ``table``, for a recount inside the write
    transaction. On PostgreSQL each statement of a READ COMMITTED transaction sees marks committed before it, and a
    write outside the write lock (an autocommit statement) may mark a key mid-recount: the marks are taken once,
    first; a later mark of a taken key waits for this commit and then stays for the next recount. On SQLite the
    write lock already excludes that, and the marks are read where they are used (cleared by the caller)."""
    if dialect_of(db).postgres:
        taken = [row[0] for row in db.execute(f"delete from {table} returning {column}")]
        return [taken], "= any(cast(? as text[]))"
    return [], f"in (select {column} from {table})"


def schema_version(db: sqlite_utils.Database) -> int:
    if dialect_of(db).postgres:
        from monitor.db.pg_migrate import schema_version as pg_schema_version

        return pg_schema_version(db)
    if not db["meta"].exists():
        return 0
    row = db.execute("select value from meta where key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate_db(db: sqlite_utils.Database) -> list[int]:
    """Apply pending forward migrations; return the versions applied."""
    if dialect_of(db).postgres:  # the same versions, as PostgreSQL DDL (monitor/db/pg_schema.py)
        from monitor.db.pg_migrate import migrate

        return migrate(db, SCHEMA_VERSION)
    db.execute("create table if not exists meta (key text primary key, value text)")
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {current} is newer than this monitor ({SCHEMA_VERSION}); upgrade monitor"
        )
    applied = []
    for version in range(current + 1, SCHEMA_VERSION + 1):
        # Under the write lock, and checked again inside it: two processes opening a new database at
        # once (the scheduler's jobs, a CLI command) must not both run a migration.
        with write_transaction(db):
            if schema_version(db) >= version:
                continue
            MIGRATIONS[version - 1](db)
            db["meta"].upsert({"key": "schema_version", "value": str(version)}, pk="key")
        applied.append(version)
    return applied


# ------------------------------------------------------------------ mentions


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


# --------------------------------------------------------- incremental crawls


def get_source_state(db: sqlite_utils.Database, source: str, key: str) -> str | None:
    """A source's saved cursor or watermark (e.g. the newest item time seen), or None."""
    row = db.execute("select value from source_state where source = ? and key = ?", [source, key]).fetchone()
    return row[0] if row else None


def set_source_state(db: sqlite_utils.Database, source: str, key: str, value: str) -> None:
    with write_transaction(db, scope=f"source:{source}"):
        db.execute(
            "insert into source_state (source, key, value, updated_at) values (?, ?, ?, ?) "
            "on conflict (source, key) do update set value = excluded.value, updated_at = excluded.updated_at",
            [source, key, value, utcnow()],
        )


def known_external_ids(db: sqlite_utils.Database, source: str, external_ids: Iterable[str]) -> set[str]:
    """Which of ``external_ids`` are already stored for ``source`` (lets a crawl stop paging)."""
    postgres = dialect_of(db).postgres
    ids = [_text(valid_unicode(str(i)), postgres) for i in external_ids]  # as record_mentions stores them
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        found.update(
            row[0]
            for row in db.execute(
                f"select external_id from mentions where source = ? and external_id in ({marks})", [source, *chunk]
            )
        )
    return found


# ---------------------------------------------------------------- crawl runs


def start_crawl_run(db: sqlite_utils.Database, source: str) -> int:
    with write_transaction(db, scope=f"source:{source}"):
        row = db.execute(
            "insert into crawl_runs (source, started_at, status, new, updated, unchanged, errors, messages) "
            "values (?, ?, 'running', 0, 0, 0, 0, '[]') returning id",  # no lastrowid on PostgreSQL
            [source, utcnow()],
        ).fetchone()
    return row[0]


def finish_crawl_run(db: sqlite_utils.Database, run_id: int, counts: UpsertCounts, errors: list[str]) -> None:
    status = "ok" if not errors else ("partial" if counts.new or counts.updated or counts.unchanged else "failed")
    with write_transaction(db, scope=f"crawl_run:{run_id}"):  # its own row only
        db.execute(
            "update crawl_runs set finished_at = ?, status = ?, new = ?, updated = ?, unchanged = ?, "
            "errors = ?, messages = ? where id = ?",
            [
                utcnow(),
                status,
                counts.new,
                counts.updated,
                counts.unchanged,
                len(errors),
                json.dumps(errors[:50], ensure_ascii=False),
                run_id,
            ],
        )


def latest_crawl_runs(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """The most recent run of every source (for source health)."""
    return list(
        db.query(
            "select * from crawl_runs where id in (select max(id) from crawl_runs group by source) order by source"
        )
    )
