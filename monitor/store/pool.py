"""Store connections for the inbox: a SQLite file opened per request; a PostgreSQL server through a pool.

Opening a SQLite file costs microseconds, and a connection per request keeps each request's view of the store
its own. A PostgreSQL connection is a TCP connection plus a SCRAM authentication (a few milliseconds on
loopback, more across machines): on every page, several times over with the dashboards' parallel chart
requests. So on PostgreSQL the app keeps up to one connection per server thread in ``psycopg_pool``'s pool,
checked before each use (a server restart costs one reconnect, not an error page); a connection comes back to
the pool rolled back if a request left a transaction open.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from monitor.db import is_postgres_url
from monitor.store import open_db

APPLICATION_NAME = "mention-monitor-inbox"


class StoreConnections:
    """``get()`` a store for one request, ``put()`` it back at the request's end."""

    def __init__(self, target: str | Path, max_size: int) -> None:
        self.target = target
        self.max_size = max(1, max_size)
        self._pool: Any = None
        self._lock = threading.Lock()

    @property
    def pooled(self) -> bool:
        return is_postgres_url(self.target)

    def get(self) -> Any:
        if not self.pooled:
            return open_db(self.target, migrate=False)
        from monitor.db.pg import PgDatabase

        return PgDatabase(self._get_pool().getconn(), str(self.target))

    def put(self, db: Any) -> None:
        if not self.pooled:
            db.conn.close()
            return
        self._get_pool().putconn(db.conn)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                from monitor.db.pg import CONNECT_OPTIONS
                from monitor.db.url import check_url

                check_url(str(self.target))
                self._pool = ConnectionPool(
                    str(self.target),
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={**CONNECT_OPTIONS, "application_name": APPLICATION_NAME},
                    check=ConnectionPool.check_connection,
                    name="inbox",
                    open=True,
                )
            return self._pool
