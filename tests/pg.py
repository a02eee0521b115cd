"""A throwaway PostgreSQL server for the tests, and fixtures that run a test on both store backends.

``pg_server`` (session): ``$MONITOR_TEST_PG_URL`` when set (a server CI or a developer started: a URL to a
database the user may create databases from, password in PGPASSWORD), otherwise a new cluster in a
temporary folder (initdb + pg_ctl on a free loopback port, password authentication, fsync off), stopped and
removed at the end. As root (CI), the server runs as the ``postgres`` user: PostgreSQL refuses root.
Without the server binaries (apt-get install -y postgresql) or psycopg, the tests that need it are skipped
with that reason. ``pg_url``: a new empty database per test. ``any_db``: a migrated store, once per backend.
Import the fixtures into a test module: ``from tests.pg import any_db, pg_server, pg_url  # noqa: F401``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

URL_ENV = "MONITOR_TEST_PG_URL"
RUN_AS = "postgres"


# Set (to anything) for a server that flushes every commit to disk, as a deployed one does (bench/scale.py --durable).
DURABLE_ENV = "MONITOR_BENCH_PG_DURABLE"


@dataclass
class PgServer:
    admin_url: str  # a database to run CREATE DATABASE from
    password: str | None

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"


def _binaries() -> tuple[str, str] | None:
    """initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/VERSION/bin (not on PATH there)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK) and os.access(f"{folder}/pg_ctl", os.X_OK):
            return f"{folder}/initdb", f"{folder}/pg_ctl"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], user: str | None, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, user=user, check=True, capture_output=True, text=True, timeout=60, **kwargs)


class Unavailable(Exception):
    """No PostgreSQL server can be started here (the reason says what to install)."""


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    """A new cluster in a temporary folder (initdb + pg_ctl on a free loopback port, password authentication,
    fsync off), PGPASSWORD set for the block; stopped and removed afterwards. Raises :class:`Unavailable`."""
    binaries = _binaries()
    if binaries is None:
        raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    initdb, pg_ctl = binaries
    user = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise Unavailable(
                f"running as root and there is no {RUN_AS!r} user to run the PostgreSQL server as"
            ) from None
        user = RUN_AS
    folder = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
    password = secrets.token_urlsafe(18)
    (folder / "pw").write_text(password + "\n")
    if user:
        for path in (folder, folder / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data, port = folder / "data", _free_port()
    try:
        _run([initdb, "-D", str(data), "-U", "monitor", "--pwfile", str(folder / "pw"), "-A", "scram-sha-256",
              "-E", "UTF8", "--locale=C.UTF-8"], user)  # fmt: skip
        # Throwaway data: no fsync. bench/scale.py --durable measures a server as deployed (the defaults: on).
        speed = "" if os.environ.get(DURABLE_ENV) else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 {speed}-c max_connections=200"
        _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"], user)
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr or exc.stdout}\n{log[-2000:]}") from None
    saved = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = password  # the store reads it from the environment, as in production
    try:
        yield PgServer(f"postgresql://monitor@127.0.0.1:{port}/postgres", password)
    finally:
        if saved is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = saved
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], user=user, capture_output=True,
                       timeout=60, check=False)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    if os.environ.get(URL_ENV):
        yield PgServer(os.environ[URL_ENV], os.environ.get("PGPASSWORD"))
        return
    try:
        server = throwaway_server()
        pg = server.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield pg
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        yield pg_server.url_for(name)
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store on each backend (the PostgreSQL run is skipped when no server can be had)."""
    from monitor.store import open_db

    if request.param == "sqlite" and os.environ.get("MONITOR_TEST_STORE", "").lower() == "postgresql":
        pytest.skip("the whole suite runs on PostgreSQL: the sqlite side would be PostgreSQL again")
    target = request.getfixturevalue("pg_url") if request.param == "postgresql" else tmp_path / "test.db"
    db = open_db(target)
    try:
        yield db
    finally:
        db.conn.close()
