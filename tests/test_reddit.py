"""The Reddit collector through real PRAW: recorded Reddit traffic, the demo API, and failures."""

from __future__ import annotations

import base64
import json
import logging
import time

import praw
import pytest
import requests

from monitor.config import ConfigError, SourceConfig
from monitor.demo.reddit_api import RedditContent, listing, start_reddit_api
from monitor.demo.reddit_content import build_demo_things
from monitor.store import mention_revisions, open_db
from spiders.reddit import RedditReplyError, collect_reddit, post_reply, run_reddit_source
from tests.reddit_replay import replaying

CLIENT_ID = "cid-7f3a9e1b"
CLIENT_SECRET = "csecret-d41d8cd98f00b204"
PASSWORD = "pw-hunter2-e99a18c4"


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record sleeps instead of sleeping (PRAW's own tests do the same), so retries and rate limits are instant."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDDIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", CLIENT_SECRET)
    for name in ("REDDIT_REFRESH_TOKEN", "REDDIT_USERNAME", "REDDIT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def demo():
    server, base_url = start_reddit_api()
    yield server, base_url
    server.shutdown()
    server.server_close()


def make_source(base_url: str, **options) -> SourceConfig:
    defaults = {
        "search": ["acme coffee"],
        "subreddits": ["acmecoffee"],
        "client_id_env": "REDDIT_CLIENT_ID",
        "client_secret_env": "REDDIT_CLIENT_SECRET",
        "oauth_url": base_url,
        "reddit_url": base_url,
        "limit": 100,
        "comments": True,
    }
    return SourceConfig(
        name="reddit-acme",
        type="reddit",
        brand="Acme",
        location="downtown",
        user_agent="mention-monitor tests",
        options={**defaults, **options},
    )


# ------------------------------------------------------- recorded Reddit traffic


def test_recorded_subreddit_new_maps_every_post():
    with replaying("TestSubredditListings.test_new") as (replay, base_url):
        mentions, errors = collect_reddit(make_source(base_url, search=[], subreddits=["askreddit"], comments=False))
    assert errors == [] and replay.unmatched == []
    assert len(mentions) == 100
    assert {m["kind"] for m in mentions} == {"post"}
    first = mentions[0]
    assert first["external_id"] == "t3_48fbm9"
    assert first["author"] == "RedHeadQc"
    assert first["posted_at"] == "2016-03-01T08:37:38+00:00"
    assert first["url"] == (
        "https://www.reddit.com/r/AskReddit/comments/48fbm9/serious_parents_of_reddit_whats_the_biggest_lie/"
    )
    assert first["title"].startswith("[Serious] Parents of Reddit, what's the biggest lie")
    assert first["text"] == first["title"]  # no selftext: the title is what was said
    assert first["parent_id"] is None and first["rating"] is None and first["author_reach"] is None
    assert (first["brand"], first["location"]) == ("Acme", "downtown")
    # raw is the JSON Reddit sent, with PRAW's objects turned back into names.
    assert first["raw"]["subreddit"] == "AskReddit" and first["raw"]["author"] == "RedHeadQc"
    assert first["raw"]["name"] == "t3_48fbm9" and "comment_limit" not in first["raw"]
    json.dumps(first["raw"])
    self_post = next(m for m in mentions if m["external_id"] == "t3_48fax4")
    assert self_post["author"] == "AuganM" and self_post["text"] == "."


def test_recorded_all_listings_map_posts_and_comments():
    cassettes = ("TestSubredditStreams.test_submissions", "TestSubredditStreams.test_comments")
    with replaying(*cassettes) as (replay, base_url):
        mentions, errors = collect_reddit(make_source(base_url, search=[], subreddits=["all"]))
    assert errors == [] and replay.unmatched == []
    requested = [path for _, path in replay.requests[1:]]
    assert requested == ["/r/all/new?limit=100&raw_json=1", "/r/all/comments/?limit=100&raw_json=1"]
    posts = [m for m in mentions if m["kind"] == "post"]
    comments = [m for m in mentions if m["kind"] == "comment"]
    assert (len(posts), len(comments)) == (100, 100)
    assert len({m["external_id"] for m in mentions}) == 200

    post = next(m for m in posts if m["external_id"] == "t3_5jo13x")
    assert post["author"] == "AngryRobot03"
    assert post["posted_at"] == "2016-12-22T02:17:30+00:00"
    assert post["text"].startswith("Don't lowball me")

    comment = comments[0]
    assert comment["external_id"] == "t1_dbhn11d"
    assert comment["author"] == "Mametaro"
    assert comment["posted_at"] == "2016-12-22T02:17:20+00:00"
    assert comment["parent_id"] == "t3_5jffj1"
    assert comment["title"] is None
    assert comment["text"].startswith("1979 (Showa 54) 10 Yen (bronze) plain edge.")
    # 2016 comment listings carry no permalink; the URL is built from the post id.
    assert comment["url"] == "https://www.reddit.com/r/coins/comments/5jffj1/_/dbhn11d/"
    assert comment["raw"]["replies"] == "" and comment["raw"]["subreddit"] == "coins"
    assert sum(m["parent_id"].startswith("t1_") for m in comments) == 54


def test_recorded_reply_posts_and_returns_the_new_comment(monkeypatch):
    monkeypatch.setenv("REDDIT_USERNAME", "acme_support")
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    with replaying("TestComment.test_reply") as (replay, base_url):
        fullname = post_reply(make_source(base_url), "t1_d1616q2", "Comment reply")
    assert fullname == "t1_d1680wu"
    assert ("POST", "/api/comment/?raw_json=1") in replay.requests and replay.unmatched == []


# ------------------------------------------------------------------ demo API


def _expected_demo_ids() -> set[str]:
    things = build_demo_things()
    posts = {t["data"]["name"] for t in things if t["kind"] == "t3"}  # the search finds every post
    comments = {t["data"]["name"] for t in things if t["kind"] == "t1" and t["data"]["subreddit"] == "acmecoffee"}
    return posts | comments


def test_demo_crawl_stores_once_and_keeps_edits_as_revisions(demo, tmp_path):
    server, base_url = demo
    db = open_db(tmp_path / "monitor.db")
    source = make_source(base_url)

    first = run_reddit_source(db, source)
    expected = _expected_demo_ids()
    assert first == {"new": len(expected), "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    rows = {r["external_id"]: r for r in db.query("select * from mentions")}
    assert set(rows) == expected
    search = next(p for m, path, p in server.requests if path == "/r/all/search")
    assert (search["q"], search["sort"], search["restrict_sr"]) == ("acme coffee", "new", "False")

    zh = next(r for r in rows.values() if r["title"] and "机场店" in r["title"])
    assert "排了四十分钟" in zh["text"] and zh["kind"] == "post"
    deleted = next(r for r in rows.values() if r["text"].startswith("Same sandwich on Saturday"))
    assert deleted["author"] is None and deleted["parent_id"].startswith("t3_")
    assert {(r["source"], r["brand"], r["location"]) for r in rows.values()} == {("reddit-acme", "Acme", "downtown")}

    second = run_reddit_source(db, source)
    assert (second["new"], second["updated"], second["unchanged"]) == (0, 0, len(expected))
    assert db.execute("select count(*) from mentions").fetchone()[0] == len(expected)

    brand_reply = next(r for r in rows.values() if r["author"] == "AcmeCoffeeHQ")
    server.content.edit(brand_reply["external_id"], "Sorry again - the downtown store is fully staffed from Monday.")
    third = run_reddit_source(db, source)
    assert (third["new"], third["updated"], third["unchanged"]) == (0, 1, len(expected) - 1)
    revisions = mention_revisions(db, brand_reply["id"])
    assert len(revisions) == 1
    assert revisions[0]["text_before"].startswith("Sorry about the wait this morning")
    assert revisions[0]["text_after"] == "Sorry again - the downtown store is fully staffed from Monday."
    runs = list(db.query("select status, new, updated from crawl_runs order by id"))
    assert [r["status"] for r in runs] == ["ok", "ok", "ok"] and runs[2]["updated"] == 1


def test_a_competitors_subreddit_tags_its_items_with_that_brand(demo):
    _server, base_url = demo
    from_search, errors = collect_reddit(make_source(base_url, subreddits=[]))
    assert errors == [] and from_search
    found_by_search = {m["external_id"] for m in from_search}
    mentions, errors = collect_reddit(make_source(base_url, brands={"Rival Coffee": ["r/acmecoffee"]}))
    assert errors == []
    brands = {m["external_id"]: m["brand"] for m in mentions}
    # The search runs first, so what it found stays Acme's; the rest came from the subreddit listings.
    assert {brands[i] for i in found_by_search} == {"Acme"}
    assert {b for i, b in brands.items() if i not in found_by_search} == {"Rival Coffee"}


def test_demo_api_speaks_reddits_protocol(demo):
    _server, base_url = demo
    no_basic_auth = requests.post(f"{base_url}/api/v1/access_token", data={"grant_type": "client_credentials"})
    assert no_basic_auth.status_code == 401
    assert requests.get(f"{base_url}/r/acmecoffee/new").status_code == 401
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    token = requests.post(
        f"{base_url}/api/v1/access_token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ).json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600 and token["scope"] == "*"
    auth = {"Authorization": f"bearer {token['access_token']}"}

    page1 = requests.get(f"{base_url}/r/all/new", params={"limit": 4, "raw_json": 1}, headers=auth)
    assert page1.headers["x-ratelimit-used"] == "1"
    assert float(page1.headers["x-ratelimit-remaining"]) == 999.0 and 0 < int(page1.headers["x-ratelimit-reset"]) <= 600
    body = page1.json()
    assert body["kind"] == "Listing" and [c["kind"] for c in body["data"]["children"]] == ["t3"] * 4
    created = [c["data"]["created_utc"] for c in body["data"]["children"]]
    assert created == sorted(created, reverse=True)
    assert body["data"]["after"] == body["data"]["children"][-1]["data"]["name"]
    page2 = requests.get(f"{base_url}/r/all/new", params={"limit": 100, "after": body["data"]["after"]}, headers=auth)
    rest = page2.json()["data"]
    assert len(rest["children"]) == 9 - 4 and rest["after"] is None
    missing = requests.get(f"{base_url}/r/no_such_sub/new", headers=auth, allow_redirects=False)
    assert missing.status_code == 302 and "/subreddits/search" in missing.headers["Location"]


def test_listing_pages_backwards_with_before():
    things = [{"kind": "t3", "data": {"name": f"t3_{i}"}} for i in range(5)]
    page = listing(things, {"before": "t3_3", "limit": "2"})["data"]
    assert [c["data"]["name"] for c in page["children"]] == ["t3_1", "t3_2"]
    assert listing(things, {"after": "t3_unknown"})["data"]["children"] == []


# ------------------------------------------------------------------ failures


def test_failing_listings_are_reported_and_the_others_still_stored(demo, tmp_path, sleeps):
    server, base_url = demo
    server.fail["/r/acmecoffee/new"] = (500, {"message": "Internal Server Error", "error": 500}, {})
    server.fail["/r/acmecoffee/comments"] = (200, '{"kind": "Listing", "data": {"children": [', {})
    db = open_db(tmp_path / "monitor.db")

    result = run_reddit_source(db, make_source(base_url))

    assert result["status"] == "partial" and result["errors"] == 2
    new_error, comments_error = result["messages"]
    assert new_error.startswith("reddit-acme: r/acmecoffee/new failed:") and "HTTP 500" in new_error
    assert comments_error.startswith("reddit-acme: r/acmecoffee/comments failed:") and "malformed" in comments_error
    # The search listing was unaffected: every post it found is stored.
    assert result["new"] == db.execute("select count(*) from mentions").fetchone()[0] == 9
    # prawcore retries a 500 twice (with a sleep) before giving up; malformed JSON is not retried.
    assert sum(path == "/r/acmecoffee/new" for _, path, _ in server.requests) == 3
    assert sum(path == "/r/acmecoffee/comments" for _, path, _ in server.requests) == 1
    assert len(sleeps) >= 2
    run = next(db.query("select * from crawl_runs"))
    assert run["status"] == "partial" and json.loads(run["messages"]) == result["messages"]


def test_a_transient_server_error_is_retried_by_prawcore(demo):
    server, base_url = demo
    server.fail["/r/acmecoffee/new"] = (503, "upstream connect error", {"Content-Type": "text/plain"}, 1)
    mentions, errors = collect_reddit(make_source(base_url))
    assert errors == [] and {m["external_id"] for m in mentions} == _expected_demo_ids()


def test_short_429_is_waited_out_once(demo, sleeps):
    server, base_url = demo
    # prawcore raises TooManyRequests straight away (no retry); the collector honours a short Retry-After.
    too_many = {"message": "Too Many Requests", "error": 429}
    server.fail["/r/acmecoffee/comments"] = (429, too_many, {"Retry-After": "7"}, 1)
    mentions, errors = collect_reddit(make_source(base_url))
    assert errors == []
    assert 7.0 in sleeps
    assert {m["external_id"] for m in mentions} == _expected_demo_ids()


def test_long_429_stops_the_run_and_keeps_what_was_read(demo, sleeps):
    server, base_url = demo
    server.fail["/r/acmecoffee/new"] = (429, {"message": "Too Many Requests", "error": 429}, {"Retry-After": "600"})
    mentions, errors = collect_reddit(make_source(base_url))
    assert errors == [
        "reddit-acme: r/acmecoffee/new failed: rate limited by Reddit (HTTP 429); Reddit asks to wait 600 s",
        "reddit-acme: skipped r/acmecoffee/comments until the next crawl (rate limited)",
    ]
    assert len(mentions) == 9  # the search results read before the 429
    assert not any(path == "/r/acmecoffee/comments" for _, path, _ in server.requests)
    assert sum(path == "/r/acmecoffee/new" for _, path, _ in server.requests) == 1  # no hammering
    assert all(s < 600 for s in sleeps)


def test_missing_secret_names_the_env_var_and_source_but_not_the_secret(demo, tmp_path, monkeypatch, caplog):
    _server, base_url = demo
    monkeypatch.delenv("REDDIT_CLIENT_SECRET")
    caplog.set_level(logging.DEBUG)
    db = open_db(tmp_path / "monitor.db")

    result = run_reddit_source(db, make_source(base_url))

    assert result["status"] == "failed" and result["new"] == 0
    [message] = result["messages"]
    assert "REDDIT_CLIENT_SECRET" in message and "reddit-acme" in message and "sources[0].client_secret_env" in message
    assert CLIENT_ID not in message and CLIENT_ID not in caplog.text


def test_rejected_credentials_give_one_clear_message(demo):
    server, base_url = demo
    server.clients = {CLIENT_ID: "the-real-secret"}
    mentions, errors = collect_reddit(make_source(base_url))
    assert mentions == []
    [message] = errors
    assert message.startswith("reddit-acme: Reddit rejected the app credentials from REDDIT_CLIENT_ID / ")
    assert "REDDIT_CLIENT_SECRET" in message
    assert CLIENT_SECRET not in message and "the-real-secret" not in message


def test_secrets_never_reach_logs_or_messages(demo, caplog, monkeypatch):
    server, base_url = demo
    server.fail["/r/acmecoffee/comments"] = (500, "oops", {})
    server.users = {"acme_support": PASSWORD}
    monkeypatch.setenv("REDDIT_USERNAME", "acme_support")
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    source = make_source(base_url, subreddits=["acmecoffee", "no_such_sub"])

    mentions, errors = collect_reddit(source)
    reply_id = post_reply(source, mentions[0]["external_id"], "Thanks for letting us know - we're on it.")

    assert any("no_such_sub" in e and "does not exist" in e for e in errors)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (CLIENT_ID, CLIENT_SECRET, PASSWORD, basic):
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
    assert reply_id.startswith("t1_")


# ------------------------------------------------------------------- replies


def test_reply_through_the_demo_api(demo, monkeypatch):
    server, base_url = demo
    server.users = {"acme_support": PASSWORD}
    monkeypatch.setenv("REDDIT_USERNAME", "acme_support")
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    question = next(t["data"] for t in build_demo_things() if t["data"].get("title", "").startswith("Does the airport"))

    reply_id = post_reply(make_source(base_url), question["name"], "Yes - the airport store opens at 5:30 every day.")

    stored = server.content.get(reply_id)["data"]
    assert stored["author"] == "acme_support" and stored["parent_id"] == question["name"]
    assert stored["body"] == "Yes - the airport store opens at 5:30 every day."


def test_reply_needs_an_account_and_reports_bad_passwords(demo, monkeypatch):
    server, base_url = demo
    source = make_source(base_url)
    with pytest.raises(ConfigError, match="REDDIT_REFRESH_TOKEN.*REDDIT_USERNAME and REDDIT_PASSWORD"):
        post_reply(source, "t3_abc", "hello")

    server.users = {"acme_support": "something else"}
    monkeypatch.setenv("REDDIT_USERNAME", "acme_support")
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    with pytest.raises(RedditReplyError, match="rejected the account credentials") as info:
        post_reply(source, "t3_abc", "hello")
    assert PASSWORD not in str(info.value)
    with pytest.raises(RedditReplyError, match="expected a post"):
        post_reply(source, "abc", "hello")


def test_reply_with_a_refresh_token(demo, monkeypatch):
    server, base_url = demo
    server.refresh_tokens = {"rt-123": "acme_support"}
    monkeypatch.setenv("REDDIT_REFRESH_TOKEN", "rt-123")
    post = next(t["data"] for t in build_demo_things() if t["kind"] == "t3")
    reply_id = post_reply(make_source(base_url), post["name"], "Sorry about this - DM us please.")
    assert server.content.get(reply_id)["data"]["author"] == "acme_support"


def test_demo_content_is_realistic_and_recent():
    now = time.time()
    things = build_demo_things(now)
    assert 15 <= len(things) <= 25
    names = [t["data"]["name"] for t in things]
    assert len(set(names)) == len(names)
    assert all(now - 7 * 86400 < t["data"]["created_utc"] <= now for t in things)
    texts = [t["data"].get("body") or t["data"].get("selftext", "") for t in things]
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts) >= 2
    content = RedditContent(things)
    assert content.subreddits() == {"acmecoffee", "springfield"}
    assert [t["data"]["title"] for t in content.search('"airport acme" 6am', None, "new", "all")] == [
        "Does the airport Acme open before 6am?"
    ]


def test_praw_reads_the_demo_listing_like_reddit(demo):
    _server, base_url = demo
    reddit = praw.Reddit(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        user_agent="mention-monitor tests",
        oauth_url=base_url,
        reddit_url=base_url,
        check_for_updates=False,
        check_for_async=False,
    )
    # limit above one page: PRAW follows "after" until the listing ends.
    posts = list(reddit.subreddit("acmecoffee+springfield").new(limit=None))
    assert len(posts) == 9 and posts[0].created_utc >= posts[-1].created_utc
    comments = list(reddit.subreddit("springfield").comments(limit=2))
    assert len(comments) == 2 and all(c.link_id.startswith("t3_") for c in comments)
