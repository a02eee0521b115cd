"""The inbox on a PostgreSQL store: pooled connections, reused across requests, survive a server-side drop."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from monitor.config import load_config
from monitor.store import open_db, record_mentions
from monitor.store.pool import APPLICATION_NAME
from monitor.web.app import create_app

from .conftest import write_config
from .pg import PgServer, pg_server, pg_url  # noqa: F401


def inbox_connections(server: PgServer) -> list[int]:
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        sql = "select pid from pg_stat_activity where application_name = %s"
        return [row[0] for row in admin.execute(sql, [APPLICATION_NAME])]


def test_inbox_reuses_pooled_connections_and_recovers_from_a_dropped_one(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    pg_server: PgServer,  # noqa: F811
):
    db = open_db(pg_url)
    record_mentions(db, "reviews", [{"external_id": "1", "text": "<script>alert(1)</script> cold coffee"}])
    db.conn.close()
    config = load_config(write_config(tmp_path, f'[storage]\nurl = "{pg_url}"\n'))
    app = create_app(config, users={})
    app.testing = True
    client = app.test_client()
    try:
        for _ in range(3):
            assert client.get("/").status_code == 200
        first = set(inbox_connections(pg_server))
        for _ in range(5):
            assert client.get("/?q=coffee").status_code == 200
        # One request at a time: the pooled connections serve them all, none opened per request.
        assert 1 <= len(first) <= 2 and set(inbox_connections(pg_server)) == first
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            for pid in inbox_connections(pg_server):
                admin.execute("select pg_terminate_backend(%s)", [pid])
        response = client.get("/")  # the pool checks a connection before lending it: a new one, not a 500
        assert response.status_code == 200
        assert b"<script>alert(1)</script>" not in response.data
    finally:
        app.extensions["monitor_connections"].close()
    assert inbox_connections(pg_server) == []


@pytest.mark.parametrize("path", ["/", "/trends", "/shifts", "/sources"])
def test_pages_answer_on_postgres(tmp_path: Path, pg_url: str, path: str):  # noqa: F811
    open_db(pg_url).conn.close()
    app = create_app(load_config(write_config(tmp_path, f'[storage]\nurl = "{pg_url}"\n')), users={})
    app.testing = True
    try:
        assert app.test_client().get(path).status_code == 200
    finally:
        app.extensions["monitor_connections"].close()
