"""hackernews spider: mapping and paging on saved Algolia responses, then real crawls against tests/social_apis.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import Request, TextResponse

from monitor.config import SourceConfig
from monitor.store import get_source_state, open_db, record_mentions, set_source_state
from spiders.hackernews import HackerNewsSpider, hit_to_mention
from spiders.registry import spider_class
from tests import social_apis
from tests.social_apis import SocialApis, crawl, write_config


def make_spider(db: Any = None, **options: Any) -> HackerNewsSpider:
    options = {"search": ["acme"], "base_url": "http://hn.test", "max_pages": 5, "overlap": 20, **options}
    source = SourceConfig(name="hn", type="hackernews", brand="Acme", location="downtown", options=options)
    return HackerNewsSpider(source=source, db=db)


def page_response(spider: HackerNewsSpider, hits: list[dict[str, Any]], page: int = 0, nb_pages: int = 3) -> Any:
    stream = spider.stream("search:acme", "query 'acme'")
    url = spider.search_url(stream, page)
    body = json.dumps({"hits": hits, "page": page, "nbPages": nb_pages, "nbHits": 250, "hitsPerPage": 100})
    return TextResponse(url, body=body.encode(), request=Request(url, meta={"stream": stream.key, "page": page}))


def split(output: list[Any]) -> tuple[list[dict[str, Any]], list[Request]]:
    return [o for o in output if isinstance(o, dict)], [o for o in output if isinstance(o, Request)]


# ------------------------------------------------------------------ mapping


def test_story_and_comment_mapping() -> None:
    source = make_spider().source
    story = hit_to_mention(social_apis.hn_hit(0), source)
    assert story == {
        "external_id": "hn:46000000",
        "url": "https://news.ycombinator.com/item?id=46000000",
        "kind": "post",
        "author": "hn_user0",
        "author_reach": None,
        "title": "Ask HN: Is Acme Coffee's app down for you? (0)",
        "text": "The Acme app crashes at checkout & support won't answer.\nAnyone else?",
        "rating": None,
        "lang": None,
        "posted_at": "2026-11-22T12:00:00+00:00",
        "experienced_at": None,
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": social_apis.hn_hit(0),
    }
    comment = hit_to_mention(social_apis.hn_hit(2), source)
    assert comment is not None
    assert (comment["kind"], comment["title"], comment["parent_id"]) == ("comment", None, "hn:45999999")
    assert comment["text"] == (
        'I tried Acme\'s new latte.\nIt was "fine" but the wait was 20 minutes. https://example.com/acme'
    )
    assert comment["posted_at"] == "2026-11-22T11:40:00+00:00"
    # A comment's parent id is the parent's external id, so replies thread onto stored items.
    direct = hit_to_mention(social_apis.hn_hit(1), source)
    assert direct is not None and direct["parent_id"] == story["external_id"]
    assert hit_to_mention({"title": "no id"}, source) is None


def test_registry_knows_the_social_spiders() -> None:
    from spiders.bluesky import BlueskySpider
    from spiders.feed import FeedSpider
    from spiders.mastodon import MastodonSpider

    expected = {
        "hackernews": HackerNewsSpider,
        "mastodon": MastodonSpider,
        "bluesky": BlueskySpider,
        "feed": FeedSpider,
    }
    assert {name: spider_class(name) for name in expected} == expected
    assert all(cls.name == name for name, cls in expected.items())


def test_search_url_adds_numeric_filter_after_a_clean_crawl(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    assert "numericFilters" not in make_spider(db).search_url(make_spider(db).stream("search:acme"), 0)
    set_source_state(db, "hn", "newest:search:acme", "2026-11-22T12:00:00+00:00")
    spider = make_spider(db)
    url = spider.search_url(spider.stream("search:acme"), 2)
    # The watermark minus HN's two-hour edit window, as a Unix time.
    assert "numericFilters=created_at_i%3E1795341600" in url
    assert "tags=%28story%2Ccomment%29" in url and "hitsPerPage=100" in url and "page=2" in url


# ------------------------------------------------------------------- paging


def test_parse_yields_mentions_and_the_next_page() -> None:
    spider = make_spider()
    hits = [social_apis.hn_hit(i) for i in range(100)]
    mentions, requests = split(list(spider.parse(page_response(spider, hits))))
    assert len(mentions) == 100 and spider.problems == []
    assert [r.url for r in requests] == [spider.search_url(spider.stream("search:acme"), 1)]
    # The last page has no successor.
    _, requests = split(list(spider.parse(page_response(spider, hits[:5], page=2))))
    assert requests == []


def test_max_pages_stops_paging() -> None:
    spider = make_spider(max_pages=1)
    _, requests = split(list(spider.parse(page_response(spider, [social_apis.hn_hit(0)]))))
    assert requests == []


def test_overlap_stops_paging_once_enough_known_items_were_read(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    hits = [social_apis.hn_hit(i) for i in range(100)]
    stored = [hit_to_mention(h) for h in hits[30:]]
    record_mentions(db, "hn", [m for m in stored if m])
    set_source_state(db, "hn", "complete:search:acme", "1")
    spider = make_spider(db, overlap=20)
    mentions, requests = split(list(spider.parse(page_response(spider, hits))))
    assert len(mentions) == 100  # known items are re-read (edits), just not paged past
    assert requests == []
    # After a failed crawl the next one reads deep again, whatever is stored.
    set_source_state(db, "hn", "complete:search:acme", "0")
    spider = make_spider(db, overlap=20)
    assert split(list(spider.parse(page_response(spider, hits))))[1] != []


def test_malformed_and_unexpected_payloads_are_reported() -> None:
    spider = make_spider()
    stream = spider.stream("search:acme")
    url = spider.search_url(stream, 0)
    broken = TextResponse(url, body=b'{"hits": [', request=Request(url, meta={"stream": stream.key}))
    assert list(spider.parse(broken)) == []
    assert spider.problems[0].startswith(f"malformed JSON from {url}")
    assert stream.failed
    odd = TextResponse(url, body=b'{"message": "bad"}', request=Request(url, meta={"stream": stream.key}))
    assert list(spider.parse(odd)) == []
    assert spider.problems[1] == f"unexpected response from {url}: no 'hits' list"


# ---------------------------------------------------------- end-to-end crawls


@pytest.fixture(scope="module")
def server() -> Any:
    with SocialApis() as mock:
        yield mock


def hn_config(tmp_path: Path, server: SocialApis, **sources: dict[str, Any]) -> Path:
    base = {"type": "hackernews", "base_url": server.url("/hn")}
    return write_config(tmp_path, {name: {**base, **options} for name, options in sources.items()})


def hn_hits(server: SocialApis, query: str) -> list[str]:
    return [h["path"] for h in server.hits() if h["path"].startswith(f"/hn/api/v1/search_by_date?query={query}&")]


def test_crawl_then_incremental_recrawl_edit_and_new_items(tmp_path: Path) -> None:
    with SocialApis() as server:  # its own server: this test edits and adds items
        path = hn_config(tmp_path, server, hn={"search": ["acme"], "max_pages": 5, "overlap": 5})
        first = crawl(path)["hn"]
        assert (first["new"], first["status"], first["messages"]) == (250, "ok", [])
        assert len(hn_hits(server, "acme")) == 3  # 250 hits, 100 a page
        db = open_db(tmp_path / "monitor.db")
        assert get_source_state(db, "hn", "newest:search:acme") == "2026-11-22T12:00:00+00:00"
        kinds = dict(db.execute("select kind, count(*) from mentions group by kind").fetchall())
        assert kinds == {"post": 84, "comment": 166}

        server.control("/__set?edited=1")
        server.control("/__add?n=3")
        second = crawl(path)["hn"]
        # Only the last two hours before the watermark are asked for: 12 known items and 3 new ones.
        assert (second["new"], second["updated"], second["unchanged"], second["status"]) == (3, 1, 11, "ok")
        recrawl = hn_hits(server, "acme")[3:]
        assert len(recrawl) == 1 and "numericFilters=created_at_i%3E1795341600" in recrawl[0]
        edited = next(db.query("select id, text from mentions where external_id = 'hn:45999999'"))
        assert edited["text"] == "EDIT: Acme refunded me & apologised.\nChanging my mind."
        [revision] = db.query("select * from mention_revisions where mention_id = ?", [edited["id"]])
        assert revision["text_before"].startswith("I tried Acme's new latte.")
        assert db.execute("select count(*) from mentions").fetchone()[0] == 253
        assert get_source_state(db, "hn", "newest:search:acme") == "2026-11-22T12:30:00+00:00"


def test_errors_malformed_and_empty_results_are_messages(server: SocialApis, tmp_path: Path) -> None:
    path = hn_config(
        tmp_path,
        server,
        broken={"search": ["error", "malformed", "nothing"]},
        fine={"search": ["acme"], "max_pages": 1},
    )
    result = crawl(path)
    assert (result["fine"]["new"], result["fine"]["status"]) == (100, "ok")
    broken = result["broken"]
    assert broken["status"] == "failed" and broken["new"] == 0
    base = server.url("/hn/api/v1/search_by_date")
    assert sorted(broken["messages"]) == [
        f"HTTP 500 from {base}?query=error&tags=%28story%2Ccomment%29&hitsPerPage=100&page=0 (after 2 retries): "
        "Internal error",
        f"malformed JSON from {base}?query=malformed&tags=%28story%2Ccomment%29&hitsPerPage=100&page=0: "
        "Expecting ':' delimiter: line 1 column 41 (char 40)",
        f"no results for query 'nothing' at {base}?query=nothing&tags=%28story%2Ccomment%29&hitsPerPage=100&page=0",
    ]
    assert len(hn_hits(server, "error")) == 3  # the first try and RETRY_TIMES = 2 retries
    db = open_db(tmp_path / "monitor.db")
    # A failed query leaves no watermark, so the next crawl reads it from the start.
    assert get_source_state(db, "broken", "newest:search:error") is None
    assert get_source_state(db, "broken", "complete:search:error") == "0"


def test_429_with_retry_after_is_waited_out(server: SocialApis, tmp_path: Path) -> None:
    path = hn_config(tmp_path, server, limited={"search": ["limited"]})
    started = time.monotonic()
    result = crawl(path)["limited"]
    assert (result["status"], result["new"], result["messages"]) == ("ok", 30, [])
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured (spiders/middlewares.py)
    assert len(hn_hits(server, "limited")) == 2


def test_each_query_tags_its_mentions_with_its_brand(server: SocialApis, tmp_path: Path) -> None:
    # One source searching for our brand ("acme") and a competitor ("bench" stands in for it).
    path = hn_config(tmp_path, server, hn={"search": ["acme", "bench"], "max_pages": 1,
                                           "brands": {"Rival Coffee": ["bench"]}})  # fmt: skip
    result = crawl(path)["hn"]
    assert (result["new"], result["status"]) == (200, "ok")
    db = open_db(tmp_path / "monitor.db")
    by_brand = dict(db.execute("select brand, count(*) from mentions group by brand").fetchall())
    assert by_brand == {"Acme": 100, "Rival Coffee": 100}
    rival_ids = {r[0] for r in db.execute("select external_id from mentions where brand = 'Rival Coffee'")}
    assert rival_ids == {f"hn:{30000000 - i}" for i in range(100)}  # exactly the "bench" hits
