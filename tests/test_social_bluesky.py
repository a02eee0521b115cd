"""bluesky spider: post mapping and cursor paging; app-password login, anonymous 403 and `since` in real crawls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scrapy.http import Request, TextResponse

from monitor.config import SourceConfig
from monitor.store import get_source_state, open_db
from spiders.bluesky import BlueskySpider, post_to_mention
from tests import social_apis
from tests.conftest import dump_store
from tests.social_apis import BSKY_HANDLE, BSKY_JWT, BSKY_PASSWORD, SocialApis, crawl, crawl_logs, write_config

HANDLE_ENV, PASSWORD_ENV = "TEST_BSKY_HANDLE", "TEST_BSKY_PASSWORD"
LOGIN = {HANDLE_ENV: BSKY_HANDLE, PASSWORD_ENV: BSKY_PASSWORD}


def make_spider(**options: Any) -> BlueskySpider:
    options = {
        "search": ["acme"],
        "base_url": "http://appview.test",
        "auth_url": "http://pds.test",
        "handle_env": HANDLE_ENV,
        "app_password_env": PASSWORD_ENV,
        "max_pages": 5,
        "overlap": 20,
        **options,
    }
    return BlueskySpider(source=SourceConfig(name="sky", type="bluesky", brand="Acme", options=options))


def test_post_mapping() -> None:
    post = social_apis.bsky_post(2)
    mention = post_to_mention(post)
    assert mention is not None
    assert mention["external_id"] == "at://did:plc:user0002abcdefghijklmn/app.bsky.feed.post/3lb0000000002"
    assert mention["url"] == "https://bsky.app/profile/user2.bsky.social/post/3lb0000000002"
    assert (mention["kind"], mention["author"], mention["lang"]) == ("comment", "user2.bsky.social", "en")
    assert mention["parent_id"] == "at://did:plc:brand0000abcdefghijklmn/app.bsky.feed.post/3lparent000002"
    assert mention["text"] == "Acme Coffee got my order wrong again 🙄 (2)"
    assert mention["posted_at"] == "2026-11-22T11:54:00+00:00"
    assert mention["raw"] is post
    other = post_to_mention(social_apis.bsky_post(7))
    assert other is not None and (other["kind"], other["parent_id"], other["lang"]) == ("post", None, "ja")
    assert post_to_mention({"cid": "x"}) is None


def test_cursor_paging_and_hosts() -> None:
    spider = make_spider()
    stream = spider.stream("search:acme")
    anonymous = spider.search_url(stream)
    assert anonymous == "http://appview.test/xrpc/app.bsky.feed.searchPosts?q=acme&limit=100&sort=latest"
    spider.token = "jwt"
    url = spider.search_url(stream)
    assert url.startswith("http://pds.test/xrpc/app.bsky.feed.searchPosts?")  # logged in: through our PDS
    body = json.dumps({"posts": [social_apis.bsky_post(i) for i in range(100)], "cursor": "100"}).encode()
    output = list(spider.parse(TextResponse(url, body=body, request=Request(url, meta={"stream": stream.key}))))
    requests = [o for o in output if isinstance(o, Request)]
    assert len(output) == 101 and [r.url for r in requests] == [spider.search_url(stream, "100")]
    assert requests[0].headers[b"Authorization"] == b"Bearer jwt"
    last = json.dumps({"posts": [social_apis.bsky_post(100)]}).encode()  # no cursor: the end
    assert len(list(spider.parse(TextResponse(url, body=last, request=Request(url, meta={"stream": stream.key}))))) == 1


def sky_config(tmp_path: Path, server: SocialApis, **options: Any) -> Path:
    base = {
        "type": "bluesky",
        "base_url": server.url("/appview"),
        "auth_url": server.url("/pds"),
        "handle_env": HANDLE_ENV,
        "app_password_env": PASSWORD_ENV,
    }
    return write_config(tmp_path, {"sky": {**base, "search": ["acme"], **options}})


def test_anonymous_search_refused_with_a_clear_message(tmp_path: Path) -> None:
    with SocialApis() as server:
        result = crawl(sky_config(tmp_path, server), env={HANDLE_ENV: "", PASSWORD_ENV: ""})["sky"]
        assert result["status"] == "failed"
        assert result["messages"] == [
            f"HTTP 403 from {server.url('/appview/xrpc/app.bsky.feed.searchPosts')}?q=acme&limit=100&sort=latest: "
            "Forbidden: Search is not available to unauthenticated users; Bluesky refused an anonymous search; "
            f"set {HANDLE_ENV} and {PASSWORD_ENV} (an app password) so source 'sky' logs in"
        ]


def test_half_configured_login_is_reported(tmp_path: Path) -> None:
    with SocialApis() as server:
        result = crawl(sky_config(tmp_path, server), env={HANDLE_ENV: BSKY_HANDLE, PASSWORD_ENV: ""})["sky"]
        assert result["messages"][0] == (
            f"sources[0]: environment variable {PASSWORD_ENV} is not set (source 'sky'); Bluesky login needs both "
            "a handle and an app password, so searching anonymously"
        )
        assert len(result["messages"]) == 2 and "HTTP 403" in result["messages"][1]


def test_login_search_paging_and_incremental_since(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = sky_config(tmp_path, server, search=["acme", "malformed"], overlap=5)
        first = crawl(path, env=LOGIN)["sky"]
        assert (first["new"], first["status"]) == (150, "partial")
        assert first["messages"] == [
            f"malformed JSON from {server.url('/pds/xrpc/app.bsky.feed.searchPosts')}?q=malformed&limit=100"
            "&sort=latest: Expecting ',' delimiter: line 1 column 28 (char 27)"
        ]
        hits = server.hits()
        assert hits[0]["method"] == "POST" and hits[0]["path"] == "/pds/xrpc/com.atproto.server.createSession"
        searches = [h for h in hits if "searchPosts?q=acme" in h["path"]]
        assert len(searches) == 2 and "cursor=100" in searches[1]["path"]
        assert all(h["authorization"] == f"Bearer {BSKY_JWT}" for h in searches)
        db = open_db(tmp_path / "monitor.db")
        assert get_source_state(db, "sky", "newest:search:acme") == "2026-11-22T12:00:00+00:00"

        server.control("/__add?n=4")
        second = crawl(path, env=LOGIN)["sky"]
        # since = watermark - 1 h: the 4 new posts and the last hour's 21 known ones, one page.
        assert (second["new"], second["unchanged"]) == (4, 21)
        latest = [h["path"] for h in server.hits() if "searchPosts?q=acme" in h["path"]][2:]
        assert len(latest) == 1 and "since=2026-11-22T11%3A00%3A00.000Z" in latest[0]


def test_wrong_password_and_secrets_stay_out_of_logs(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = sky_config(tmp_path, server)
        wrong = "not-the-app-password-987"
        result = crawl(path, env={HANDLE_ENV: BSKY_HANDLE, PASSWORD_ENV: wrong})["sky"]
        assert result["status"] == "failed"
        [message] = result["messages"]
        assert message.startswith(f"HTTP 401 from {server.url('/pds/xrpc/com.atproto.server.createSession')}")
        assert f"login failed; check {HANDLE_ENV} and {PASSWORD_ENV}" in message and wrong not in message
        assert not [h for h in server.hits() if "searchPosts" in h["path"]]

        logs = crawl_logs(path, "sky", env=LOGIN)
        assert "searchPosts" in logs
        assert BSKY_PASSWORD not in logs and BSKY_JWT not in logs
        dump = dump_store(open_db(tmp_path / "monitor.db"))
        assert "Acme Coffee got my order wrong" in dump
        assert BSKY_PASSWORD not in dump and BSKY_JWT not in dump and wrong not in dump


def test_a_competitor_query_tags_its_posts_with_that_brand(tmp_path: Path) -> None:
    with SocialApis() as server:
        path = sky_config(tmp_path, server, max_pages=1, brands={"Rival Coffee": ["acme"]})
        result = crawl(path, env=LOGIN)["sky"]
        assert (result["new"], result["status"]) == (100, "ok")
        db = open_db(tmp_path / "monitor.db")
        assert db.execute("select distinct brand from mentions").fetchall() == [("Rival Coffee",)]
