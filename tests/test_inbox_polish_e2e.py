"""The finished inbox in headless Chromium, desktop and 390 px: counts, relative SLA clocks that keep counting,
bulk dismiss end to end, the author's other mentions, no sideways scroll, and hostile text inert.

Like tests/test_inbox_e2e.py: Chromium comes from the system; without it these tests skip locally and fail in CI.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import loads_config
from monitor.queue.items import mark_replied, refresh_queue
from monitor.store import open_db
from monitor.web.app import create_app

from .browser import WIDTHS, require_chromium
from .helpers import add_classified

PAYLOAD = (
    '<script>window.__pwned = 1; alert("x")</script>'
    '<img src=x onerror="window.__pwned = 2; alert(1)">'
    '"><svg onload="window.__pwned = 3">'
)
HOSTILE_URL = "javascript:window.__pwned=4"

sync_api = require_chromium("inbox")

CONFIG = """
[storage]
path = "{db}"
[[locations]]
id = "downtown"
name = "Acme Coffee Downtown with a rather long name"
timezone = "America/New_York"
[[team]]
name = "dana"
[[team]]
name = "sam"
[[sources]]
name = "reddit-acme"
type = "reddit"
search = ["acme"]
client_id_env = "T_ID"
client_secret_env = "T_SECRET"
[[sources]]
name = "reviews-downtown"
type = "schema_org"
urls = ["http://127.0.0.1:9/reviews"]
location = "downtown"
"""


@pytest.fixture
def inbox(tmp_path):
    """The app on a loopback port: a hostile Reddit author with three posts, and reviews downtown."""
    config = loads_config(CONFIG.format(db=tmp_path / "e2e.db"), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reddit-acme", "t3_1", "Got sick after the sandwich " + PAYLOAD, "complaint", kind="post",
                   topics=["product_quality"], urgency=["safety_health"], hours_ago=30, url=HOSTILE_URL)  # fmt: skip
    add_classified(db, "reddit-acme", "t3_2", "Still waiting for my refund", "complaint", kind="post",
                   topics=["price_billing"], hours_ago=5, url=HOSTILE_URL)  # fmt: skip
    question = {"complaint": 0.1, "neutral": 0.8, "praise": 0.1}
    add_classified(db, "reddit-acme", "t3_3", "Where is the nearest store? " + PAYLOAD, "neutral", kind="post",
                   urgency=["question"], hours_ago=2, probs=question)  # fmt: skip
    for n in range(4):
        add_classified(db, "reviews-downtown", f"r{n}", f"Waited {20 + n} minutes " + "very long words " * 20,
                       "complaint", rating=1 + n % 2, topics=["wait_time", "staff_attitude"],
                       hours_ago=1 + n * 9)  # fmt: skip
    db.execute("update mentions set author = ? where source = 'reddit-acme'", [PAYLOAD])
    refresh_queue(db, config.queue)
    soon = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    db.execute("update queue_items set sla_due_at = ? where id = 7", [soon])
    db.conn.close()
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(config, users={}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", config
    server.shutdown()


def _context(browser, width):
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=width == "phone")
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    return context, page


def _states(config):
    db = open_db(config.storage_path, migrate=False)
    try:
        return dict(db.execute("select id, state from queue_items").fetchall())
    finally:
        db.conn.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_render_without_sideways_scroll_and_hostile_text_runs_nothing(inbox, browser, width):
    base, _config = inbox
    context, page = _context(browser, width)
    for path in ("/", "/?state=replied", "/?sla=overdue&topic=wait_time", "/items/1", "/items/2", "/items/4",
                 "/?q=sandwich"):  # fmt: skip
        page.goto(base + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= WIDTHS[width][0], (path, scroll)
        assert page.locator('a[href^="javascript:"]').count() == 0, path
        assert page.locator("#items img, #items svg, article img, article svg, article script").count() == 0, path
    assert page.dialogs == []
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_counts_clocks_icons_and_locations_on_the_list(inbox, browser, width):
    base, _config = inbox
    context, page = _context(browser, width)
    page.goto(base + "/")
    assert page.locator("#tab-open .count").inner_text() == "7"
    assert page.locator("#tab-replied .count").inner_text() == "0"
    assert page.locator("#sla-due_soon .count").inner_text() == "1"
    overdue = int(page.locator("#sla-overdue .count").inner_text())
    assert overdue == page.locator("#items .item.sla-overdue").count() > 0
    clock = page.locator("#items .item.sla-overdue .sla time").first
    assert clock.inner_text().endswith(" overdue") and " UTC" in clock.get_attribute("title")
    assert page.locator("#items .sr-only", has_text="Reddit").count() == 3  # a name for screen readers
    icon = page.locator("#items .src-icon").first.evaluate("e => getComputedStyle(e).backgroundImage")
    assert icon.startswith("url(") and "/static/icons/" in icon
    assert page.locator("#items .loc").count() == 7  # every card says where (or that it does not know)
    assert page.locator("#items .topic", has_text="Waiting time").count() == 4
    # the filters fold away on a phone and stay open on a desktop
    assert page.locator("#more-filters").evaluate("d => d.open") is (width == "desktop")
    page.click("#sla-overdue")
    assert page.locator("#items .item").count() == overdue
    assert page.locator("#sla-overdue").get_attribute("aria-current") == "true"
    context.close()


def test_sla_clocks_keep_counting_without_a_reload(inbox, browser):
    base, _config = inbox
    context, page = _context(browser, "desktop")
    page.clock.install()
    page.goto(base + "/")
    due_soon = page.locator("#items .item.sla-due_soon .sla time")
    assert due_soon.inner_text().startswith("due in ")
    page.clock.run_for(45 * 60 * 1000)  # 45 minutes later
    card = page.locator('#items .item[data-id="7"]')  # the one due in 20 minutes
    assert "sla-overdue" in card.get_attribute("class")
    assert card.locator(".sla time").inner_text() in ("25 min overdue", "24 min overdue", "26 min overdue")
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_bulk_dismiss_end_to_end(inbox, browser, width):
    base, config = inbox
    context, page = _context(browser, width)
    page.goto(base + "/")
    assert page.locator("#bulk-dismiss").is_disabled() or not page.locator("#bulk-dismiss").is_visible()
    ids = page.locator("#items .item").evaluate_all("els => els.map(e => e.dataset.id)")[:3]
    for item_id in ids:
        page.check(f'#items input.pick[value="{item_id}"]')
    assert page.locator("#picked").inner_text() == "3 items selected"
    assert page.locator("#bulk-dismiss").is_visible() and page.locator("#bulk-dismiss").is_enabled()
    # a colleague answers one of them meanwhile
    db = open_db(config.storage_path, migrate=False)
    mark_replied(db, int(ids[1]), "Answered on the phone")
    db.conn.close()
    with page.expect_navigation():
        page.click("#bulk-dismiss")
    assert "2 dismissed, 1 skipped (already replied)" in page.locator(".flash").inner_text()
    states = _states(config)
    assert [states[int(i)] for i in ids] == ["dismissed", "replied", "dismissed"]
    assert page.locator("#tab-dismissed .count").inner_text() == "2"
    assert page.locator("#tab-open .count").inner_text() == "4"
    # select all, assign: the whole page to sam
    page.check("#pick-all")
    page.select_option("#bulk-form select[name=user]", "sam")
    with page.expect_navigation():
        page.click("#bulk-assign")
    assert "4 assigned to sam" in page.locator(".flash").inner_text()
    context.close()


def test_keyboard_x_ticks_the_selected_item(inbox, browser):
    base, _config = inbox
    context, page = _context(browser, "desktop")
    page.goto(base + "/")
    page.keyboard.press("j")
    page.keyboard.press("x")
    selected = page.locator("#items .item.selected")
    assert selected.locator("input.pick").is_checked()
    assert page.locator("#picked").inner_text() == "1 item selected"
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_item_page_shows_the_authors_other_mentions_as_text(inbox, browser, width):
    base, _config = inbox
    context, page = _context(browser, width)
    page.goto(base + "/items/1")
    others = page.locator("#author-others")
    assert PAYLOAD in others.locator("h2").inner_text()  # the hostile name, shown as text
    links = others.locator("li a")
    assert links.count() == 2
    assert "Where is the nearest store?" in links.nth(0).inner_text()  # newest first
    assert "Still waiting for my refund" in links.nth(1).inner_text()
    assert page.locator("#location").inner_text() == "no location"
    assert page.locator("#char-count").inner_text().endswith("(Reddit's limit)")
    with page.expect_navigation():
        links.nth(1).click()
    assert page.url == base + "/items/2"
    page.fill("#reply-text", "x" * 12)
    assert page.locator("#char-count .used").inner_text() == "12"
    page.goto(base + "/items/4")  # a review answered by hand on the website: counted, without a limit
    page.fill("#reply-text", "Sorry about the wait")
    assert page.locator("#char-count").inner_text().startswith("20 characters")
    assert page.evaluate("window.__pwned") is None and page.dialogs == []
    context.close()
