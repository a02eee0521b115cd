"""An App Store review answered from the inbox in a real browser (headless Chromium, Playwright).

The review arrives by a crawl of the loopback App Store Connect (``tests/test_owner_apple.py``), is
answered with the inbox's "Post to App Store" button, and the next crawl shows Apple's developer response
on the review without a second post. Chromium is Debian's package; without it the test is skipped locally.
"""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from monitor.config import load_config
from monitor.queue.items import refresh_queue
from monitor.store import open_db
from monitor.web.app import create_app
from tests.review_apis import write_config
from tests.test_owner_apple import APP_ID, ISSUER, KEY_ID, apple, crawl, team_key  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI"):
        raise RuntimeError("the inbox end-to-end tests need /usr/bin/chromium (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def test_app_store_review_answered_from_the_inbox_and_seen_on_the_next_crawl(apple, team_key, tmp_path) -> None:  # noqa: F811
    state, base = apple
    path = write_config(tmp_path, [{"name": "ios", "type": "app_store_connect", "app_id": APP_ID,
                                    "base_url": base}])  # fmt: skip
    config = load_config(path)
    assert crawl(path)["new"] == 5
    db = open_db(config.storage_path)
    mention_id = next(db.query("select id from mentions where external_id = 'rev-3'"))["id"]
    db["classifications"].insert({"mention_id": mention_id, "label": "complaint", "score": 0.9,
                                  "probs": '{"complaint": 0.95}', "topics": "[]", "urgency": "[]"})  # fmt: skip
    refresh_queue(db, config.queue)
    item_id = next(db.query("select id from queue_items where mention_id = ?", [mention_id]))["id"]
    db.conn.close()

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(config, users={}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    inbox = f"http://127.0.0.1:{server.server_port}"
    reply = "Sorry about the crash! Version 2.1 fixes it — thanks for telling us."
    pages = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{inbox}/items/{item_id}")
            assert page.locator("#post-reply").inner_text() == "Post to App Store"
            page.fill("#reply-text", reply)
            with page.expect_navigation():
                page.click("#post-reply")
            assert page.locator("#state").inner_text() == "replied"
            assert reply in page.locator("#replies").inner_text()
            pages.append(page.content())

            # The next crawl sees Apple's developer response on the review: ours, not a new reply.
            result = crawl(path)
            assert result["errors"] == 0, result["messages"]
            page.goto(f"{inbox}/items/{item_id}")
            assert page.locator("#replies").inner_text().count(reply) == 1
            pages.append(page.content())
            browser.close()
    finally:
        server.shutdown()

    posts = [h for h in state.hits if h["method"] == "POST"]
    assert len(posts) == 1 and json.loads(posts[0]["body"])["data"]["attributes"]["responseBody"] == reply
    db = open_db(config.storage_path)
    replies = list(db.query("select text, channel, external_id from replies"))
    assert replies == [{"text": reply, "channel": "app_store_connect", "external_id": "resp-1"}]
    raw = json.loads(next(db.query("select raw from mentions where id = ?", [mention_id]))["raw"])
    assert raw["developerResponse"]["body"] == reply and raw["developerResponse"]["id"] == "resp-1"
    key_line = team_key[1].read_text().splitlines()[1]
    dumped = "\n".join(str(tuple(r)) for t in ("mentions", "replies", "queue_events", "crawl_runs")
                       for r in db.execute(f"select * from {t}"))  # fmt: skip
    db.conn.close()
    for secret in (ISSUER, KEY_ID, key_line):
        assert secret not in dumped
        assert all(secret not in html for html in pages)
