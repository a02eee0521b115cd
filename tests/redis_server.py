"""A throwaway Redis server for the broker tests.

``redis_url`` (session): a ``redis-server`` on a free loopback port, its files in a temporary folder, no
persistence, stopped at the end; each test gets its own database number (flushed first). Without the binary
(``apt-get install -y redis-server``) or the ``redis`` package, the tests that need it are skipped with that reason.
Import into a test module: ``from tests.redis_server import redis_server, redis_url  # noqa: F401``.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_DATABASES = itertools.count(1)
DATABASES = 16  # redis-server's default


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """``redis://127.0.0.1:PORT`` of a server started for this test session."""
    redis = pytest.importorskip("redis", reason="the redis package is not installed (pip install 'dramatiq[redis]')")
    # Debian's binary is /usr/bin/redis-server; /usr/sbin is not on every PATH.
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )
    if binary is None:
        pytest.skip("redis-server not found: apt-get install -y redis-server")
    folder = tempfile.mkdtemp(prefix="monitor-redis-")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "", "--appendonly", "no",
         "--databases", str(DATABASES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.skip(f"redis-server exited with code {proc.returncode} at start")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer within 5 s")
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A fresh, empty database on the session's server, one per test."""
    import redis

    number = next(_DATABASES) % DATABASES
    url = f"{redis_server}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url
