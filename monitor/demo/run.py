"""`monitor demo`: start local demo sources, run one full cycle, serve the inbox.

The demo sources are real servers on 127.0.0.1: a review site with
schema.org markup (crawled by the real Scrapy engine) and a Reddit-compatible
API (read by PRAW). Nothing leaves the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.config import load_config
from monitor.db.url import is_postgres_url
from monitor.demo.reddit_content import build_demo_things
from monitor.demo.review_content import SITE_TZ
from monitor.demo.roster import write_roster
from monitor.store.meta import sqlite_file_meta

DEMO_CLIENT_ID_ENV = "MONITOR_DEMO_REDDIT_CLIENT_ID"
DEMO_CLIENT_SECRET_ENV = "MONITOR_DEMO_REDDIT_CLIENT_SECRET"
CONTENT_DATE_KEY = "demo.content_date"  # in the store's meta table: the local day the demo content is dated from

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
# The digest links each complaint to its page in the demo's inbox.
inbox_url = "http://127.0.0.1:{port}"

# The demo city's zone: the digest's "yesterday" and the trends' days are its calendar days.
[schedule]
timezone = "{timezone}"

[trends]
timezone = "{timezone}"

[web]
host = "127.0.0.1"
port = {port}

[shifts]
default_visit_lag = "2h"
incident_min_complaints = 3
incident_window = "3h"
roster = "roster.csv"

[[locations]]
id = "downtown"
name = "Acme Coffee Downtown"
timezone = "{timezone}"
keywords = ["downtown", "main street", "main st", "market street"]
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
timezone = "{timezone}"
keywords = ["airport", "terminal b", "机场"]

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

# The competitor the trends compare us with: its reviews on the same site, under its own brand.
[[sources]]
name = "reviews-bean-street"
type = "schema_org"
every = "1h"
brand = "Bean Street Coffee"
urls = ["{review_url}/reviews?page=1&location=bean-street"]

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


def write_demo_config(
    workdir: Path, review_url: str, reddit_url: str, port: int, model: str = "bundled", today: date | None = None
) -> Path:
    """Write the demo's ``config.toml`` and its ``roster.csv`` (dated around ``today``, local) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_roster(workdir / "roster.csv", today or datetime.now(SITE_TZ).date())
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
            timezone=SITE_TZ.key,
        ),
        encoding="utf-8",
    )
    return path


def start_fresh_if_stale(db_path: Path | str, content_date: date, echo: Callable[[str], None] = print) -> bool:
    """Remove a demo store filled from content dated another day (or by an older demo); True when removed.

    The content is dated relative to its day: a store from another day's run holds the same reviews on
    other dates, and the story (yesterday's incident, the week's flagged shift) would not add up.
    """
    if is_postgres_url(db_path):  # the demo is a local SQLite file; never touch a PostgreSQL store
        return False
    db_path = Path(db_path)
    if not db_path.exists():
        return False
    stored = sqlite_file_meta(db_path, CONTENT_DATE_KEY)
    if stored == content_date.isoformat():
        return False
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    dated = f"content of {stored}" if stored else "an older demo's content"
    echo(f"demo database {db_path} held {dated}: starting a fresh one dated {content_date.isoformat()}")
    return True


def _echo_cycle(report, echo: Callable[[str], None]) -> None:
    for name, result in report.crawl.items():
        echo(f"crawled {name}: {result['new']} new, {result['updated']} updated, {result['errors']} errors")
        for message in result.get("messages", [])[:3]:
            echo(f"    ! {message}")
    by_label = ", ".join(f"{k} {v}" for k, v in sorted(report.classified.by_label.items()))
    echo(f"classified {report.classified.classified} mentions ({by_label or 'none'})")
    assigned = f", {report.queue.assigned} auto-assigned" if report.queue.assigned else ""
    echo(f"queued {report.queue.created} items for reply{assigned}")
    if report.shifts is not None:
        echo(f"incident times estimated for {report.shifts.estimated} mentions; "
             f"{report.shifts.incidents} incidents")  # fmt: skip


