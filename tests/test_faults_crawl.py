"""Crawl faults (issue 11, items 3, 4, 11, 12): kills mid-crawl, hostile pages, untrustworthy times.

Real crawls run ``spiders.run`` in a child process against a loopback Algolia-like server defined here,
whose pages can be made to hang so a crawl can be killed at a known point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy.http import Request, TextResponse
from twisted.python.failure import Failure

from monitor.config import SourceConfig
from monitor.crawl import close_interrupted_runs
from monitor.store import get_source_state, open_db, record_mentions, set_source_state, start_crawl_run
from spiders.app_store import AppStoreSpider
from spiders.feed import FeedSpider
from spiders.hackernews import HackerNewsSpider
from spiders.schema_org import SchemaOrgSpider
from tests.social_apis import FAST, crawl, write_config

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)


# ------------------------------------------------------------------ a loopback HN search API


def hn_item(n: int, at: datetime) -> dict[str, Any]:
    return {"objectID": str(n), "created_at_i": int(at.timestamp()), "created_at": at.isoformat(),
            "title": f"Acme story {n}", "story_text": f"text {n}", "author": f"u{n}", "_tags": ["story"]}  # fmt: skip


class HnState:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []  # newest first
        self.hang_from_page: int | None = None  # pages >= this block until release is set
        self.release = threading.Event()
        self.raw_pages: dict[int, bytes] = {}  # page -> body sent as is


class HnHandler(BaseHTTPRequestHandler):
    state: HnState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        page = int(query.get("page", "0"))
        hang = self.state.hang_from_page
        if hang is not None and page >= hang:
            self.state.release.wait(60)
        body = self.state.raw_pages.get(page)
        if body is None:
            items = self.state.items
            bound = query.get("numericFilters", "")
            if bound.startswith("created_at_i>"):
                items = [i for i in items if i["created_at_i"] > int(bound.removeprefix("created_at_i>"))]
            pages = (len(items) + 99) // 100
            body = json.dumps({"hits": items[page * 100 : page * 100 + 100], "page": page, "nbPages": pages,
                               "nbHits": len(items), "hitsPerPage": 100}).encode()  # fmt: skip
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the crawl was killed while waiting


@pytest.fixture()
def hn() -> Iterator[tuple[str, HnState]]:
    state = HnState()
    handler = type("Handler", (HnHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def hn_config(tmp_path: Path, url: str) -> Path:
    return write_config(tmp_path, {"hn": {"type": "hackernews", "base_url": url, "search": ["acme"],
                                          "max_pages": 10, "overlap": 5}})  # fmt: skip


def count(db_path: Path) -> int:
    db = open_db(db_path)
    try:
        return db.execute("select count(*) from mentions").fetchone()[0]
    finally:
        db.conn.close()


def kill_crawl_when(config: Path, stored: int, db_path: Path) -> None:
    """Run spiders.run, and kill -9 it once ``stored`` mentions are in the database."""
    settings = {**FAST, "MONITOR_BATCH_SIZE": 50}
    args = [arg for key, value in settings.items() for arg in ("--setting", f"{key}={value}")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "spiders.run", "--config", str(config), *args, "--", "hn"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while count(db_path) < stored:
            assert proc.poll() is None, "the crawl ended before it could be killed"
            assert time.monotonic() < deadline, "the crawl never stored the first page"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # reaped, so its pid is gone


# ------------------------------------------------------------------ item 3 and 12: kill -9 mid-crawl


def test_a_kill_during_an_incremental_crawl_loses_nothing_and_its_run_is_closed(hn, tmp_path: Path) -> None:
    url, state = hn
    db_path = tmp_path / "monitor.db"
    config = hn_config(tmp_path, url)
    # 250 items, 10 minutes apart, ending 60 hours ago: the first crawl stores them all.
    state.items = [hn_item(1000 - i, NOW - timedelta(hours=60, minutes=10 * i)) for i in range(250)]
    assert crawl(config)["hn"]["new"] == 250
    # 300 newer ones; the incremental crawl stores its first page, then hangs on the second and is killed.
    state.items = [hn_item(2000 - i, NOW - timedelta(hours=1, minutes=10 * i)) for i in range(300)] + state.items
    state.hang_from_page = 1
    kill_crawl_when(config, 350, db_path)
    assert count(db_path) == 350
    db = open_db(db_path)
    [killed] = db.query("select * from crawl_runs where status = 'running'")

    state.hang_from_page = None
    state.release.set()
    again = crawl(config)["hn"]
    # Not stopped by the overlap with the 100 the killed crawl stored: the 200 below them are read too.
    assert (again["status"], again["new"]) == ("ok", 200)
    assert crawl(config)["hn"]["new"] == 0
    assert count(db_path) == 550
    assert db.execute("select count(distinct external_id) from mentions").fetchone()[0] == 550
    run = next(db.query("select status, finished_at, messages from crawl_runs where id = ?", [killed["id"]]))
    assert run["status"] == "failed" and run["finished_at"]
    assert "crawl interrupted" in json.loads(run["messages"])[-1]
    assert get_source_state(db, "hn", "complete:search:acme") == "1"


def test_a_stream_is_marked_incomplete_before_its_crawl_fetches_anything(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    set_source_state(db, "hn", "complete:search:acme", "1")
    spider = hn_spider(db)
    stream = spider.stream("search:acme", "query 'acme'")
    assert stream.complete  # this crawl may still stop at the overlap: the last one was clean
    assert get_source_state(db, "hn", "complete:search:acme") == "0"  # but a kill now leaves it incomplete


def test_an_api_listing_is_marked_not_backfilled_before_its_crawl_fetches_anything(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    set_source_state(db, "apps", "backfilled:1/us", "1")
    source = SourceConfig(name="apps", type="app_store", options={"app_ids": ["1"], "base_url": "http://a.test"})
    spider = AppStoreSpider(source=source, db=db)
    spider.page_request("1", "us", 1)
    assert spider.backfilled("1/us")
    assert get_source_state(db, "apps", "backfilled:1/us") == "0"


def test_runs_left_running_by_a_dead_process_are_marked_failed(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ours, gone, old, recent = (start_crawl_run(db, name) for name in ("ours", "gone", "old", "recent"))
    db.execute("update crawl_runs set pid = ? where id = ?", [os.getpid(), ours])
    db.execute("update crawl_runs set pid = ? where id = ?", [dead.pid, gone])
    db.execute("update crawl_runs set started_at = '2020-01-01T00:00:00+00:00' where id = ?", [old])
    db.conn.commit()
    assert close_interrupted_runs(db) == 2
    status = dict(db.execute("select source, status from crawl_runs").fetchall())
    assert status == {"ours": "running", "gone": "failed", "old": "failed", "recent": "running"}
    [messages] = db.execute("select messages from crawl_runs where source = 'gone'").fetchone()
    assert json.loads(messages) == [f"crawl interrupted: process {dead.pid} ended without finishing the run; "
                                    "the next crawl reads deep again"]  # fmt: skip


# ------------------------------------------------------------------ item 4: hostile pages and items


def hn_spider(db: Any = None) -> HackerNewsSpider:
    source = SourceConfig(
        name="hn",
        type="hackernews",
        brand="Acme",
        options={"search": ["acme"], "base_url": "http://hn.test", "max_pages": 5, "overlap": 5},
    )
    return HackerNewsSpider(source=source, db=db)  # fmt: skip


def hn_response(spider: HackerNewsSpider, body: bytes, page: int = 0) -> TextResponse:
    stream = spider.stream("search:acme", "query 'acme'")
    url = spider.search_url(stream, page)
    return TextResponse(url, body=body, request=Request(url, meta={"stream": stream.key, "page": page}))


def page_body(hits: list[Any], page: int = 0) -> bytes:
    return json.dumps({"hits": hits, "page": page, "nbPages": 3, "hitsPerPage": 100}).encode()


def test_one_hostile_hit_costs_only_itself_and_keeps_the_watermark(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    spider = hn_spider(db)
    good = [hn_item(i, NOW - timedelta(minutes=i)) for i in range(37)]
    hostile = [
        {**hn_item(100, NOW), "created_at_i": 10**30, "created_at": None},  # OverflowError
        {**hn_item(101, NOW), "created_at_i": 253402300800 + 86400 * 400},  # year 10001: ValueError
        {**hn_item(102, NOW), "_tags": ["comment"], "comment_text": ["a", "list"]},  # TypeError
        {**hn_item(103, NOW), "title": {"deep": [[[]]]}, "story_text": 7},
    ]
    output = list(spider.parse(hn_response(spider, page_body(good[:20] + hostile + good[20:]))))
    mentions = [o for o in output if isinstance(o, dict)]
    assert {m["external_id"] for m in mentions} >= {f"hn:{i}" for i in range(37)}
    assert "hn:102" not in {m["external_id"] for m in mentions}
    by_id = {m["external_id"]: m for m in mentions}
    assert by_id["hn:100"]["posted_at"] is None  # an impossible time is no time; the item is kept
    assert by_id["hn:101"]["posted_at"] == NOW.isoformat()  # the text form is used instead
    assert any(p.startswith("skipped an item on http://hn.test/") and "TypeError" in p for p in spider.problems)
    spider.closed("finished")
    # An item was lost: no watermark, no completion flag moves past it.
    assert get_source_state(db, "hn", "newest:search:acme") is None
    assert get_source_state(db, "hn", "complete:search:acme") == "0"


def test_deeply_nested_json_fails_the_stream_with_a_message(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    spider = hn_spider(db)
    assert list(spider.parse(hn_response(spider, b'{"hits": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))) == []
    assert spider.problems[-1].endswith(": nested too deep to read")
    spider.closed("finished")
    assert get_source_state(db, "hn", "complete:search:acme") == "0"


def test_an_exception_escaping_a_callback_fails_its_stream(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    set_source_state(db, "hn", "newest:search:acme", (NOW - timedelta(days=1)).isoformat())
    spider = hn_spider(db)
    output = list(spider.parse(hn_response(spider, page_body([hn_item(1, NOW)]))))
    assert len(output) == 2  # the item and the next page
    response = hn_response(spider, page_body([]), page=1)
    spider.callback_failed(Failure(RecursionError("maximum recursion depth exceeded")), response, spider)
    spider.closed("finished")
    assert get_source_state(db, "hn", "newest:search:acme") == (NOW - timedelta(days=1)).isoformat()
    assert get_source_state(db, "hn", "complete:search:acme") == "0"


def test_an_item_the_store_could_not_keep_holds_the_watermark(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    spider = hn_spider(db)
    list(spider.parse(hn_response(spider, page_body([hn_item(1, NOW)]))))
    spider.storage_failed = True  # what the store pipeline sets when a batch item fails
    spider.closed("finished")
    assert get_source_state(db, "hn", "newest:search:acme") is None


def test_an_invalid_utf8_byte_costs_neither_the_page_nor_the_stream(tmp_path: Path) -> None:
    spider = hn_spider(open_db(tmp_path / "m.db"))
    body = page_body([hn_item(1, NOW), hn_item(2, NOW)]).replace(b"Acme story 1", b"Acme \xff story 1")
    mentions = [o for o in spider.parse(hn_response(spider, body)) if isinstance(o, dict)]
    assert [m["title"] for m in mentions] == ["Acme \ufffd story 1", "Acme story 2"]
    assert spider.problems == [] and not spider.streams["search:acme"].failed
    apps = AppStoreSpider(source=SourceConfig(name="a", type="app_store", options={"app_ids": ["1"]}))
    url = "http://a.test/us/rss/customerreviews/page=1/id=1/sortby=mostrecent/json"
    assert apps.load_json(TextResponse(url, body=b'{"feed": {"title": "\xfe"}}')) == {"feed": {"title": "\ufffd"}}


def test_a_future_dated_post_never_becomes_the_watermark(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    spider = hn_spider(db)
    future = {**hn_item(1, NOW), "created_at_i": int(datetime(2999, 1, 1, tzinfo=UTC).timestamp())}
    list(spider.parse(hn_response(spider, page_body([future, hn_item(2, NOW)]))))
    spider.closed("finished")
    assert get_source_state(db, "hn", "newest:search:acme") == NOW.isoformat()


SCHEMA_PAGE = """<html><head><script type="application/ld+json">{"@context": "https://schema.org",
"@type": "LocalBusiness", "name": "Acme", "review": [
 {"@type": "Review", "@id": "r1", "reviewBody": "Great coffee", "datePublished": "2026-11-20"},
 {"@type": "Review", "@id": "r2", "reviewBody": "From the future", "datePublished": "9999-12-31T23:30:00-05:00"},
 {"@type": "Review", "@id": "r3", "reviewBody": "Rude staff", "datePublished": "2026-11-21", "reviewRating": 99},
 {"@type": "Review", "@id": "r4", "reviewBody": "Slow", "datePublished": "2026-11-22"}]}</script></head>
