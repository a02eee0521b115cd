"""Faults found by the fault campaign (issue 11) in the store's locking and the inbox.

* every write transaction waits for the lock (``BEGIN IMMEDIATE``) instead of failing "database is locked";
* a reverse proxy in front of a login-less inbox is noticed under real waitress;
* logout ends the session on the server: a copied cookie stops working;
* odd ids and search text give 404 / 200, never a 500;
* the login throttle is safe under threads;
* CSV cells that a spreadsheet could still run as a formula are neutralised.
"""

from __future__ import annotations

import http.client
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from monitor.config import QueueConfig, loads_config
from monitor.queue.export import formula_safe, queue_csv
from monitor.queue.items import add_note, refresh_queue
from monitor.queue.listing import list_items
from monitor.store import open_db, record_mentions, set_source_state
from monitor.web.app import create_app
from monitor.web.auth import LoginThrottle, hash_password

from .helpers import add_classified
from .test_digest_send import free_port

# ------------------------------------------------------------------ locking


def test_a_read_then_write_transaction_waits_for_a_concurrent_writer(tmp_path):
    """sqlite-utils reads table info inside its transaction before writing. With a deferred BEGIN a commit by
    another connection in between made the write fail at once ("database is locked"); now it waits."""
    first = open_db(tmp_path / "lock.db")
    second = open_db(tmp_path / "lock.db", migrate=False)
    reading = threading.Event()
    errors: list[Exception] = []

    def other_writer() -> None:
        reading.wait(5)
        try:
            second["meta"].insert({"key": "other", "value": "1"})  # sqlite-utils' own atomic() write
        except sqlite3.OperationalError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_writer)
    thread.start()
    with first.atomic():
        first.execute("select count(*) from meta").fetchone()  # a read inside the transaction
        reading.set()
        thread.join(0.5)  # the other writer commits here unless it has to wait for us
        first["meta"].insert({"key": "mine", "value": "1"})
    thread.join(30)
    assert errors == []
    keys = {row[0] for row in first.execute("select key from meta")}
    assert {"mine", "other"} <= keys
    first.conn.close()
    second.conn.close()


_WRITER = """
import sys
from monitor.store import open_db, record_mentions, set_source_state
db = open_db(sys.argv[1], migrate=False)
locked = 0
for i in range(int(sys.argv[2])):
    try:
        record_mentions(db, "proc", [{"external_id": f"p{i}", "text": f"from a process {i}"}])
        set_source_state(db, "proc", "cursor", str(i))
        db["queue_notes"].insert({"queue_item_id": 1, "author": "cli", "text": f"note {i}", "at": "x"})
    except Exception as exc:
        locked += "locked" in str(exc)
        print(type(exc).__name__, exc, file=sys.stderr)
print(locked)
"""


