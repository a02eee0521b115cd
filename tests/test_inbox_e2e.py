"""The inbox in a real browser: headless Chromium driven by Playwright.

Chromium comes from the system (Debian's ``chromium`` package, installed by
``.ci/run``), not from Playwright's own download. Without it these tests are
skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.config import loads_config
from monitor.queue.items import refresh_queue
from monitor.store import open_db
from monitor.web.app import create_app

from .browser import require_chromium
from .helpers import add_classified

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = (
    '<script>window.__pwned = 1; alert("x")</script>'
    '<img src=x onerror="window.__pwned = 2; alert(1)">'
    '"><svg onload="window.__pwned = 3">'
)

sync_api = require_chromium("inbox")

CONFIG = """
[storage]
path = "{db}"
[[team]]
name = "dana"
[[team]]
name = "sam"
"""


@pytest.fixture
def inbox(tmp_path):
    """The real app on a loopback port, over a store with three queued items."""
    config = loads_config(CONFIG.format(db=tmp_path / "e2e.db"), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "The barista was rude and the coffee cold", "complaint", rating=2,
                   topics=["staff_attitude"], hours_ago=3)  # fmt: skip
    add_classified(db, "reviews", "2", "Waited 50 minutes for a latte", "complaint", rating=1,
                   topics=["wait_time"], hours_ago=30)  # fmt: skip
    add_classified(db, "reviews", "3", PAYLOAD, "complaint", rating=1, url="javascript:window.__pwned=4")
    db.execute("update mentions set author = ? where id = 3", [PAYLOAD])
    refresh_queue(db, config.queue)
    db.conn.close()
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(config, users={}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", config
    server.shutdown()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def _state(config, item_id):
    db = open_db(config.storage_path, migrate=False)
    try:
        return db.execute("select state from queue_items where id = ?", [item_id]).fetchone()[0]
    finally:
        db.conn.close()


def test_triage_a_complaint_to_replied_with_the_keyboard(inbox, page):
    base, config = inbox
    page.goto(base + "/")
    first = page.locator("#items .item").first.get_attribute("data-id")
    page.keyboard.press("j")
    target = page.locator("#items .item.selected").get_attribute("data-id")
    assert target != first  # j moved the selection down
    page.keyboard.press("k")
    page.keyboard.press("j")

    page.keyboard.press("r")  # open the selected item with the reply box focused
    page.wait_for_url(f"**/items/{target}#r")
    assert page.evaluate("document.activeElement.id") == "reply-text"
    assert page.locator("#reply-text").input_value()  # a suggested reply is there to edit
    page.keyboard.press("Control+a")
    page.keyboard.type("Sorry about this - we've spoken to the team.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")

    assert page.locator("#state").inner_text() == "replied"
    assert "Sorry about this - we've spoken to the team." in page.locator("#replies").inner_text()
    assert _state(config, int(target)) == "replied"

    page.keyboard.press("u")  # back to the inbox: the replied item has left the open list
    page.wait_for_url(base + "/")
    assert target not in page.locator("#items .item").evaluate_all("els => els.map(e => e.dataset.id)")


def test_assign_with_the_keyboard(inbox, page):
    base, config = inbox
    page.goto(base + "/items/1")
    page.keyboard.press("a")
    assert page.evaluate("document.activeElement.id") == "assign-user"
    page.keyboard.press("ArrowDown")  # dana -> sam
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#assignee").inner_text() == "sam"
    assert _state(config, 1) == "assigned"


def test_hostile_mention_text_renders_as_text_and_runs_nothing(inbox, page):
    base, _config = inbox
    for path in ("/", "/items/3", "/?q=pwned", "/metrics"):
        page.goto(base + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
    assert page.dialogs == []
    page.goto(base + "/items/3")
    assert PAYLOAD in page.locator(".mention-text").inner_text()  # shown, as plain text
    assert page.locator("article img, article svg, article script").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    page.goto(base + "/")
    assert page.locator("#items img, #items svg").count() == 0


def test_a_post_without_the_csrf_token_is_refused(inbox, page):
    base, config = inbox
    page.goto(base + "/items/2")
    status = page.evaluate(
        """async () => (await fetch('/items/2/dismiss', {method: 'POST',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'reason=spam'})).status"""
    )
    assert status == 403 and _state(config, 2) == "new"
    forged = page.evaluate(
        """async () => (await fetch('/items/2/dismiss', {method: 'POST',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'},
              body: 'reason=spam&csrf_token=forged'})).status"""
    )
    assert forged == 403 and _state(config, 2) == "new"
    with page.expect_navigation():
        page.click("#dismiss-form button")  # the page's own form carries the token
    assert _state(config, 2) == "dismissed"


def test_phone_width_has_no_horizontal_scroll(inbox, browser):
    base, _config = inbox
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    for path in ("/", "/items/1", "/metrics"):
        page.goto(base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    context.close()


# ---------------------------------------------------------------- off loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(config_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "--config", str(config_path), "serve", "--host", "0.0.0.0",
         "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60  # a cold start on a loaded 2-core machine (and a PostgreSQL store) is slow
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read())
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_login_is_required_when_bound_off_loopback(tmp_path, browser):
    from monitor.web.auth import hash_password

    config_path = tmp_path / "config.toml"
    config_path.write_text(CONFIG.format(db=tmp_path / "e2e.db"))
    config = loads_config(config_path.read_text(), config_path)
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "Waited 50 minutes for a latte", "complaint", rating=1)
    refresh_queue(db, config.queue)
    db.conn.close()
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_USERS", "MONITOR_CONFIG")}

    refused = _serve(config_path, _free_port(), env)
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "web.host" in out and "MONITOR_USERS" in out

    port = _free_port()
    env["MONITOR_USERS"] = f"dana:{hash_password('correct horse battery')}"
    proc = _serve(config_path, port, env)
    base = f"http://127.0.0.1:{port}"  # bound to 0.0.0.0; the test only talks to loopback
    try:
        _wait_up(base + "/healthz", proc)
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/items/1")
        assert "/login" in page.url and page.locator("#login-user").count() == 1
        assert page.request.post(base + "/items/1/dismiss", form={"reason": "x"}).status in (401, 403)

        page.fill("#login-user", "dana")
        page.fill("#login-password", "not the password")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "Unknown user or wrong password." in page.content()

        page.fill("#login-user", "dana")
        page.fill("#login-password", "correct horse battery")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == base + "/items/1"
        assert "Waited 50 minutes" in page.locator(".mention-text").inner_text()
        assert "Log out dana" in page.content()
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
