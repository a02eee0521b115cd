"""schema_org spider: extraction on saved pages, and real Scrapy crawls against a mock server."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from monitor.config import SourceConfig, load_config
from monitor.crawl import crawl_scrapy_sources
from monitor.demo import review_site
from monitor.demo.review_site import ReviewSite
from monitor.store import open_db
from spiders.pipelines import StorePipeline
from spiders.schema_org import (
    SchemaOrgSpider,
    author_name,
    next_page_url,
    normalise_rating,
    parse_date,
)
from tests import mockserver
from tests.mockserver import MockServer

# extruct's sample pages, copied into the repository (tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema_org"
FAST = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING"}
NULL_LD_BODY = (
    "Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem "
    "aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae dicta sunt explicabo. "
    "Nemo enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugit, sed quia consequuntur magni "
    "dolores eos qui ratione voluptatem sequi nesciunt. Neque porro quisquam est, qui dolorem ipsum quia dolor sit "
    "amet, consectetur, adipisci velit, sed quia non numquam eius modi tempora incidunt ut labore et dolore magnam "
    "aliquam quaerat voluptatem. Ut enim ad minima veniam, quis nostrum exercitationem ullam corporis suscipit "
    "laboriosam, nisi ut aliquid ex ea commodi consequatur? Quis autem vel eum iure reprehenderit qui in ea "
    "voluptate velit esse quam nihil molestiae consequatur, vel illum qui dolorem eum fugiat quo voluptas nulla "
    "pariatur?"
)


def make_spider(**options: Any) -> SchemaOrgSpider:
    options = {"urls": [], "follow_pagination": True, "max_pages": 20, "obey_robots": True, **options}
    source = SourceConfig(name="test-reviews", type="schema_org", brand="Acme", location="downtown", options=options)
    return SchemaOrgSpider(source=source)


def saved_response(url: str, body: bytes) -> HtmlResponse:
    return HtmlResponse(url=url, body=body, encoding="utf-8")


def run_parse(spider: SchemaOrgSpider, response: HtmlResponse) -> tuple[list[dict[str, Any]], list[Request]]:
    output = list(spider.parse(response))
    return [o for o in output if isinstance(o, dict)], [o for o in output if isinstance(o, Request)]


# ------------------------------------------------------------ fixture files


@pytest.mark.parametrize("name", ["LocalBusiness.002.html", "product.html"])
def test_fixture_without_reviews_reports_a_problem(name: str) -> None:
    # Both pages carry schema.org data (a Restaurant, a Product with aggregateRating) but no Review.
    spider = make_spider()
    url = f"http://fixtures.test/{name}"
    mentions, requests = run_parse(spider, saved_response(url, (FIXTURES / name).read_bytes()))
    assert mentions == []
    assert requests == []
    assert spider.problems == [f"no schema.org reviews found on {url}"]


def test_null_ld_fixture_extracts_its_one_review() -> None:
    spider = make_spider()
    url = "http://fixtures.test/null_ld_mock.html"
    response = saved_response(url, (FIXTURES / "null_ld_mock.html").read_bytes())
    mentions, _ = run_parse(spider, response)
    assert spider.problems == []
    assert len(mentions) == 1
    mention = mentions[0]
    assert mention["external_id"].startswith("sha1:")
    assert mention == {
        "external_id": mention["external_id"],
        "url": url,
        "kind": "review",
        "author": None,
        "author_reach": None,
        "title": None,  # "name": "" in the markup
        "text": NULL_LD_BODY,
        "rating": None,
        "lang": None,
        "posted_at": None,
        "experienced_at": None,
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": {"@context": "http://schema.org", "@type": "Review", "name": "", "reviewBody": NULL_LD_BODY},
    }
    # The hashed id is stable across crawls.
    again, _ = run_parse(make_spider(), saved_response(url, (FIXTURES / "null_ld_mock.html").read_bytes()))
    assert again[0]["external_id"] == mention["external_id"]


# ------------------------------------------------------- markup and mapping


def test_json_ld_microdata_and_rdfa_pages() -> None:
    spider = make_spider()
    base = "http://mock.test"
    found = {}
    for page in (1, 2, 3):
        response = saved_response(f"{base}/reviews?page={page}", mockserver.reviews_page(page))
        mentions, requests = run_parse(spider, response)
        found.update({m["external_id"]: m for m in mentions})
        assert [r.url for r in requests] == ([f"{base}/reviews?page={page + 1}"] if page < 3 else [])
    assert spider.problems == []
    summary = {k: (m["author"], m["title"], m["text"], m["rating"], m["posted_at"]) for k, m in found.items()}
    assert summary == {
        f"{base}/reviews/r1": (
            "Dana K.",
            "Waited forever",
            "Waited 25 minutes for a latte and the barista ignored us.",
            2.0,
            "2026-11-20T19:03:00+00:00",
        ),
        f"{base}/reviews/r2": ("Wei", None, "昨晚的咖啡太难喝了，服务员态度很差", 5.0, "2026-11-19T00:00:00+00:00"),
        "http://mock/reviews/r3": (
            "Sam",
            None,
            "Great flat white this morning at 8, friendly staff.",
            4.11,
            "2026-11-18T08:15:00+00:00",
        ),
        "http://mock/reviews/r4": (
            "Lee",
            "Sticky tables",
            "Tables were dirty and nobody cleaned them.",
            1.0,
            "2026-11-17T21:00:00+00:00",
        ),
    }


def test_malformed_page_does_not_crash() -> None:
    spider = make_spider()
    mentions, _ = run_parse(spider, saved_response("http://mock.test/malformed", mockserver.MALFORMED))
    assert mentions == []
    assert spider.problems[0].startswith("invalid JSON-LD block #1 on http://mock.test/malformed")
    assert spider.problems[-1] == "no schema.org reviews found on http://mock.test/malformed"


def test_empty_document_does_not_crash() -> None:
    spider = make_spider()
    mentions, _ = run_parse(spider, saved_response("http://mock.test/blank", b""))
    assert mentions == []
    assert spider.problems


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        ({"ratingValue": "4"}, 4.0),
        ({"ratingValue": 8, "bestRating": 10}, 4.11),
        ({"ratingValue": "10", "bestRating": "10"}, 5.0),
        ({"ratingValue": 1, "bestRating": 10}, 1.0),
        ({"ratingValue": "4,5", "bestRating": "5", "worstRating": "0"}, 4.6),
        ({"ratingValue": 80}, 4.19),  # no bestRating and above 10: a 100-point scale (worst 1)
        (3, 3.0),
        ({"ratingValue": "n/a"}, None),
        ({"ratingValue": 3, "bestRating": 1}, None),
        (None, None),
    ],
)
def test_normalise_rating(rating: Any, expected: float | None) -> None:
    assert normalise_rating(rating) == expected


def test_parse_date_and_author() -> None:
    assert parse_date("2026-11-20T14:03:00+00:00") == "2026-11-20T14:03:00+00:00"
    assert parse_date("2026-11-20T09:03:00-05:00") == "2026-11-20T14:03:00+00:00"
    assert parse_date("2026-11-20") == "2026-11-20T00:00:00+00:00"
    assert parse_date("20 November 2026 2:03pm") == "2026-11-20T14:03:00+00:00"
    assert parse_date("not a date at all") is None
    assert author_name({"@type": "Person", "name": " Ann  Lee "}) == "Ann Lee"
    assert author_name("Bob") == "Bob"
    assert author_name([{"name": "A"}, "B"]) == "A, B"
    assert author_name(None) is None


@pytest.mark.parametrize(
    "markup",
    [
        '<link rel="next" href="/p2">',
        '<a class="x" rel="nofollow next" href="/p2">2</a>',
        '<a href="/p2">Next</a>',
        '<a href="/p2"> next page </a>',
        '<a href="/p2"><span>»</span></a>',
        '<a href="/p2">›</a>',
    ],
)
def test_next_page_links(markup: str) -> None:
    response = saved_response("http://mock.test/p1", f"<html><head></head><body>{markup}</body></html>".encode())
    assert next_page_url(response) == "http://mock.test/p2"


def test_pagination_respects_options() -> None:
    page = saved_response("http://mock.test/reviews?page=1", mockserver.reviews_page(1))
    assert run_parse(make_spider(follow_pagination=False), page)[1] == []
    assert run_parse(make_spider(max_pages=1), page)[1] == []


def test_demo_site_pages_parse_and_escape() -> None:
    site = ReviewSite("http://demo.test", now=datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    hostile = "</script><script>alert(1)</script> & <b>bold</b>"
    site.reviews[0] = {**site.reviews[0], "body": hostile, "author": "<img src=x onerror=alert(1)>"}
    spider = make_spider()
    mentions = []
    for page in (1, 2, 3):
        body = site.reviews_page(page, None)
        assert body is not None
        assert b"<script>alert" not in body and b"<img src=x" not in body
        found, requests = run_parse(spider, saved_response(f"http://demo.test/reviews?page={page}", body))
        mentions += found
        assert len(requests) == (1 if page < 3 else 0)
    assert spider.problems == []
    assert len(mentions) == len({m["external_id"] for m in mentions}) == review_site.LATEST
    first = next(m for m in mentions if m["external_id"].endswith(site.reviews[0]["id"]))
    assert first["author"] == "<img src=x onerror=alert(1)>"  # stored as text, escaped wherever shown
    assert first["text"] == "alert(1) & bold"  # markup inside a review body is reduced to its text
    assert all(1 <= m["rating"] <= 5 and m["posted_at"] for m in mentions)
    assert any("昨晚" in m["text"] for m in mentions)


# ------------------------------------------------------------- the pipeline


def test_pipeline_writes_batches_and_records_errors(tmp_path: Path) -> None:
    db_path = tmp_path / "monitor.db"
    crawler = get_crawler(SchemaOrgSpider, {"MONITOR_DB_PATH": str(db_path), "MONITOR_BATCH_SIZE": 2})
    crawler.spider = make_spider()
    pipeline = StorePipeline.from_crawler(crawler)
    pipeline.open_spider()
    db = open_db(db_path)

    def item(n: int) -> dict[str, Any]:
        return {"external_id": f"id{n}", "kind": "review", "text": f"review {n}", "rating": 3}

    pipeline.process_item(item(1))
    assert db.execute("select count(*) from mentions").fetchone()[0] == 0  # still buffered
    pipeline.process_item(item(2))
    assert pipeline.writer is not None  # a full batch goes to the writer process at once
    deadline = time.monotonic() + 20
    while db.execute("select count(*) from mentions").fetchone()[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.execute("select count(*) from mentions").fetchone()[0] == 2  # stored while the crawl goes on
    with pytest.raises(DropItem):
        pipeline.process_item({"text": "no id"})
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    pipeline.spider_error(failure, saved_response("http://mock.test/x", b""), crawler.spider)
    pipeline.process_item(item(3))
    unstorable: dict[str, Any] = {}
    unstorable["self"] = unstorable  # raw JSON that cannot be written (a bad rating is now just dropped)
    pipeline.process_item({**item(4), "raw": unstorable})  # fails alone; must not cost item 3
    pipeline.close_spider()
    pipeline.spider_closed(crawler.spider, "finished")

    stored = [r[0] for r in db.execute("select external_id from mentions order by external_id").fetchall()]
    assert stored == ["id1", "id2", "id3"]
    run = next(db.query("select * from crawl_runs"))
    assert (run["source"], run["status"], run["new"], run["errors"]) == ("test-reviews", "partial", 3, 2)
    messages = json.loads(run["messages"])
    assert messages[0] == "error while parsing http://mock.test/x: ValueError: boom"
    assert messages[1].startswith("could not store 'id4'")


# ------------------------------------------------------- end-to-end crawls


@pytest.fixture
def server() -> Any:
    with MockServer() as mock:
        yield mock


def hits(server: MockServer) -> list[str]:
    with urllib.request.urlopen(server.url("/__hits"), timeout=5) as response:
        return json.loads(response.read())


def write_config(tmp_path: Path, sources: dict[str, dict[str, Any]]) -> Path:
    lines = ['[storage]\npath = "monitor.db"\n']
    for name, options in sources.items():
        lines.append(f'[[sources]]\nname = "{name}"\ntype = "schema_org"\nbrand = "Acme"')
        lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
        lines.append("")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def crawl(config_path: Path, *names: str) -> dict[str, dict[str, Any]]:
    config = load_config(config_path)
    chosen = [config.source(name) for name in names] if names else config.sources
    return crawl_scrapy_sources(config, chosen, settings=FAST, timeout=60)


def test_crawl_follows_pagination_and_obeys_robots(server: MockServer, tmp_path: Path) -> None:
    path = write_config(tmp_path, {"mock": {"urls": [server.url("/reviews?page=1"), server.url("/private/reviews")]}})
    result = crawl(path)
    assert result["mock"]["new"] == 4
    assert result["mock"]["messages"] == [f"{server.url('/private/reviews')} is disallowed by robots.txt; not fetched"]
    seen = hits(server)
    assert {"/reviews?page=1", "/reviews?page=2", "/reviews?page=3"} <= set(seen)
    assert not [hit for hit in seen if hit.startswith("/private")]
    db = open_db(tmp_path / "monitor.db")
    assert db.execute("select count(*) from mentions where source = 'mock'").fetchone()[0] == 4


def test_max_pages_limits_the_crawl(server: MockServer, tmp_path: Path) -> None:
    path = write_config(tmp_path, {"mock": {"urls": [server.url("/reviews?page=1")], "max_pages": 2}})
    result = crawl(path)
    assert result["mock"] == {"new": 3, "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    assert "/reviews?page=3" not in hits(server)


def test_recrawl_has_no_duplicates_and_keeps_edits(server: MockServer, tmp_path: Path) -> None:
    path = write_config(
        tmp_path, {"mock": {"urls": [server.url("/reviews?page=1"), server.url("/edited")], "max_pages": 1}}
    )
    first = crawl(path)
    assert (first["mock"]["new"], first["mock"]["updated"], first["mock"]["status"]) == (3, 0, "ok")
    urllib.request.urlopen(server.url("/__set?edited=1"), timeout=5).close()
    second = crawl(path)
    assert (second["mock"]["new"], second["mock"]["updated"], second["mock"]["unchanged"]) == (0, 1, 2)

    db = open_db(tmp_path / "monitor.db")
    assert db.execute("select count(*) from mentions").fetchone()[0] == 3
    mention = next(db.query("select id, text, rating from mentions where external_id = 'http://mock/reviews/e1'"))
    assert (mention["text"], mention["rating"]) == ("Update: they refunded me, thanks.", 4.0)
    revisions = list(db.query("select * from mention_revisions where mention_id = ?", [mention["id"]]))
    assert len(revisions) == 1
    assert (revisions[0]["text_before"], revisions[0]["rating_before"]) == ("Charged twice for one sandwich.", 1.0)
    assert (revisions[0]["text_after"], revisions[0]["rating_after"]) == ("Update: they refunded me, thanks.", 4.0)
    runs = list(db.query("select status, new, updated from crawl_runs where source = 'mock' order by id"))
    assert runs == [{"status": "ok", "new": 3, "updated": 0}, {"status": "ok", "new": 0, "updated": 1}]


def test_http_error_and_malformed_page_are_recorded(server: MockServer, tmp_path: Path) -> None:
    urls = [server.url("/error"), server.url("/malformed"), server.url("/reviews?page=1")]
    path = write_config(tmp_path, {"mock": {"urls": urls, "follow_pagination": False}})
    result = crawl(path)["mock"]
    assert result["new"] == 2
    assert result["status"] == "partial"
    assert f"HTTP 500 from {server.url('/error')} (after 2 retries)" in result["messages"]
    assert f"no schema.org reviews found on {server.url('/malformed')}" in result["messages"]
    assert any(m.startswith("invalid JSON-LD block #1") for m in result["messages"])
    assert hits(server).count("/error") == 3  # the first try and RETRY_TIMES = 2 retries

    db = open_db(tmp_path / "monitor.db")
    run = next(db.query("select * from crawl_runs where source = 'mock'"))
    assert (run["status"], run["new"], run["errors"]) == ("partial", 2, len(result["messages"]))
    assert json.loads(run["messages"]) == result["messages"]


def test_two_sources_one_failing(server: MockServer, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/reviews"
    path = write_config(
        tmp_path,
        {"down": {"urls": [dead]}, "ok": {"urls": [server.url("/reviews?page=1")]}},
    )
    result = crawl(path)
    assert result["ok"]["new"] == 4 and result["ok"]["status"] == "ok"
    assert result["down"]["status"] == "failed"
    assert result["down"]["new"] == 0
    assert any(dead in message for message in result["down"]["messages"])
    db = open_db(tmp_path / "monitor.db")
    counts = dict(db.execute("select source, count(*) from mentions group by source").fetchall())
    assert counts == {"ok": 4}


def test_source_that_scrapy_cannot_crawl_is_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path, {})
    path.write_text(path.read_text() + '[[sources]]\nname = "rd"\ntype = "reddit"\nsearch = ["acme"]\n')
    config = load_config(path)
    result = crawl_scrapy_sources(config, config.sources, settings=FAST, timeout=60)
    assert result["rd"]["status"] == "failed"
    assert result["rd"]["messages"] == ["sources[0].type: source 'rd' has type 'reddit', not crawled by Scrapy here"]


def test_dead_crawl_process_gives_each_source_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"a": {"urls": ["http://127.0.0.1:9/x"]}, "b": {"urls": ["http://127.0.0.1:9/y"]}})
    config = load_config(path)
    result = crawl_scrapy_sources(config, config.sources, settings=FAST, timeout=0.01)
    assert set(result) == {"a", "b"}
    for name, entry in result.items():
        assert entry["status"] == "failed" and entry["errors"] == 1
        assert entry["messages"][0].startswith(f"source {name!r}: crawl process did not finish")
    db = open_db(tmp_path / "monitor.db")
    assert [r["status"] for r in db.query("select status from crawl_runs order by id")] == ["failed", "failed"]


def test_429_with_retry_after_is_waited_out_then_retried(tmp_path: Path) -> None:
    # A fresh server: the /limited counter is per server process.
    with MockServer() as fresh:
        path = write_config(
            tmp_path, {"limited": {"urls": [fresh.url("/limited?after=2")], "follow_pagination": False}}
        )
        started = time.monotonic()
        result = crawl(path)
        waited = time.monotonic() - started
        assert result["limited"]["status"] == "ok", result
        assert result["limited"]["new"] > 0
        assert [h for h in hits(fresh) if h.startswith("/limited")] == ["/limited?after=2"] * 2
        assert waited >= 2.0  # the crawl really waited as long as Retry-After asked


def test_retry_after_beyond_the_cap_gives_up_with_a_message(tmp_path: Path) -> None:
    with MockServer() as fresh:
        path = write_config(tmp_path, {"limited": {"urls": [fresh.url("/limited?after=3600")]}})
        result = crawl(path)
        assert result["limited"]["status"] == "failed"
        assert any("429" in message for message in result["limited"]["messages"]), result
        assert [h for h in hits(fresh) if h.startswith("/limited")] == ["/limited?after=3600"]


def test_parse_retry_after() -> None:
    from datetime import UTC, datetime

    from spiders.middlewares import parse_retry_after

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after(b"120") == 120.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(b"soon") is None and parse_retry_after(None) is None