def _answer_and_recrawl(config, site, classifier, echo: Callable[[str], None]) -> None:
    """Answer the demo's complaint, let its author edit the review, crawl that source again and process it."""
    from monitor.cycle import crawl_sources, process_new_mentions
    from monitor.demo.story import RECOVERY_SOURCE, REPLY_AS, answer_complaint
    from monitor.store import open_db

    db = open_db(config.storage_path)
    try:
        item_id = answer_complaint(db)
    finally:
        db.close()
    if item_id is None:
        return
    echo(f"{REPLY_AS} answered queue item #{item_id} (as `monitor queue reply {item_id} --text ...` does)")
    site.publish_follow_ups()  # the customer edits the review after the reply
    result = crawl_sources(config, [RECOVERY_SOURCE])[RECOVERY_SOURCE]
    db = open_db(config.storage_path)
    try:
        processed = process_new_mentions(db, config, classifier)
    finally:
        db.close()
    echo(f"crawled {RECOVERY_SOURCE} again: {result['updated']} review edited since the reply; "
         f"{processed.queue.recoveries} recovery recorded")  # fmt: skip


def run_demo(
    workdir: Path,
    inbox_port: int = 8080,
    serve_inbox: bool = True,
    echo: Callable[[str], None] = print,
    model: str = "bundled",
    classifier=None,
    now: datetime | None = None,
) -> dict:
    """Run the demo; returns a summary (used by tests with ``serve_inbox=False``).

    ``now`` is the moment the demo content is dated from (default: now); tests move it, e.g. to just
    after local midnight, to check the story holds at any hour.
    """
    from monitor.classify.stage import classifier_from_config
    from monitor.cycle import default_digest_path, run_cycle
    from monitor.demo.reddit_api import start_reddit_api
    from monitor.demo.review_site import start_review_site
    from monitor.demo.story import answered, describe, story_summary
    from monitor.digest.build import write_digest
    from monitor.store import open_db
    from monitor.store.meta import row_counts, set_meta

    anchor = (now or datetime.now(UTC)).astimezone(SITE_TZ)
    review_server, review_url = start_review_site(port=0, now=anchor)
    reddit_server, reddit_url = start_reddit_api(port=0, content=build_demo_things(anchor.timestamp()))
    site = review_server.site  # type: ignore[attr-defined]
    # Demo-only credentials for the loopback Reddit API; real ones are never touched.
    os.environ.setdefault(DEMO_CLIENT_ID_ENV, "demo-client")
    os.environ.setdefault(DEMO_CLIENT_SECRET_ENV, "demo-secret")
    try:
        config_path = write_demo_config(workdir.resolve(), review_url, reddit_url, inbox_port, model, anchor.date())
        config = load_config(config_path)
        start_fresh_if_stale(config.storage_path, anchor.date(), echo)
        db = open_db(config.storage_path)
        set_meta(db, CONTENT_DATE_KEY, anchor.date().isoformat())
        if answered(db):  # an earlier run answered the review: its author's edit is already on the site
            site.publish_follow_ups()
        db.close()
        echo(f"demo sources: review site {review_url}/reviews · Reddit API {reddit_url}")
        classifier = classifier or classifier_from_config(config)
        report = run_cycle(config, classifier=classifier)
        _echo_cycle(report, echo)
        _answer_and_recrawl(config, site, classifier, echo)

        # Written after the reply, so they count it: yesterday's (what the daily digest covers) and today's so far.
        today = datetime.now(ZoneInfo(config.schedule.timezone)).date()
        db = open_db(config.storage_path)
        digests = {}
        for day in (today - timedelta(days=1), today):
            digests[day] = write_digest(db, default_digest_path(config, day), day, config.digest.brand, config)
            echo(f"digest for {day.isoformat()}: {digests[day]}")
        story = story_summary(db, config)
        describe(story, echo)
        counts = row_counts(db, "mentions", "classifications", "queue_items")
        summary = {
            "config": str(config_path),
            "db": str(config.storage_path),
            "mentions": counts["mentions"],
            "classified": counts["classifications"],
            "queued": counts["queue_items"],
            "digest": str(digests[today - timedelta(days=1)]),
            "digests": {day.isoformat(): str(path) for day, path in digests.items()},
            "crawl": report.crawl,
            "story": story,
        }
        db.close()
        echo(f"database: {config.storage_path} (explore it with: datasette {config.storage_path})")
        if serve_inbox:
            from monitor.web.app import serve

            echo(f"inbox: http://127.0.0.1:{inbox_port}/ - also /shifts, /trends, /metrics  (Ctrl-C stops the demo)")
            serve(config, "127.0.0.1", inbox_port)
        return summary
    finally:
        review_server.shutdown()
        reddit_server.shutdown()
