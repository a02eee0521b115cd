"""Every SQLite store path opened on PostgreSQL instead: how the whole test suite runs on the second engine.

With ``MONITOR_TEST_POSTGRES`` set to a PostgreSQL URL (a database its user may run ``CREATE DATABASE`` from; the
password from ``PGPASSWORD``), :func:`monitor.store.open_db` turns each SQLite path into a PostgreSQL database of
its own, named after the path's absolute form and created from a migrated template on first use. That holds in
this process and in every child it starts (CLI subprocesses, Scrapy's crawl processes, workers), which inherit
the variable: config files, fixtures and tests keep their paths, and ``MONITOR_TEST_STORE=postgresql ./test.sh``
(tests/conftest.py starts the server) runs them all on PostgreSQL. Not a deployment setting: a deployment names
its server in ``[storage] url``, and the CLI does not document this variable.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

ENV = "MONITOR_TEST_POSTGRES"
PREFIX = "mt_"  # every database made here; the test suite drops them after each test
TEMPLATE = "mt_template"
_LOCK_KEY = 0x6D745F74  # "mt_t": creation of the template and the databases, one process at a time

_made: set[str] = set()
_made_lock = threading.Lock()


def database_name(path: str | Path) -> str:
    return PREFIX + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:24]


def target_for(path: str | Path) -> str | None:
    """The PostgreSQL URL standing in for SQLite ``path`` (created when missing), or None when not redirecting."""
    admin = os.environ.get(ENV)
    if not admin or str(path) == ":memory:":
        return None
    name = database_name(path)
    base, _, _ = admin.rpartition("/")
    url = f"{base}/{name}"
    with _made_lock:
        if name not in _made:
            _create(admin, name)
            _made.add(name)
    return url


def forget() -> None:
    """After the suite dropped the databases (between tests): create them again when next opened."""
    with _made_lock:
        _made.clear()


def _create(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", [_LOCK_KEY])  # released when the connection closes
        if conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            return
        if not conn.execute("select 1 from pg_database where datname = %s", [TEMPLATE]).fetchone():
            _create_template(conn, admin)
        # A copy of the migrated template: a migration run per database would cost ~0.5 s each.
        conn.execute(f'create database "{name}" template "{TEMPLATE}"')


def _create_template(conn: object, admin: str) -> None:
    from monitor.store import open_db

    conn.execute(f'create database "{TEMPLATE}"')  # type: ignore[attr-defined]
    base, _, _ = admin.rpartition("/")
    open_db(f"{base}/{TEMPLATE}").close()  # migrated; closed, so it can be copied
