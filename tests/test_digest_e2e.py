"""The digest in a real browser (headless Chromium through Playwright), desktop and 390 px wide: the HTML
file and the email's HTML part (its cid: images swapped for their attached parts, as a mail client does).

Like tests/test_dashboards_e2e.py: Chromium comes from the system; without it these tests are skipped
locally and fail in CI. Screenshots go to ``$DASHBOARD_SHOTS`` (default /tmp/shots/) as digest-*.png for
a person to look at.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
from pathlib import Path

import pytest

from monitor.digest.build import gather_digest, save_digest
from monitor.digest.send import build_message

from .browser import WIDTHS, require_chromium
from .test_digest_people import build_store, yesterday

SHOTS = Path(os.environ.get("DASHBOARD_SHOTS", "/tmp/shots"))

sync_api = require_chromium("digest")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """The digest file, and the email's HTML with its images resolved from the attached parts."""
    folder = tmp_path_factory.mktemp("digest")
    config, db = build_store(folder)
    data = gather_digest(db, yesterday(), config.digest.brand, config)
    file = save_digest(data, folder / "digest.html")
    message = email.message_from_bytes(
        build_message(data, "digest@acme.example", ["m@acme.example"]).as_bytes(), policy=email.policy.default
    )
    html = message.get_body(("html",)).get_content()
    for part in message.walk():
        if part.get_content_type() == "image/png":
            uri = "data:image/png;base64," + base64.b64encode(part.get_content()).decode()
            html = html.replace("cid:" + part["Content-ID"].strip().strip("<>"), uri)
    mail = folder / "email.html"
    mail.write_text(html, encoding="utf-8")
    return {"file": file, "email": mail}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["file", "email"])
def test_the_digest_fits_the_screen_with_its_charts(pages, browser, kind, width):
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=width == "phone")
    page = context.new_page()
    dialogs, requests = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(pages[kind].as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate(
        "[...document.images].map(i => [i.src.slice(0, 22), i.complete && i.naturalWidth > 0, i.clientWidth])"
    )
    assert len(images) >= 3
    for src, loaded, shown in images:
        assert src == "data:image/png;base64," and loaded and 0 < shown <= w
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= w, f"sideways scroll: {scroll} > {w}"
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert all(url.startswith(("file://", "data:")) for url in requests)  # works offline: nothing fetched
    assert "<script>window.__pwned" in page.inner_text("body")  # shown as text, not run
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"digest-{kind}-{width}.png"), full_page=True)
    context.close()
