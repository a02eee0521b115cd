"""Screenshots of every page and the digest, at desktop and phone width, for a person to look at.

    .venv/bin/python scripts/screenshots.py --config demo/config.toml --out /tmp/shots

Serves the inbox for ``--config`` on a loopback port (no login: loopback only), opens each page in
headless Chromium (the system's ``chromium``) at 1280 and 390 px, and writes full-page PNGs. The store
is used as it is; the digest for ``--date`` (default: yesterday in ``[schedule] timezone``) is written
to the output folder and shot as well. Prints a line per shot, with a warning when a page scrolls
sideways or an image fails to load.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import load_config  # noqa: E402
from monitor.store import open_db  # noqa: E402
from monitor.web.app import create_app  # noqa: E402

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
PAGES = ["/", "/trends", "/shifts", "/sources", "/metrics"]


def first_item(config) -> int | None:
    db = open_db(config.storage_path)
    row = db.execute("select id from queue_items order by priority desc, id limit 1").fetchone()
    return row[0] if row else None


def write_digest(config, day: date, out: Path) -> Path:
    from monitor.digest.build import write_digest

    return write_digest(open_db(config.storage_path), out / f"digest-{day.isoformat()}.html", day, config=config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("demo/config.toml"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"))
    parser.add_argument("--date", type=date.fromisoformat, default=None, help="digest day (default: yesterday)")
    parser.add_argument("--item", type=int, default=None, help="queue item to shoot (default: the first in the queue)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per shot, not per request
    config = load_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    day = args.date or datetime.now(ZoneInfo(config.schedule.timezone)).date() - timedelta(days=1)
    server = make_server("127.0.0.1", 0, create_app(config, users={}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    targets = [(p.strip("/") or "inbox", base + p) for p in PAGES]
    item = args.item if args.item is not None else first_item(config)
    if item is not None:
        targets.append(("item", f"{base}/items/{item}"))
    targets.append(("digest", write_digest(config, day, args.out).resolve().as_uri()))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for name, url in targets:
            for width, (w, h) in WIDTHS.items():
                context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=width == "phone")
                page = context.new_page()
                page.goto(url)
                page.wait_for_load_state("networkidle")
                scroll = page.evaluate("document.documentElement.scrollWidth")
                broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth)).length")
                shot = args.out / f"{name}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                warn = (f"  sideways scroll {scroll} > {w}" if scroll > w else "") + (
                    f"  {broken} broken images" if broken else ""
                )
                print(f"{shot}{warn}")
                context.close()
        browser.close()
    server.shutdown()
    print(f"taken {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {config.storage_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
