"""mastodon spider: status mapping, Link-header and max_id paging, tokens; real crawls against tests/social_apis.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scrapy.http import Request, TextResponse

from monitor.config import SourceConfig
from monitor.store import open_db
from spiders.mastodon import MastodonSpider, next_link, status_to_mention
from tests import social_apis
from tests.conftest import dump_store
from tests.social_apis import MASTODON_TOKEN, SocialApis, crawl, crawl_logs, write_config

TOKEN_ENV = "TEST_MASTODON_TOKEN"


def make_spider(**options: Any) -> MastodonSpider:
    options = {
        "base_url": "http://mastodon.test",
        "tags": ["acmecoffee"],
        "search": [],
        "access_token_env": TOKEN_ENV,
        "max_pages": 5,
        "overlap": 20,
        **options,
    }
    source = SourceConfig(name="masto", type="mastodon", brand="Acme", options=options)
    return MastodonSpider(source=source)


def split(output: list[Any]) -> tuple[list[dict[str, Any]], list[Request]]:
    return [o for o in output if isinstance(o, dict)], [o for o in output if isinstance(o, Request)]


def test_status_mapping() -> None:
    status = social_apis.mastodon_status(4, "mastodon.test")
    mention = status_to_mention(status)
    assert mention is not None
    assert mention["external_id"] == "113499999999996000"
    assert mention["url"] == "https://mastodon.example/@taguser4/113499999999996000"
    assert (mention["kind"], mention["parent_id"]) == ("comment", "113499999999995000")
    assert (mention["author"], mention["author_reach"], mention["lang"]) == ("taguser4", 43, "en")
    assert mention["text"] == "Waited 20 min at #acmecoffee today & the latte was cold (4)\nNever again.\nSeriously."
    assert mention["title"] is None
    assert mention["posted_at"] == "2026-11-22T11:32:00+00:00"
    assert mention["raw"] is status
    warned = status_to_mention(social_apis.mastodon_status(7, "mastodon.test"))
    assert warned is not None
    assert (warned["title"], warned["author"], warned["kind"]) == ("coffee rant", "taguser7@other.example", "post")
    assert status_to_mention({**status, "reblog": {"id": "1"}}) is None  # boosts are not new mentions


def test_next_link() -> None:
    header = (
        b'<https://m.test/api/v1/timelines/tag/x?max_id=5>; rel="next", '
        b'<https://m.test/api/v1/timelines/tag/x?min_id=9>; rel="prev"'
    )
    assert next_link(header) == "https://m.test/api/v1/timelines/tag/x?max_id=5"
    assert next_link(b'<https://m.test/x?min_id=9>; rel="prev"') is None
    assert next_link(None) is None


def test_tag_page_follows_link_on_the_same_host_only() -> None:
    spider = make_spider()
    stream = spider.stream("tag:acmecoffee")
    url = spider.tag_url("acmecoffee")
    body = json.dumps([social_apis.mastodon_status(i, "mastodon.test") for i in range(40)]).encode()

    def response(link: str) -> TextResponse:
        return TextResponse(url, body=body, headers={"Link": link}, request=Request(url, meta={"stream": stream.key}))

    mentions, requests = split(list(spider.parse(response(f'<{url}&max_id=42>; rel="next"'))))
    assert len(mentions) == 40 and [r.url for r in requests] == [f"{url}&max_id=42"]
    _, requests = split(list(spider.parse(response('<https://elsewhere.test/x?max_id=1>; rel="next"'))))
    assert requests == []


def test_search_page_pages_with_max_id() -> None:
    spider = make_spider(search=["acme coffee"])
    stream = spider.stream("search:acme coffee")
    url = spider.search_url("acme coffee")
    statuses = [social_apis.mastodon_status(i, "mastodon.test") for i in range(40)]
    body = json.dumps({"accounts": [], "statuses": statuses, "hashtags": []}).encode()
    response = TextResponse(url, body=body, request=Request(url, meta={"stream": stream.key}))
    _, requests = split(list(spider.parse(response)))
    assert [r.url for r in requests] == [spider.search_url("acme coffee", statuses[-1]["id"])]
    assert "type=statuses" in url and "limit=40" in url


def masto_config(tmp_path: Path, server: SocialApis, **options: Any) -> Path:
    base = {"type": "mastodon", "base_url": server.url("/mastodon"), "access_token_env": TOKEN_ENV}
    return write_config(tmp_path, {"masto": {**base, **options}})


def test_without_a_token_tags_are_read_and_search_is_skipped(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = masto_config(tmp_path, server, tags=["acmecoffee", "members", "broken"], search=["acme coffee"])
        result = crawl(path, env={TOKEN_ENV: ""})["masto"]
        assert (result["new"], result["status"]) == (100, "partial")
        base = server.url("/mastodon/api/v1/timelines/tag")
        assert sorted(result["messages"]) == sorted(
            [
                f"sources[0].access_token_env: environment variable {TOKEN_ENV} is not set (source 'masto'); "
                "Mastodon search needs an access token, so 1 search query was skipped",
                f"HTTP 401 from {base}/members?limit=40: This method requires an authenticated user; this instance "
                f"does not show this timeline to anonymous readers; set {TOKEN_ENV} to an access token",
                f"malformed JSON from {base}/broken?limit=40: Unterminated string starting at: line 1 column 25 "
                "(char 24)",
            ]
        )
        tag_pages = [h for h in server.hits() if "/tag/acmecoffee" in h["path"]]
        assert len(tag_pages) == 3 and all(h["authorization"] is None for h in tag_pages)
        assert not [h for h in server.hits() if "/api/v2/search" in h["path"]]


def test_with_a_token_recrawl_stops_at_the_overlap_and_keeps_edits(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = masto_config(tmp_path, server, tags=["acmecoffee"], search=["acme coffee"], overlap=10)
        env = {TOKEN_ENV: MASTODON_TOKEN}
        first = crawl(path, env=env)["masto"]
        assert (first["new"], first["status"], first["messages"]) == (160, "ok", [])
        assert all(h["authorization"] == f"Bearer {MASTODON_TOKEN}" for h in server.hits())
        searches = [h["path"] for h in server.hits() if "/api/v2/search" in h["path"]]
        # 60 results: pages of 40 and 20, then an empty page ends the search (a short page may not be the last).
        assert len(searches) == 3 and all("max_id=" in search for search in searches[1:])

        server.control("/__set?edited=1")
        server.control("/__add?n=2")
        before = len(server.hits())
        second = crawl(path, env=env)["masto"]
        # Page one of each stream: 2 new statuses, the edited one, and known ones up to the overlap.
        assert (second["new"], second["updated"], second["status"]) == (2, 1, "ok")
        assert len(server.hits()) - before == 2  # one page per stream, then the overlap stopped paging
        db = open_db(tmp_path / "monitor.db")
        edited = next(db.query("select id, text, raw from mentions where external_id = '113500000000000000'"))
        assert edited["text"] == "Update: Acme replied and fixed it — thanks!"
        assert json.loads(edited["raw"])["edited_at"] == "2026-11-22T12:01:00.000Z"
        [revision] = db.query("select * from mention_revisions where mention_id = ?", [edited["id"]])
        assert revision["text_before"].startswith("Waited 20 min at #acmecoffee")


def test_the_token_never_reaches_logs_messages_or_the_database(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = masto_config(tmp_path, server, tags=["acmecoffee", "broken"], search=["acme coffee"], max_pages=1)
        logs = crawl_logs(path, "masto", env={TOKEN_ENV: MASTODON_TOKEN})
        assert "malformed JSON" in logs and MASTODON_TOKEN not in logs
        db = open_db(tmp_path / "monitor.db")
        dump = dump_store(db)
        assert "acmecoffee" in dump and MASTODON_TOKEN not in dump


def test_rate_limit_reset_header_is_read_like_mastodon_sends_it() -> None:
    from datetime import UTC, datetime

    from scrapy.http import Headers

    from spiders.middlewares import parse_rate_limit_reset, rate_limit_wait

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_rate_limit_reset(b"2026-11-22T12:00:30.000Z", now) == 30.0
    assert parse_rate_limit_reset("2026-11-22T11:59:00Z", now) == 0.0  # already reset: retry at once
    assert parse_rate_limit_reset(str(int(now.timestamp()) + 45), now) == 45.0  # Unix seconds (GitHub style)
    assert parse_rate_limit_reset("12", now) == 12.0  # a small number is a delay
    assert parse_rate_limit_reset("soon", now) is None and parse_rate_limit_reset(None, now) is None
    # Read against the server's own Date, so a skewed local clock changes nothing; Retry-After wins.
    headers = Headers({"Date": "Sun, 22 Nov 2026 12:00:00 GMT", "X-RateLimit-Reset": "2026-11-22T12:01:00.000Z"})
    assert rate_limit_wait(headers) == (60.0, "X-RateLimit-Reset")
    headers["Retry-After"] = "5"
    assert rate_limit_wait(headers) == (5.0, "Retry-After")
    assert rate_limit_wait(Headers({})) is None


def test_429_with_x_ratelimit_reset_is_waited_out_and_long_waits_are_left_for_later(tmp_path: Path) -> None:
    import time

    with SocialApis() as server:
        path = masto_config(tmp_path, server, tags=["limited"])
        started = time.monotonic()
        result = crawl(path, env={TOKEN_ENV: ""})["masto"]
        assert time.monotonic() - started >= 1.0  # waited until the reset time the instance gave
        assert (result["new"], result["status"], result["messages"]) == (5, "ok", [])
        assert len([h for h in server.hits() if "/tag/limited?" in h["path"]]) == 2  # limited once, then retried

        # A reset an hour away is over MONITOR_MAX_RETRY_AFTER: no hour-long stall, a message for the next crawl.
        path = masto_config(tmp_path, server, tags=["limitedlong"])
        started = time.monotonic()
        result = crawl(path, env={TOKEN_ENV: ""})["masto"]
        assert time.monotonic() - started < 60
        assert result["status"] == "failed"
        [message] = result["messages"]
        assert message.startswith(f"HTTP 429 from {server.url('/mastodon/api/v1/timelines/tag/limitedlong')}")
        assert "Too many requests" in message and "rate limited by the instance" in message
        assert len([h for h in server.hits() if "/tag/limitedlong" in h["path"]]) == 1  # not hammered either


def test_tags_and_queries_carry_the_brand_they_belong_to(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = masto_config(tmp_path, server, tags=["acmecoffee"], search=["acme coffee"], max_pages=1,
                            brands={"Rival Coffee": ["Acme Coffee"]})  # fmt: skip
        result = crawl(path, env={TOKEN_ENV: MASTODON_TOKEN})["masto"]
        assert (result["new"], result["status"]) == (80, "ok")
        db = open_db(tmp_path / "monitor.db")
        rows = db.execute("select author, brand from mentions").fetchall()
        # The mock's search results are written by "searchuser…", the tag timeline's by "taguser…".
        assert {brand for author, brand in rows if author.startswith("tag")} == {"Acme"}
        assert {brand for author, brand in rows if author.startswith("search")} == {"Rival Coffee"}
