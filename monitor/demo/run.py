"""`monitor demo`: start local demo sources, run one full cycle, serve the inbox.

The demo sources are real servers on 127.0.0.1: a review site with
schema.org markup (crawled by the real Scrapy engine) and a Reddit-compatible
API (read by PRAW). Nothing leaves the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from monitor.config import load_config

DEMO_CLIENT_ID_ENV = "MONITOR_DEMO_REDDIT_CLIENT_ID"
DEMO_CLIENT_SECRET_ENV = "MONITOR_DEMO_REDDIT_CLIENT_SECRET"

CONFIG_TEMPLATE = """\
# Written by `monitor demo`: the demo's sources are servers on 127.0.0.1.
[storage]
path = "monitor.db"

[model]
default = "{model}"
multilingual = "{multilingual}"

[queue]
contact = "care@acme-coffee.example"
auto_assign = true

[[team]]
name = "dana"
locations = ["downtown"]

[[team]]
name = "sam"

[digest]
output_dir = "digests"
brand = "Acme Coffee"

[web]
host = "127.0.0.1"
port = {port}

[shifts]
default_visit_lag = "2h"
incident_min_complaints = 3
incident_window = "3h"

[[locations]]
id = "downtown"
name = "Acme Coffee Downtown"
timezone = "America/New_York"
keywords = ["downtown", "main street"]
contact = "downtown@acme-coffee.example"

[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"

[[locations.shifts]]
name = "evening"
start = "14:00"
end = "22:00"

[[locations]]
id = "airport"
name = "Acme Coffee Airport"
timezone = "America/New_York"
keywords = ["airport", "terminal 4"]

[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"

[[locations.shifts]]
name = "evening"
start = "14:00"
end = "22:00"

[[locations.shifts]]
name = "overnight"
start = "22:00"
end = "06:00"

[[sources]]
name = "reviews-downtown"
type = "schema_org"
every = "1h"
brand = "Acme Coffee"
location = "downtown"
urls = ["{review_url}/reviews?page=1&location=downtown"]

[[sources]]
name = "reviews-airport"
type = "schema_org"
every = "1h"
brand = "Acme Coffee"
location = "airport"
urls = ["{review_url}/reviews?page=1&location=airport"]

[[sources]]
name = "reddit-acme"
type = "reddit"
every = "15m"
brand = "Acme Coffee"
visit_lag = "30m"
search = ["acme coffee"]
subreddits = ["acmecoffee"]
client_id_env = "{id_env}"
client_secret_env = "{secret_env}"
oauth_url = "{reddit_url}"
reddit_url = "{reddit_url}"
"""


def write_demo_config(workdir: Path, review_url: str, reddit_url: str, port: int, model: str = "bundled") -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.toml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            review_url=review_url.rstrip("/"),
            reddit_url=reddit_url.rstrip("/"),
            port=port,
            model=model,
            multilingual=model,  # "bundled" is both models; a custom directory stands in for both
            id_env=DEMO_CLIENT_ID_ENV,
            secret_env=DEMO_CLIENT_SECRET_ENV,
        ),
        encoding="utf-8",
    )
    return path


def run_demo(
    workdir: Path,
    inbox_port: int = 8080,
    serve_inbox: bool = True,
    echo: Callable[[str], None] = print,
    model: str = "bundled",
    classifier=None,
) -> dict:
    """Run the demo; returns a summary (used by tests with ``serve_inbox=False``)."""
    from monitor.cycle import run_cycle
    from monitor.demo.reddit_api import start_reddit_api
    from monitor.demo.review_site import start_review_site
    from monitor.store import open_db

    review_server, review_url = start_review_site(port=0)
    reddit_server, reddit_url = start_reddit_api(port=0)
    # Demo-only credentials for the loopback Reddit API; real ones are never touched.
    os.environ.setdefault(DEMO_CLIENT_ID_ENV, "demo-client")
    os.environ.setdefault(DEMO_CLIENT_SECRET_ENV, "demo-secret")
    try:
        config_path = write_demo_config(workdir.resolve(), review_url, reddit_url, inbox_port, model)
        config = load_config(config_path)
        echo(f"demo sources: review site {review_url}/reviews · Reddit API {reddit_url}")
        report = run_cycle(config, classifier=classifier)
        for name, result in report.crawl.items():
            echo(f"crawled {name}: {result['new']} new, {result['updated']} updated, {result['errors']} errors")
            for message in result.get("messages", [])[:3]:
                echo(f"    ! {message}")
        by_label = ", ".join(f"{k} {v}" for k, v in sorted(report.classified.by_label.items()))
        echo(f"classified {report.classified.classified} mentions ({by_label or 'none'})")
        assigned = f", {report.queue.assigned} auto-assigned" if report.queue.assigned else ""
        echo(f"queued {report.queue.created} items for reply{assigned}")
        if report.shifts is not None:
            echo(f"incident times estimated for {report.shifts.estimated} mentions; {report.shifts.incidents} incidents")
        echo(f"digest: {report.digest_path}")
        db = open_db(config.storage_path)
        summary = {
            "config": str(config_path),
            "db": str(config.storage_path),
            "mentions": db["mentions"].count,
            "classified": db["classifications"].count,
            "queued": db["queue_items"].count,
            "digest": str(report.digest_path),
            "crawl": report.crawl,
        }
        db.conn.close()
        echo(f"database: {config.storage_path} (explore it with: datasette {config.storage_path})")
        if serve_inbox:
            from monitor.web.app import serve

            echo(f"inbox: http://127.0.0.1:{inbox_port}/  (Ctrl-C stops the demo)")
            serve(config, "127.0.0.1", inbox_port)
        return summary
    finally:
        review_server.shutdown()
        reddit_server.shutdown()