@pytest.mark.sqlite_only(reason="SQLite's busy handling and integrity_check")
def test_writers_and_readers_hammering_at_once_never_see_database_is_locked(tmp_path):
    """Threads (each its own connection, as the inbox's waitress threads) and a second process write and read
    the same file at once: every write lands, none fails with "database is locked"."""
    path = tmp_path / "soak.db"
    db = open_db(path)
    add_classified(db, "seed", "0", "seed complaint", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    rounds = 40
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(rounds)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    errors: list[str] = []

    def worker(n: int) -> None:
        conn = open_db(path, migrate=False)
        try:
            for i in range(rounds):
                try:
                    record_mentions(conn, f"t{n}", [{"external_id": str(i % 7), "text": f"edit {i}"},
                                                    {"external_id": f"new{i}", "text": "hello"}])  # fmt: skip
                    add_note(conn, 1, f"note {n}/{i}", author=f"user{n}")
                    set_source_state(conn, f"t{n}", "cursor", str(i))
                    list_items(conn, search="hello")
                except Exception as exc:  # noqa: BLE001 - counted, the assertion shows them
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    out, err = process.communicate(timeout=120)
    assert errors == [] and out.strip() == "0", (errors, err)
    db = open_db(path, migrate=False)
    notes = db.execute("select count(*) from queue_notes").fetchone()[0]
    assert notes == 4 * rounds + rounds  # no lost write
    assert db.execute("select count(*) from mentions where source like 't%'").fetchone()[0] == 4 * (7 + rounds)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    db.conn.close()


# ------------------------------------------------------------------ the inbox

CONFIG = '[storage]\npath = "{db}"\n[[team]]\nname = "dana"\n'


def _seeded_config(tmp_path):
    config = loads_config(CONFIG.format(db=tmp_path / "web.db"), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "Waited 40 minutes", "complaint", rating=1)
    add_classified(db, "reviews", "2", ' =HYPERLINK("http://evil.example") rude', "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    return config


@pytest.fixture
def open_app(tmp_path):
    app = create_app(_seeded_config(tmp_path), users={})
    app.testing = True
    return app


@pytest.fixture
def login_app(tmp_path):
    users = {"dana": hash_password("correct horse"), "sam": hash_password("battery staple")}
    app = create_app(_seeded_config(tmp_path), users=users)
    app.testing = True
    return app


def _token(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _login(client, user: str, password: str):
    token = _token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "user": user, "password": password})


@pytest.mark.parametrize("path", ["/items/9223372036854775808", "/items/18446744073709551616",
                                  "/items/" + "9" * 40])  # fmt: skip
def test_an_item_id_beyond_sqlite_integers_is_not_found(open_app, path):
    client = open_app.test_client()
    assert client.get(path).status_code == 404
    token = _token(client, "/items/1")
    assert client.post(path + "/note", data={"csrf_token": token, "text": "x"}).status_code == 404
    assert client.get("/items/9223372036854775807").status_code == 404  # the largest id: looked up, not there


@pytest.mark.parametrize("query", ["%00", "a%00b", "%00%00%22", "%01%7f", "Waited%00"])
def test_control_characters_in_a_search_are_harmless(open_app, query):
    client = open_app.test_client()
    assert client.get(f"/?q={query}").status_code == 200
    assert client.get(f"/export.csv?q={query}").status_code == 200
    assert client.get(f"/?q={query}&source=%00&assignee=%00").status_code == 200
    if query == "Waited%00":
        assert "Waited 40 minutes" in client.get(f"/?q={query}").get_data(as_text=True)


def test_logout_ends_the_session_on_the_server(login_app):
    client = login_app.test_client()
    assert _login(client, "dana", "correct horse").status_code == 302
    assert client.get("/items/1").status_code == 200
    with client.session_transaction() as stolen:
        cookie = dict(stolen)  # what someone who copied the cookie holds
    other = login_app.test_client()
    _login(other, "sam", "battery staple")

    token = _token(client, "/items/1")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    thief = login_app.test_client()
    with thief.session_transaction() as session:
        session.update(cookie)
    response = thief.get("/items/1")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert thief.post("/items/1/note", data={"csrf_token": cookie["csrf_token"], "text": "x"}).status_code == 401
    assert other.get("/items/1").status_code == 200  # another user's session goes on
    assert _login(client, "dana", "correct horse").status_code == 302  # and dana can log in again
    assert client.get("/items/1").status_code == 200


def test_the_login_throttle_survives_concurrent_threads():
    """Waitress runs requests on threads; without a lock an eviction between two steps raised KeyError."""

    def switching_clock() -> float:
        time.sleep(0)  # hand the GIL over in the middle of an update, where the race was
        return time.monotonic()

    throttle = LoginThrottle(clock=switching_clock)
    throttle.MAX_KEYS = 3
    errors: list[Exception] = []

    def hammer(n: int) -> None:
        try:
            for i in range(400):
                name = f"user{(n + i) % 7}"
                throttle.failed("127.0.0.1", name)
                throttle.blocked("127.0.0.1", name)
                if i % 5 == 0:
                    throttle.succeeded("127.0.0.1", name)
        except Exception as exc:  # noqa: BLE001 - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(throttle.failures) <= throttle.MAX_KEYS


@pytest.fixture(scope="module")
def waitress_inbox(tmp_path_factory):
    """The login-less inbox as ``monitor serve`` runs it: waitress, in its own process."""
    config = _seeded_config(tmp_path_factory.mktemp("serve"))
    config.path.write_text(CONFIG.format(db=config.storage_path))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_USERS"}
    command = [sys.executable, "-m", "monitor.cli", "--config", str(config.path), "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, {}, "/healthz") == 200:
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stderr.read().decode()) from None
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def _get(port: int, headers: dict[str, str], path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}", **headers})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "headers",
    [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"},
     {"X-Forwarded-Host": "inbox.example"}, {"X-Forwarded-Proto": "https"}, {"X-Real-IP": "203.0.113.9"},
     {"Via": "1.1 proxy.example"}, {"X-Forwarded-Port": "443"}],
)  # fmt: skip
def test_a_reverse_proxy_in_front_of_a_login_less_inbox_is_refused_under_waitress(waitress_inbox, headers):
    assert _get(waitress_inbox, {}) == 200  # this machine, directly
    assert _get(waitress_inbox, headers) == 403


# ------------------------------------------------------------------ CSV


@pytest.mark.parametrize("cell", [" =1+1", "\n=cmd", "\u00a0@SUM(A1)", "\uff1dHYPERLINK(1)", " \uff0b1", "\u200b-2",
                                  "\u3000=1", "\t=1", "\ufe66x", "\uff20x", "\r\n+1"])  # fmt: skip
def test_csv_cells_that_still_start_a_formula_are_neutralised(cell):
    assert formula_safe(cell) == "'" + cell
    body = queue_csv([{"text": cell, "id": 1}])
    assert ",'" + cell[:1] in body.replace('"', "")


@pytest.mark.parametrize("cell", ["Waited 40 minutes", "a=b", " plain", "5 stars", "", "'=already"])
def test_ordinary_csv_cells_are_left_alone(cell):
    assert formula_safe(cell) == cell


def test_the_inbox_export_neutralises_a_formula_behind_a_space(open_app):
    body = open_app.test_client().get("/export.csv").get_data(as_text=True)
    assert "' =HYPERLINK" in body and ", =HYPERLINK" not in body
