"""Opening the store: a SQLite file (WAL, every write transaction waits for the lock) or a PostgreSQL URL."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from monitor.db import SQLITE, Dialect, is_postgres_url, redirect
from monitor.store.migrations import migrate_db
from monitor.store.transactions import write_transaction


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
