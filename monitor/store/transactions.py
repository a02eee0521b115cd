"""Write transactions on either engine: the lock taken first, conflicts run again."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

import sqlite_utils

from monitor.db import dialect_of
from monitor.db import errors as db_errors

T = TypeVar("T")
log = logging.getLogger("monitor.store")


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
