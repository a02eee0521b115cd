"""The ``meta`` table's settings (marks such as the last digest day, per-user session generations) and row counts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from monitor.store.transactions import write_transaction

# The tables a summary may count (names are formatted into SQL, so only these).
COUNTABLE = ("mentions", "classifications", "queue_items", "replies", "crawl_runs")


def get_meta(db: Any, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    row = db.execute("select value from meta where key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(db: Any, key: str, value: str) -> None:
    """Store ``value`` under ``key`` (replacing what was there)."""
    with write_transaction(db):
        db.execute(
            "insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
            [key, value],
        )


def get_or_create_meta(db: Any, key: str, value: str) -> str:
    """The value under ``key``; ``value`` is stored first when there is none. Two callers at once: the first
    insert wins and both read its value."""
    with write_transaction(db):
        db.execute("insert into meta (key, value) values (?, ?) on conflict do nothing", [key, value])
    return db.execute("select value from meta where key = ?", [key]).fetchone()[0]


def row_counts(db: Any, *tables: str) -> dict[str, int]:
    """How many rows each of ``tables`` holds."""
    counts = {}
    for table in tables:
        if table not in COUNTABLE:
            raise ValueError(f"not a countable table: {table!r}")
        counts[table] = db.execute(f"select count(*) from {table}").fetchone()[0]
    return counts


def sqlite_file_meta(path: Path, key: str) -> str | None:
    """The value under ``key`` in the SQLite file at ``path``, read without migrating or switching the file to
    WAL; None when the file is not a store (or has no such key)."""
    try:
        with closing(sqlite3.connect(path)) as conn:
            row = conn.execute("select value from meta where key = ?", [key]).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None
