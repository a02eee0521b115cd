"""Forward migrations on PostgreSQL: ``meta.schema_version`` as on SQLite, each version in its own
transaction (PostgreSQL's DDL is transactional: a failed migration leaves the previous version intact)."""

from __future__ import annotations

from monitor.db.pg import WRITE_LOCK, PgDatabase
from monitor.db.pg_schema import MIGRATIONS


def schema_version(db: PgDatabase) -> int:
    if not db["meta"].exists():
        return 0
    row = db.execute("select value from meta where key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: PgDatabase, target: int) -> list[int]:
    """Apply versions up to ``target``; return those applied. Two processes migrating at once: the second
    waits for the write lock, then finds the version done."""
    if len(MIGRATIONS) < target:
        raise RuntimeError(f"PostgreSQL schema has {len(MIGRATIONS)} migrations, SQLite {target}")
    with db.atomic():  # the lock first: "create table if not exists" races between two new processes
        db.execute("create table if not exists meta (key text primary key, value text)")
    current = schema_version(db)
    if current > target:
        raise RuntimeError(f"database schema version {current} is newer than this monitor ({target}); upgrade monitor")
    applied = []
    for version in range(current + 1, target + 1):
        with db.atomic():
            if schema_version(db) >= version:
                continue
            for statement in MIGRATIONS[version - 1]:
                db.conn.execute(statement)  # DDL as written: no parameter translation
            db.execute(
                "insert into meta (key, value) values ('schema_version', ?) "
                "on conflict (key) do update set value = excluded.value",
                [str(version)],
            )
        applied.append(version)
    return applied


__all__ = ["WRITE_LOCK", "migrate", "schema_version"]
