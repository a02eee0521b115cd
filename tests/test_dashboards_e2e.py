"""The dashboard pages in a real browser (headless Chromium through Playwright), desktop and 390 px wide.

Like tests/test_inbox_e2e.py: Chromium comes from the system (Debian's ``chromium``, installed by
``.ci/run``); without it these tests are skipped locally and fail in CI. Screenshots of every page at
both widths go to ``$DASHBOARD_SHOTS`` (default /tmp/shots/) for a person to look at.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from monitor.web.app import create_app

from .browser import WIDTHS, require_chromium
from .test_dashboards import build

SHOTS = Path(os.environ.get("DASHBOARD_SHOTS", "/tmp/shots"))
PAGES = {"trends": "/trends", "shifts": "/shifts", "sources": "/sources", "metrics": "/metrics"}

sync_api = require_chromium("dashboard")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from werkzeug.serving import make_server

    config = build(tmp_path_factory.mktemp("dashboards"))
    server = make_server("127.0.0.1", 0, create_app(config, users={}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_page_renders_with_charts_and_no_sideways_scroll(server, browser, name, width):
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=width == "phone")
    page = context.new_page()
    dialogs, failed = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("requestfailed", lambda request: failed.append(request.url))
    response = page.goto(server + PAGES[name])
    page.wait_for_load_state("networkidle")
    assert response.status == 200
    charts = page.evaluate(
        "[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0, i.clientWidth])"
    )
    assert charts, "no chart"
    for src, loaded, shown in charts:
        assert loaded, f"chart did not load: {src}"
        assert 0 < shown <= w, (src, shown)
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= w and inner <= w, f"sideways scroll: {scroll} > {w}"  # a phone zooms out to fit content
    assert page.evaluate("window.__pwned") is None and dialogs == [] and failed == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    context.close()


def test_the_brand_picker_filters_in_the_browser(server, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(server + "/trends")
    page.check('input[name="brand"][value="Acme"]')
    with page.expect_navigation():
        page.click(".dash-picker button[type=submit]")
    assert "brand=Acme" in page.url
    assert "Rival" not in page.locator("#brand-summary").inner_text()
    assert page.evaluate("window.__pwned") is None
    page.close()


def test_incident_mentions_link_to_their_items(server, browser):
    page = browser.new_page()
    page.goto(server + "/shifts")
    link = page.locator("#incidents a").first
    with page.expect_navigation():
        link.click()
    assert "/items/" in page.url and page.locator(".mention-text").count() == 1
    page.close()
