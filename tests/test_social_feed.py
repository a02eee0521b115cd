"""feed spider: RSS 2.0 / Atom entries through feedparser, conditional GET, robots.txt and broken feeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.http import Request, TextResponse

from monitor.config import SourceConfig
from monitor.store import get_source_state, open_db
from spiders.feed import FeedSpider, unwrap_link
from tests import social_apis
from tests.social_apis import SocialApis, crawl, write_config


def make_spider() -> FeedSpider:
    source = SourceConfig(name="news", type="feed", brand="Acme", location="downtown", options={"urls": []})
    return FeedSpider(source=source)


def parse(spider: FeedSpider, url: str, body: bytes, content_type: str = "application/rss+xml") -> list[dict[str, Any]]:
    request = Request(url, meta={"stream": f"feed:{url}", "feed_url": url})
    response = TextResponse(url, body=body, headers={"Content-Type": content_type}, request=request)
    return list(spider.parse(response))


def test_rss_entries() -> None:
    spider = make_spider()
    mentions = parse(spider, "http://news.test/news.rss", social_apis.rss_feed(edited=False, added=0))
    assert spider.problems == [] and len(mentions) == 5
    first = mentions[0]
    assert {k: v for k, v in first.items() if k != "raw"} == {
        "external_id": "news-0",
        "url": "https://news.example/acme-prices-0",
        "kind": "post",
        "author": "Jo Reporter",
        "author_reach": None,
        "title": "Acme Coffee & the price hike (0)",
        "text": "Customers say Acme raised prices again & service slowed.",
        "rating": None,
        "lang": "en-us",
        "posted_at": "2026-11-22T11:00:00+00:00",
        "experienced_at": None,
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
    }
    assert first["raw"]["published"] == "Sun, 22 Nov 2026 11:00:00 GMT"
    assert not [key for key in first["raw"] if key.endswith("_parsed")]  # struct_time is not JSON
    # An item without a guid is identified by its link.
    assert mentions[3]["external_id"] == "https://news.example/acme-prices-3"


def test_google_alerts_atom_links_are_unwrapped() -> None:
    mentions = parse(make_spider(), "http://news.test/alerts.atom", social_apis.ATOM_ALERTS, "application/atom+xml")
    assert [(m["url"], m["title"], m["author"]) for m in mentions] == [
        ("https://local.example/acme-opens", "Acme Coffee opens a downtown store", None),
        ("https://biz.example/acme-staff", "Why Acme baristas are leaving", None),
    ]
    assert mentions[0]["text"] == "The new Acme Coffee store: a 30 minute wait & no milk."
    assert mentions[0]["external_id"] == "tag:google.com,2013:googlealerts/feed:12345678901234567890"
    assert mentions[1]["posted_at"] == "2026-11-21T16:30:00+00:00"
    assert unwrap_link("https://www.google.com/search?q=x") == "https://www.google.com/search?q=x"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (social_apis.BROKEN_RSS, "application/rss+xml", "malformed feed at http://news.test/f: "),
        (social_apis.HTML_PAGE, "text/html", "malformed feed at http://news.test/f: "),
        (b"", "application/rss+xml", "http://news.test/f is not an RSS or Atom feed"),
        (social_apis.EMPTY_RSS, "application/rss+xml", "no results for the feed at http://news.test/f"),
    ],
)
def test_unusable_feeds_are_reported(body: bytes, content_type: str, message: str) -> None:
    spider = make_spider()
    assert parse(spider, "http://news.test/f", body, content_type) == []
    assert len(spider.problems) == 1 and spider.problems[0].startswith(message)


def feed_config(tmp_path: Path, urls: list[str]) -> Path:
    return write_config(tmp_path, {"news": {"type": "feed", "urls": urls}})


def test_conditional_get_304_and_edits(tmp_path: Path) -> None:
    with SocialApis() as server:
        rss = server.url("/feeds/news.rss")
        path = feed_config(tmp_path, [rss, server.url("/feeds/alerts.atom")])
        first = crawl(path)["news"]
        assert (first["new"], first["status"], first["messages"]) == (7, "ok", [])
        db = open_db(tmp_path / "monitor.db")
        etag = get_source_state(db, "news", f"etag:{rss}")
        assert etag and get_source_state(db, "news", f"last_modified:{rss}") == "Sun, 22 Nov 2026 12:00:00 GMT"

        second = crawl(path)["news"]
        # The RSS feed answers 304 (nothing to read); the Atom feed sends no validators and is re-read.
        assert (second["new"], second["updated"], second["unchanged"], second["status"]) == (0, 0, 2, "ok")
        rss_hits = [h for h in server.hits() if h["path"] == "/feeds/news.rss"]
        assert rss_hits[1]["if_none_match"] == etag
        assert rss_hits[1]["if_modified_since"] == "Sun, 22 Nov 2026 12:00:00 GMT"

        server.control("/__set?edited=1")
        third = crawl(path)["news"]
        assert (third["new"], third["updated"], third["unchanged"]) == (0, 1, 6)
        assert get_source_state(db, "news", f"etag:{rss}") != etag
        edited = next(db.query("select id, text from mentions where external_id = 'news-0'"))
        assert edited["text"] == "Correction: Acme says prices are unchanged."
        assert len(list(db.query("select * from mention_revisions where mention_id = ?", [edited["id"]]))) == 1


def test_robots_errors_and_broken_feeds_are_messages(tmp_path: Path) -> None:
    with SocialApis() as server:
        urls = ["/feeds/news.rss", "/private/feed.rss"]
        result = crawl(feed_config(tmp_path, [server.url(u) for u in urls]))["news"]
        assert (result["new"], result["status"]) == (5, "partial")
        assert result["messages"] == [f"{server.url('/private/feed.rss')} is disallowed by robots.txt; not fetched"]
        assert "/private/feed.rss" not in [h["path"] for h in server.hits()]

    with SocialApis() as server:
        urls = ["/feeds/error", "/feeds/broken.rss", "/feeds/empty.rss"]
        (tmp_path / "second").mkdir()
        result = crawl(feed_config(tmp_path / "second", [server.url(u) for u in urls]))["news"]
        assert result["status"] in ("failed", "partial")
        messages = sorted(result["messages"])
        assert messages[0] == f"HTTP 500 from {server.url('/feeds/error')} (after 2 retries)"
        assert messages[1].startswith(f"malformed feed at {server.url('/feeds/broken.rss')}: ")
        assert messages[2] == f"no results for the feed at {server.url('/feeds/empty.rss')}"


def test_robots_applies_to_every_concurrent_request(tmp_path: Path) -> None:
    with SocialApis() as server:
        urls = ["/feeds/news.rss", "/feeds/alerts.atom", "/private/feed.rss"]
        crawl(feed_config(tmp_path, [server.url(u) for u in urls]))
        assert "/private/feed.rss" not in [h["path"] for h in server.hits()]