<body></body></html>"""


def test_one_bad_review_costs_only_itself_on_a_schema_org_page(monkeypatch) -> None:
    import spiders.schema_org as schema_org

    real = schema_org.normalise_rating

    def exploding(rating: Any) -> float | None:
        if rating == 99:
            raise RecursionError("maximum recursion depth exceeded")
        return real(rating)

    monkeypatch.setattr(schema_org, "normalise_rating", exploding)
    spider = SchemaOrgSpider(source=SourceConfig(name="site", type="schema_org", options={"urls": ["http://s.test/"]}))
    response = TextResponse("http://s.test/", body=SCHEMA_PAGE.encode(), encoding="utf-8")
    mentions = [m for m in spider.parse(response) if isinstance(m, dict)]
    assert [m["external_id"] for m in mentions] == ["http://s.test/r1", "http://s.test/r2", "http://s.test/r4"]
    assert mentions[1]["posted_at"] is None  # year 9999 west of UTC: no time, the review is kept
    assert spider.problems == ["skipped a review on http://s.test/: RecursionError: maximum recursion depth exceeded"]


# ------------------------------------------------------------------ item 11: time trust, feeds


def test_first_crawl_marks_old_items_backfill_and_later_crawls_do_not(hn, tmp_path: Path) -> None:
    url, state = hn
    config = hn_config(tmp_path, url)
    # 60 items an hour apart: those under 48 h old are news, the 12 older ones history.
    state.items = [hn_item(500 - i, NOW - timedelta(hours=i, minutes=30)) for i in range(60)]
    assert crawl(config)["hn"]["new"] == 60
    db = open_db(tmp_path / "monitor.db")
    flags = dict(db.execute("select external_id, backfill from mentions").fetchall())
    assert sum(flags.values()) == 12 and flags["hn:500"] == 0 and flags["hn:441"] == 1
    # A watermark exists now: a new item is news whatever its age, and stored items keep their flag.
    state.items = [hn_item(600, NOW - timedelta(minutes=5)), hn_item(601, NOW - timedelta(hours=1))] + state.items
    assert crawl(config)["hn"]["new"] == 2
    flags = dict(db.execute("select external_id, backfill from mentions").fetchall())
    assert flags["hn:600"] == 0 and flags["hn:601"] == 0 and sum(flags.values()) == 12


def test_store_pipeline_marks_undated_items_backfill(tmp_path: Path) -> None:
    from spiders.pipelines import StorePipeline

    class Crawler:
        spider = None

    pipeline = StorePipeline(Crawler(), str(tmp_path / "m.db"))
    pipeline.db = open_db(tmp_path / "m.db")
    pipeline.source = "apps"
    pipeline.process_item({"external_id": "a", "text": "no date", "posted_at": None})
    pipeline.process_item({"external_id": "b", "text": "dated", "posted_at": NOW.isoformat()})
    pipeline.flush()
    flags = dict(pipeline.db.execute("select external_id, backfill from mentions").fetchall())
    assert flags == {"a": 1, "b": 0}


@pytest.mark.sqlite_only(reason="SQLite's migration 7 on a version-6 file")
def test_migration_marks_undated_mentions_stored_before_it(tmp_path: Path) -> None:
    import sqlite3

    import sqlite_utils

    from monitor.store import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(sqlite3.connect(path))
    old.execute("create table meta (key text primary key, value text)")
    for migration in MIGRATIONS[:6]:
        migration(old)
    old["meta"].insert({"key": "schema_version", "value": "6"})
    old["mentions"].insert_all([{"source": "s", "external_id": "a", "posted_at": None},
                                {"source": "s", "external_id": "b", "posted_at": NOW.isoformat()}])  # fmt: skip
    old.conn.commit()
    old.conn.close()
    db = open_db(path)
    assert dict(db.execute("select external_id, backfill from mentions").fetchall()) == {"a": 1, "b": 0}
    record_mentions(db, "s", [{"external_id": "c", "posted_at": None, "backfill": True}])
    assert db.execute("select backfill from mentions where external_id = 'c'").fetchone()[0] == 1


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
<title>Acme news</title><id>urn:feed</id><updated>2026-11-22T10:00:00Z</updated>
<author><name>Acme Press Office</name></author>
<entry><id>urn:1</id><title>Un</title><updated>2026-11-22T10:00:00Z</updated>
<content type="html" xml:lang="fr">Le caf\xc3\xa9 &lt;b&gt;Acme&lt;/b&gt;</content></entry>
<entry><id>urn:2</id><title xml:lang="de">Zwei</title><updated>2026-11-22T09:00:00Z</updated>
<author><name>Own Author</name></author><summary xml:lang="es">Hola Acme</summary></entry>
<entry><id>urn:3</id><title>Three</title><updated>2026-11-22T08:00:00Z</updated><summary>Plain</summary></entry>
</feed>"""

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>R</title><language>pt-BR</language>
<managingEditor>ed@example.com (Ed)</managingEditor>
<item><guid>g1</guid><title>A</title><description>Acme desc</description></item></channel></rss>"""


@pytest.mark.parametrize(("body", "expected"), [
    (ATOM, {"urn:1": ("Acme Press Office", "fr"), "urn:2": ("Own Author", "es"), "urn:3": ("Acme Press Office", "en")}),
    (RSS, {"g1": (None, "pt-BR")}),
])  # fmt: skip
def test_feed_entries_take_the_feeds_author_and_their_texts_language(body: bytes, expected: dict) -> None:
    spider = FeedSpider(source=SourceConfig(name="news", type="feed", options={"urls": ["http://f.test/feed"]}))
    url = "http://f.test/feed"
    response = TextResponse(url, body=body, request=Request(url, meta={"feed_url": url}))
    mentions = [m for m in spider.parse(response) if isinstance(m, dict)]
    assert {m["external_id"]: (m["author"], m["lang"]) for m in mentions} == expected


def test_reddit_first_crawl_marks_old_items_and_one_bad_item_costs_only_itself() -> None:
    from spiders.reddit import _read_listing

    class Item:
        def __init__(self, **fields: Any) -> None:
            self.__dict__.update(fields)

    def post(n: int, created: Any) -> Item:
        return Item(id=f"p{n}", name=f"t3_p{n}", title=f"post {n}", selftext="Acme",
                    permalink=f"/r/acme/comments/p{n}/", created_utc=created, author=None)  # fmt: skip

    source = SourceConfig(name="rd", type="reddit", brand="Acme")
    items = [post(1, NOW.timestamp() - 3600), post(2, NOW.timestamp() - 72 * 3600), post(3, 1e30),
             Item(title="no id or name")]  # fmt: skip
    mentions: list[dict[str, Any]] = []
    errors: list[str] = []
    complete = _read_listing(source, "r/acme/new", "Acme", lambda: iter(items), set(), mentions, errors, True, NOW)
    assert not complete and len(errors) == 1 and "rd: r/acme/new: skipped an item" in errors[0]
    assert [(m["external_id"], m.get("backfill", False)) for m in mentions] == [
        ("t3_p1", False), ("t3_p2", True), ("t3_p3", True)]  # fmt: skip
    assert mentions[2]["posted_at"] is None


def test_a_run_on_another_machine_is_judged_by_its_age_not_by_a_pid_that_means_nothing_here(tmp_path: Path) -> None:
    """Workers crawl on several machines: a pid from another host may be free here, and its crawl still running."""
    from monitor.crawl import claim_crawl_run

    db = open_db(tmp_path / "m.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    elsewhere, elsewhere_old, here = (start_crawl_run(db, name) for name in ("elsewhere", "elsewhere-old", "here"))
    for run in (elsewhere, elsewhere_old):
        db.execute("update crawl_runs set pid = ?, host = 'worker-7' where id = ?", [dead.pid, run])
    db.execute("update crawl_runs set started_at = '2020-01-01T00:00:00+00:00' where id = ?", [elsewhere_old])
    claim_crawl_run(db, here)  # records this machine beside the pid
    db.execute("update crawl_runs set pid = ? where id = ?", [dead.pid, here])
    db.conn.commit()
    assert close_interrupted_runs(db) == 2
    status = dict(db.execute("select source, status from crawl_runs").fetchall())
    assert status == {"elsewhere": "running", "elsewhere-old": "failed", "here": "failed"}
