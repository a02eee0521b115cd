"""``monitor init`` and the call sites on the configured store (``[storage] url``), and the engine-neutral errors.

The PostgreSQL tests use tests/pg.py's throwaway cluster, whose password reaches the store only through
``PGPASSWORD`` (the URL in the config has none); they skip without a server. The SQLite tests pin the output
users already see, byte for byte.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.db import errors as db_errors
from monitor.store import SCHEMA_VERSION, open_db, schema_version

from .conftest import REPO, write_config
from .pg import PgServer, pg_server, pg_url  # noqa: F401

ALL_VERSIONS = list(range(1, SCHEMA_VERSION + 1))


def init(config_path: Path):
    return CliRunner().invoke(cli, ["--config", str(config_path), "init"], catch_exceptions=False)


# ------------------------------------------------------------------ SQLite


@pytest.mark.sqlite_only(reason="monitor init on a SQLite file")
def test_init_on_sqlite_prints_what_it_always_did(tmp_path: Path):
    config_path = write_config(tmp_path, '[storage]\npath = "m.db"\n')
    first = init(config_path)
    assert first.exit_code == 0
    assert first.output == f"{tmp_path / 'm.db'}: schema version {SCHEMA_VERSION} (applied {ALL_VERSIONS})\n"
    again = init(config_path)
    assert again.exit_code == 0 and again.output == f"{tmp_path / 'm.db'}: schema version {SCHEMA_VERSION}\n"
    db = open_db(tmp_path / "m.db", migrate=False)
    assert schema_version(db) == SCHEMA_VERSION
    db.conn.close()


def test_path_and_url_together_are_one_line_naming_the_keys(tmp_path: Path):
    config_path = write_config(tmp_path, '[storage]\npath = "m.db"\nurl = "postgresql://monitor@db.example/monitor"\n')
    result = init(config_path)
    assert result.exit_code == 2
    assert result.output == "config error: storage.url: set either path (SQLite) or url (PostgreSQL), not both\n"
    assert not (tmp_path / "m.db").exists()


def test_storage_target_reaches_the_crawler_settings(tmp_path: Path):
    from spiders.run import base_settings

    url = "postgresql://monitor@db.example/monitor"
    config = load_config(write_config(tmp_path, f'[storage]\nurl = "{url}"\n'))
    assert base_settings(config)["MONITOR_DB_PATH"] == url  # the store writer opens the same string
    config = load_config(write_config(tmp_path, '[storage]\npath = "m.db"\n'))
    assert base_settings(config)["MONITOR_DB_PATH"] == str(tmp_path / "m.db")


def test_sqlite_only_processes_never_import_psycopg():
    # The error tuples are read at the except clause; building them must not load the driver (~0.1 s).
    code = (
        "import sys\n"
        "import monitor.cli, monitor.lease, monitor.queue.items, monitor.queue.listing, monitor.shifts.report\n"
        "import monitor.trends.series\n"
        "from monitor.db import errors\n"
        "assert errors.BUSY_ERRORS == (__import__('sqlite3').OperationalError,)\n"
        "assert errors.connect_errors() == ()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


# -------------------------------------------------------------- PostgreSQL


def test_init_on_postgres_creates_the_schema(tmp_path: Path, pg_url: str, pg_server: PgServer):  # noqa: F811
    assert "@" in pg_url and ":" not in pg_url.split("://", 1)[1].split("@", 1)[0]  # no password in the URL
    config_path = write_config(tmp_path, f'[storage]\nurl = "{pg_url}"\n')
    first = init(config_path)
    assert first.exit_code == 0, first.output
    assert first.output == f"PostgreSQL {pg_url}: schema version {SCHEMA_VERSION} (applied {ALL_VERSIONS})\n"
    if pg_server.password:
        assert pg_server.password not in first.output
    again = init(config_path)
    assert again.exit_code == 0 and again.output == f"PostgreSQL {pg_url}: schema version {SCHEMA_VERSION}\n"
    db = open_db(pg_url, migrate=False)
    try:
        assert schema_version(db) == SCHEMA_VERSION
        assert {"mentions", "classifications", "queue_items", "crawl_runs", "meta", "leases"} <= set(db.table_names())
    finally:
        db.conn.close()
    assert not list(tmp_path.glob("*.db"))  # nothing written to SQLite on the side


def test_init_without_a_server_is_one_line(tmp_path: Path):
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config_path = write_config(tmp_path, f'[storage]\nurl = "postgresql://monitor@127.0.0.1:{port}/monitor"\n')
    result = CliRunner().invoke(cli, ["--config", str(config_path), "init"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("database error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_postgres_errors_are_in_the_tuples(pg_url: str):  # noqa: F811
    import psycopg

    db = open_db(pg_url)
    try:
        db.execute("set statement_timeout = 50")  # the counterpart of the inbox's Budget
        with pytest.raises(db_errors.INTERRUPTED_ERRORS) as caught:
            db.execute("select pg_sleep(5)")
        assert db_errors.is_interrupted(caught.value)
        db.execute("set statement_timeout = 0")
        db.execute("set default_transaction_read_only = on")  # a read-only store (a hot standby answers alike)
        with pytest.raises(db_errors.BUSY_ERRORS) as caught, db.atomic():
            db.execute("delete from trend_dirty")
        assert isinstance(caught.value, psycopg.errors.ReadOnlySqlTransaction)
        assert not db_errors.is_interrupted(caught.value)
        assert issubclass(psycopg.errors.LockNotAvailable, db_errors.BUSY_ERRORS)
        assert issubclass(psycopg.Error, db_errors.DATABASE_ERRORS)
    finally:
        db.conn.close()


def test_lease_keeper_survives_a_postgres_error(pg_url: str, caplog: pytest.LogCaptureFixture):  # noqa: F811
    from monitor.lease import LeaseKeeper

    keeper = LeaseKeeper(pg_url, timedelta(seconds=60), timedelta(seconds=20))
    assert keeper.wait_until_held(threading.Event())
    keeper.db.execute("set default_transaction_read_only = on")
    keeper.close()  # giving the lease back fails: logged, not raised (it expires on its own)
    assert "could not give it back" in caplog.text
