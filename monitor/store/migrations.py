"""The schema: forward migrations for SQLite (PostgreSQL runs the same versions as its own DDL, monitor/db/)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.store.transactions import write_transaction


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
    the item page's "author's other mentions" (``queue.listing.author_mentions``: author on the same platform) and
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


def _m014_stored_search_document(db: sqlite_utils.Database) -> None:
    """PostgreSQL only (its search document moves into a table of its own, ``mentions_fts`` as here): SQLite's
    FTS5 table has stored its index since migration 1. Kept so a version means the same schema on both."""


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
    _m014_stored_search_document,
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
