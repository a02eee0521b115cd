"""The store layer: every SQL statement the stages need, on SQLite (sqlite-utils, WAL; the default) or PostgreSQL.

Stages call these functions and never write SQL themselves. Values always travel as SQL parameters; mention
text is never formatted into SQL. ``open_db`` takes a SQLite path or a ``postgresql://`` URL; the PostgreSQL
side (monitor/db/) offers the same ``execute`` / ``query`` / ``atomic()`` and table helpers, and
``db.dialect`` says which SQL to write where the engines differ.

| module | what |
|---|---|
| ``connection`` | ``open_db``, the SQLite ``Database`` whose ``atomic()`` takes the write lock first |
| ``transactions`` | ``write_transaction`` (scoped on PostgreSQL), ``retry_conflicts``, ``utcnow`` |
| ``migrations`` | the schema's forward migrations, rollup SQL fragments |
| ``mentions`` | ``record_mentions`` (dedup, upsert, revisions), reading and searching mentions |
| ``crawl_runs`` | a source's saved state and its crawl runs |
| ``meta``, ``leases`` | settings and marks in ``meta``; the scheduler lease and workers' locks |
| ``classify`` | classifications and the batch claims of classifier workers |
| ``shifts`` | incident-time estimates, shift attributions, incidents, per-shift-date rollups |
| ``queue_items``, ``queue_search`` | reply-queue items and their history; the inbox's filters, search, pages, counts |
| ``replies``, ``team`` | replies once sent and recoveries; team load, assignment, response metrics |
| ``alerts``, ``digest``, ``trends``, ``dashboards`` | what the alerts, the daily digest and the dashboard pages read |
| ``pool``, ``demo`` | the inbox's pooled PostgreSQL connections; the demo's own look-up |

The data flows one way: stages import the store, the store never imports a stage (``tests/test_store_layer.py``
fails on SQL anywhere under ``monitor/`` outside this package and ``monitor/db/``).
"""

from monitor.store.connection import Database, open_db
from monitor.store.crawl_runs import (
    finish_crawl_run,
    get_source_state,
    known_external_ids,
    latest_crawl_runs,
    set_source_state,
    start_crawl_run,
)
from monitor.store.mentions import (
    MENTION_FIELDS,
    REVISED_FIELDS,
    UpsertCounts,
    get_mention,
    mention_revisions,
    record_mentions,
    search_mentions,
)
from monitor.store.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TOPIC_LIST_SQL,
    TREND_HOUR_SQL,
    migrate_db,
    schema_version,
    take_dirty_marks,
    topic_items_sql,
    trend_hour_sql,
)
from monitor.store.transactions import retry_conflicts, utcnow, write_transaction

__all__ = [
    "MENTION_FIELDS",
    "MIGRATIONS",
    "REVISED_FIELDS",
    "SCHEMA_VERSION",
    "TOPIC_LIST_SQL",
    "TREND_HOUR_SQL",
    "Database",
    "UpsertCounts",
    "finish_crawl_run",
    "get_mention",
    "get_source_state",
    "known_external_ids",
    "latest_crawl_runs",
    "mention_revisions",
    "migrate_db",
    "open_db",
    "record_mentions",
    "retry_conflicts",
    "schema_version",
    "search_mentions",
    "set_source_state",
    "start_crawl_run",
    "take_dirty_marks",
    "topic_items_sql",
    "trend_hour_sql",
    "utcnow",
    "write_transaction",
]
