"""A source's saved state (cursors, watermarks) and its crawl runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.store.mentions import UpsertCounts, _text
from monitor.store.transactions import utcnow, write_transaction
from monitor.textsafe import valid_unicode


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


def claim_run(db: sqlite_utils.Database, run_id: int, pid: int, host: str) -> None:
    """Record the process (and its machine) running ``run_id``, so a later start can tell if it was killed."""
    with write_transaction(db, scope=f"crawl_run:{run_id}"):  # its own row only
        db.execute("update crawl_runs set pid = ?, host = ? where id = ?", [pid, host, run_id])


def running_runs(db: sqlite_utils.Database) -> list[tuple[int, int | None, str | None, str | None, str | None]]:
    """``(id, pid, host, started_at, messages)`` of every run still marked running."""
    return [
        tuple(row)
        for row in db.execute("select id, pid, host, started_at, messages from crawl_runs where status = 'running'")
    ]


def fail_running_run(db: sqlite_utils.Database, run_id: int, messages: list[str]) -> bool:
    """Mark run ``run_id`` failed with ``messages`` if it is still running (checked under the write lock: it may
    have finished meanwhile); whether it was."""
    with write_transaction(db):
        cursor = db.execute(
            "update crawl_runs set status = 'failed', finished_at = ?, errors = coalesce(errors, 0) + 1, "
            "messages = ? where id = ? and status = 'running'",
            [utcnow(), json.dumps(messages[:50], ensure_ascii=False), run_id],
        )
    return cursor.rowcount == 1


def last_run_id(db: sqlite_utils.Database) -> int:
    """The newest crawl run's id (0 when there is none): runs after it are a later crawl's."""
    return db.execute("select coalesce(max(id), 0) from crawl_runs").fetchone()[0]


def runs_after(db: sqlite_utils.Database, run_id: int, sources: list[str]) -> list[dict[str, Any]]:
    """The runs of ``sources`` newer than ``run_id``, oldest first."""
    if not sources:
        return []
    marks = ", ".join("?" * len(sources))
    cursor = db.execute(
        "select id, source, status, new, updated, unchanged, errors, messages from crawl_runs "
        f"where id > ? and source in ({marks}) order by id",
        [run_id, *sources],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
