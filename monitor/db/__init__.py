"""The storage adapter: one store interface over SQLite (sqlite-utils, the default) and PostgreSQL.

``monitor.store.open_db(path_or_url)`` picks the engine; code that must write engine-specific SQL asks
``db.dialect`` (:mod:`monitor.db.dialect`). PostgreSQL support imports psycopg lazily, so a SQLite-only
install never loads it. Errors to catch on either engine: :mod:`monitor.db.errors`. See docs/postgres-port.md.
"""

from __future__ import annotations

from typing import Any

from monitor.db.dialect import POSTGRESQL, SQLITE, Dialect
from monitor.db.url import StorageURLError, check_url, describe, is_postgres_url, redact


def dialect_of(db: Any) -> Dialect:
    """The dialect of a database opened by ``monitor.store.open_db`` (a plain sqlite-utils one: SQLite)."""
    return getattr(db, "dialect", SQLITE)


__all__ = [
    "POSTGRESQL", "SQLITE", "Dialect", "StorageURLError", "check_url", "describe", "dialect_of", "is_postgres_url",
    "redact",
]  # fmt: skip
