"""Google owner APIs end to end: the real spiders (Scrapy, in a child process) and reply channels against
``tests/google_owner_apis.py``, a loopback server speaking Business Profile, Play Developer and OAuth 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import spiders.google_owner
from monitor.config import QueueConfig, load_config
from monitor.queue.items import get_item, refresh_queue
from monitor.queue.listing import item_detail
from monitor.queue.replying import ReplyFailed, delete_reply, edit_reply, post_reply_now
from monitor.store import open_db, set_source_state
from tests import google_owner_apis as g
from tests.google_owner_apis import GoogleOwnerApis
from tests.review_apis import FAST, crawl, write_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def service_key(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A service-account key made on the fly; the mock verifies assertions with its public half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("keys")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    info = {"type": "service_account", "project_id": "acme-play", "private_key_id": "0123456789abcdef0123",
            "private_key": pem, "client_email": g.SA_EMAIL, "client_id": "1234",
            "token_uri": "https://oauth2.googleapis.com/token"}  # fmt: skip
    key_path = folder / "play-key.json"
    key_path.write_text(json.dumps(info))
    public_path = folder / "public.pem"
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return {"path": str(key_path), "public": str(public_path), "pem": pem}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, service_key: dict[str, Any]) -> Iterator[GoogleOwnerApis]:
    # Set before the mock and the crawl children start: both inherit the environment.
    monkeypatch.setenv("GOOGLE_MOCK_PUBLIC_KEY", service_key["public"])
    monkeypatch.setenv("GOOGLE_CLIENT_ID", g.CLIENT_ID)
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", g.CLIENT_SECRET)
    monkeypatch.setenv("GOOGLE_REFRESH_TOKEN", g.REFRESH_TOKEN)
    monkeypatch.setenv("GOOGLE_PLAY_KEY_FILE", service_key["path"])
    monkeypatch.setattr(spiders.google_owner, "sleep", lambda seconds: None)
    with GoogleOwnerApis() as mock:
        yield mock


def gbp_source(server: GoogleOwnerApis, **extra: Any) -> dict[str, Any]:
    return {"name": "gbp", "type": "google_business", "account": g.ACCOUNT, "location_ids": [g.LOCATION],
            "base_url": server.base_url, "token_url": server.url("/token"), **extra}  # fmt: skip


def play_source(server: GoogleOwnerApis, **extra: Any) -> dict[str, Any]:
    return {"name": "play", "type": "google_play", "package_names": [g.PACKAGE], "max_results": 5,
            "base_url": server.base_url, "token_url": server.url("/token"), **extra}  # fmt: skip


def api_hits(server: GoogleOwnerApis, fragment: str) -> list[dict[str, Any]]:
    return [hit for hit in server.hits() if fragment in hit["path"]]


def queue_low_ratings(db: Any) -> None:
    """Classify stored reviews by their stars (≤ 2: complaint), bypassing the model, and build the queue."""
    for row in db.query("select id, rating from mentions where id not in (select mention_id from classifications)"):
        label = "complaint" if (row["rating"] or 5) <= 2 else "praise"
        probs = {"complaint": 0.9, "neutral": 0.05, "praise": 0.05} if label == "complaint" else {"praise": 0.9}
        db["classifications"].insert({"mention_id": row["id"], "label": label, "score": 0.9, "probs": json.dumps(probs),
                                      "topics": "[]", "urgency": "[]", "lang": "en", "model": "test",
                                      "classified_at": datetime.now(UTC).isoformat()})  # fmt: skip
    refresh_queue(db, QueueConfig())


def item_for(db: Any, source: str, external_id: str) -> int:
    return db.execute("select q.id from queue_items q join mentions m on m.id = q.mention_id "
                      "where m.source = ? and m.external_id = ?", [source, external_id]).fetchone()[0]  # fmt: skip


# ------------------------------------------------------------ Business Profile: crawling


def test_business_profile_reads_every_review_with_paging_token_and_owner_replies(server, tmp_path):
    path = write_config(tmp_path, [gbp_source(server)])
    result = crawl(path)["gbp"]
    assert (result["new"], result["status"], result["messages"]) == (g.GBP_REVIEWS, "ok", [])
    hits = api_hits(server, "/reviews")
    # All 60 reviews (not 5) in pages of 50, newest update first, the second page by nextPageToken.
    assert [h["path"].split("?")[1] for h in hits] == [
        "pageSize=50&orderBy=updateTime+desc",
        "pageSize=50&orderBy=updateTime+desc&pageToken=50",
    ]
    assert all(h["path"].startswith(f"/v4/accounts/{g.ACCOUNT}/locations/{g.LOCATION}/reviews") for h in hits)
    assert {h["authorization"] for h in hits} == {"Bearer ya29.mock-1"}
    assert server.state()["token_requests"] == [{"grant_type": "refresh_token"}]
    db = open_db(tmp_path / "monitor.db")
    rows = {r["external_id"]: r for r in db.query("select * from mentions where source = 'gbp'")}
    assert rows["gbp-0"]["rating"] == 1.0 and rows["gbp-4"]["rating"] == 5.0  # ONE..FIVE on 1-5
    assert rows["gbp-0"]["author"] == "Reviewer 0" and rows["gbp-0"]["text"].startswith("Review 0: waited")
    assert json.loads(rows["gbp-7"]["raw"])["reviewReply"]["comment"] == "Thanks for coming by!"


def test_business_profile_is_incremental_by_update_time_and_keeps_rating_edits(server, tmp_path):
    path = write_config(tmp_path, [gbp_source(server)])
    crawl(path)
    db = open_db(tmp_path / "monitor.db")
    server.control("/__edit?review=gbp-10&stars=FIVE&comment=Manager+called+me%2C+all+sorted")
    second = crawl(path)["gbp"]
    assert (second["new"], second["updated"], second["status"]) == (0, 1, "ok")
    pages = [h["path"] for h in api_hits(server, "/reviews")][2:]
    assert len(pages) == 1 and "pageToken" not in pages[0]  # stopped at the last crawl's newest review
    [revision] = db.query("select r.* from mention_revisions r join mentions m on m.id = r.mention_id "
                          "where m.external_id = 'gbp-10'")  # fmt: skip
    assert (revision["rating_before"], revision["rating_after"]) == (1.0, 5.0)
    assert revision["text_after"] == "Manager called me, all sorted"


def test_business_profile_refreshes_an_expired_token_once(server, tmp_path):
    path = write_config(tmp_path, [gbp_source(server)])
    crawl(path)
    server.control("/__expire")
    result = crawl(path)["gbp"]
    assert (result["status"], result["messages"]) == ("ok", [])
    auths = [h["authorization"] for h in api_hits(server, "/reviews")][2:]
    assert auths == ["Bearer ya29.mock-2", "Bearer ya29.mock-3"]  # 401, then the same page with a new token


def test_business_profile_429_is_waited_out_and_5xx_and_bad_credentials_are_reported(server, tmp_path, monkeypatch):
    path = write_config(tmp_path, [gbp_source(server, location_ids=["loc-limited", "loc-500"])])
    result = crawl(path)["gbp"]
    assert result["new"] == g.GBP_REVIEWS  # loc-limited: 429 (Retry-After: 0), then served
    [message] = result["messages"]
    assert message.startswith(f"HTTP 500 from {server.base_url}/v4/accounts/{g.ACCOUNT}/locations/loc-500/reviews")
    assert "INTERNAL: Internal error encountered." in message
    monkeypatch.setenv("GOOGLE_REFRESH_TOKEN", "1//revoked")
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other", [gbp_source(server)])
    refused = crawl(other)["gbp"]
    assert refused["status"] == "failed" and len(refused["messages"]) == 1
    assert "source 'gbp': Google refused the credentials (invalid_grant" in refused["messages"][0]
    monkeypatch.delenv("GOOGLE_CLIENT_SECRET")
    missing = crawl(other)["gbp"]
    assert "environment variable GOOGLE_CLIENT_SECRET is not set (source 'gbp')" in missing["messages"][0]


# ------------------------------------------------------------ Play: crawling


def test_play_reads_the_week_with_a_verified_service_account_assertion(server, tmp_path):
    path = write_config(tmp_path, [play_source(server, translation_language="en")])
    result = crawl(path)["play"]
    assert (result["new"], result["status"], result["messages"]) == (g.PLAY_REVIEWS, "ok", [])
    hits = api_hits(server, "/reviews")
    assert [h["path"].split("?")[1] for h in hits] == [
        "maxResults=5&translationLanguage=en", "maxResults=5&token=5&translationLanguage=en",
        "maxResults=5&token=10&translationLanguage=en"]  # fmt: skip
    assert all(h["path"].startswith(f"/androidpublisher/v3/applications/{g.PACKAGE}/reviews") for h in hits)
    assert {h["authorization"] for h in hits} == {"Bearer ya29.mock-1"}
    # The mock issued the token only after checking the RS256 assertion with the key's public half.
    assert server.state()["token_requests"] == [{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}]
    db = open_db(tmp_path / "monitor.db")
    row = next(db.query("select * from mentions where external_id = 'play-0'"))
    assert (row["rating"], row["lang"], row["text"]) == (1.0, "en", "App review 0: crashes on checkout every time")
    assert json.loads(row["raw"])["packageName"] == g.PACKAGE
    assert row["url"] == f"https://play.google.com/store/apps/details?id={g.PACKAGE}&reviewId=play-0"


def test_play_says_when_a_crawl_gap_exceeds_the_apis_week(server, tmp_path):
    path = write_config(tmp_path, [play_source(server)])
    crawl(path)
    db = open_db(tmp_path / "monitor.db")
    assert db.execute("select value from source_state where key = 'last_clean_crawl'").fetchone()
    set_source_state(db, "play", "last_clean_crawl", (datetime.now(UTC) - timedelta(days=10)).isoformat())
    result = crawl(path)["play"]
    [message] = result["messages"]
    assert "returns only the last week's reviews, and the last complete crawl was 10 days ago" in message


def test_play_rejects_a_key_the_token_endpoint_cannot_verify(server, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = json.loads(Path(os.environ["GOOGLE_PLAY_KEY_FILE"]).read_text())
    info["private_key"] = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()  # fmt: skip
    (tmp_path / "other.json").write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_PLAY_KEY_FILE", str(tmp_path / "other.json"))
    result = crawl(write_config(tmp_path, [play_source(server)]))["play"]
    assert result["status"] == "failed"
    assert (
        "Google refused the credentials (invalid_grant: Invalid JWT: Signature verification failed"
        in (result["messages"][0])
    )
    assert "PRIVATE KEY" not in result["messages"][0]


# ------------------------------------------------------------ replies


def crawled_queue(server: GoogleOwnerApis, tmp_path: Path, *sources: dict[str, Any]) -> tuple[Path, Any, Any]:
    path = write_config(tmp_path, list(sources))
    crawl(path)
    db = open_db(tmp_path / "monitor.db")
    queue_low_ratings(db)
    return path, load_config(path), db


def test_business_profile_reply_is_put_once_and_the_next_crawl_neither_reposts_nor_reopens(server, tmp_path):
    path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-0")
    reply_id = post_reply_now(db, config, item_id, "Sorry about the wait - we've changed the rota.", actor="dana")
    assert reply_id == "gbp-0:reply"
    [put] = [h for h in server.hits() if h["method"] == "PUT"]
    assert put["path"] == f"/v4/accounts/{g.ACCOUNT}/locations/{g.LOCATION}/reviews/gbp-0/reply"
    assert put["authorization"].startswith("Bearer ya29.mock-")
    assert server.state()["gbp_replies"]["gbp-0"]["comment"] == "Sorry about the wait - we've changed the rota."
    detail = item_detail(db, item_id)
    assert detail["state"] == "replied" and detail["replies"][0]["channel"] == "google_business"
    assert any(e["action"] == "posted" and "gbp-0:reply at " in e["detail"] for e in detail["events"])
    # The next crawl sees our reply on the review: no second reply recorded, the item stays replied.
    crawl(path)
    queue_low_ratings(db)
    detail = item_detail(db, item_id)
    assert detail["state"] == "replied" and len(detail["replies"]) == 1
    assert server.state()["reply_calls"] == 1


def test_a_reply_made_on_the_business_profile_marks_the_item_replied(server, tmp_path):
    path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-5")
    server.control("/__owner_reply?review=gbp-5&text=Call+us+on+555-0100+please")
    crawl(path)
    detail = item_detail(db, item_id)
    assert detail["state"] == "replied"
    [reply] = detail["replies"]
    assert (reply["text"], reply["channel"], reply["external_id"]) == ("Call us on 555-0100 please", "platform",
                                                                       "gbp-5:reply")  # fmt: skip
    assert reply["replied_at"] < datetime.now(UTC).isoformat()  # the platform's time, not the crawl's
    assert server.state()["reply_calls"] == 0


def test_business_profile_reply_retries_5xx_429_and_401_without_a_second_reply(server, tmp_path):
    _path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-0")
    server.control("/__expire")  # the channel's token expires on its first call: 401, one refresh
    server.control("/__fail?codes=503,429&stored=0")
    post_reply_now(db, config, item_id, "Sorry - fixed now.", actor="dana")
    state = server.state()
    assert state["reply_calls"] == 2 + 1 and state["gbp_replies"]["gbp-0"]["comment"] == "Sorry - fixed now."
    # A 500 after the platform stored the reply: the repeat sets the same one reply, never a second.
    item_two = item_for(db, "gbp", "gbp-5")
    server.control("/__fail?codes=500&stored=1")
    post_reply_now(db, config, item_two, "We are sorry.", actor="dana")
    assert server.state()["gbp_replies"]["gbp-5"]["comment"] == "We are sorry."
    assert db["replies"].count == 2


def test_business_profile_reply_too_long_is_refused_before_sending_and_a_failure_gives_the_item_back(server, tmp_path):
    _path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-0")
    before = len(server.hits())
    with pytest.raises(ReplyFailed, match="limited to 4096 characters; this one has 4097"):
        post_reply_now(db, config, item_id, "x" * 4097, actor="dana")
    assert len(server.hits()) == before and get_item(db, item_id)["state"] == "new"
    server.control("/__fail?codes=500,500,500,500")
    with pytest.raises(ReplyFailed, match="HTTP 500 from .*/reviews/gbp-0/reply: Backend Error"):
        post_reply_now(db, config, item_id, "Sorry!", actor="dana")
    assert get_item(db, item_id)["state"] == "new" and db["replies"].count == 0


def test_business_profile_reply_edit_and_delete(server, tmp_path):
    _path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-0")
    post_reply_now(db, config, item_id, "Sorry!", actor="dana")
    reply_row = next(db.query("select id from replies"))["id"]
    edit_reply(db, config, reply_row, "Sorry - the manager will call you today.", actor="sam")
    assert server.state()["gbp_replies"]["gbp-0"]["comment"] == "Sorry - the manager will call you today."
    assert next(db.query("select text from replies"))["text"] == "Sorry - the manager will call you today."
    delete_reply(db, config, reply_row, actor="sam")
    assert "gbp-0" not in server.state()["gbp_replies"]
    assert [h["method"] for h in server.hits() if h["path"].endswith("/reply")] == ["PUT", "PUT", "DELETE"]
    detail = item_detail(db, item_id)
    assert detail["state"] == "new" and detail["replies"][0]["channel"] == "google_business (deleted)"
    assert [e["action"] for e in detail["events"]][-3:] == ["reply_edited", "reply_deleted", "new"]


def test_play_reply_posts_reply_text_and_is_limited_to_350_characters(server, tmp_path):
    path, config, db = crawled_queue(server, tmp_path, play_source(server))
    item_id = item_for(db, "play", "play-0")
    with pytest.raises(ReplyFailed, match="limited to 350 characters"):
        post_reply_now(db, config, item_id, "y" * 351, actor="dana")
    assert not [h for h in server.hits() if h["method"] == "POST" and "reply" in h["path"]]
    assert post_reply_now(db, config, item_id, "Fixed in 1.2.1 - please update!", actor="dana") == "play-0:reply"
    [call] = [h for h in server.hits() if h["method"] == "POST" and "reply" in h["path"]]
    assert call["path"] == f"/androidpublisher/v3/applications/{g.PACKAGE}/reviews/play-0:reply"
    assert server.state()["play_replies"]["play-0"][0]["text"] == "Fixed in 1.2.1 - please update!"
    reply_row = next(db.query("select id from replies"))["id"]
    edit_reply(db, config, reply_row, "Fixed in 1.2.2.", actor="dana")
    [developer_reply] = server.state()["play_replies"]["play-0"]  # replaced, not added
    assert developer_reply["text"] == "Fixed in 1.2.2."
    with pytest.raises(Exception, match="cannot be deleted"):
        delete_reply(db, config, reply_row, actor="dana")
    crawl(path)  # our reply seen on the review: recorded once
    assert db["replies"].count == 1 and get_item(db, item_id)["state"] == "replied"
    # A developer reply made in the Play Console to another complaint marks that item replied.
    other = item_for(db, "play", "play-4")
    server.control("/__owner_reply?review=play-4&text=Thanks+-+fixed")
    crawl(path)
    assert get_item(db, other)["state"] == "replied"


def test_no_secret_reaches_logs_pages_the_database_or_messages(server, tmp_path, service_key, monkeypatch):
    path = write_config(tmp_path, [gbp_source(server, location_ids=[g.LOCATION, "loc-500"]), play_source(server)])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    settings = [arg for key, value in {**FAST, "LOG_LEVEL": "DEBUG"}.items() for arg in ("--setting", f"{key}={value}")]
    proc = subprocess.run([sys.executable, "-m", "spiders.run", "--config", str(path), *settings, "gbp", "play"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False)  # fmt: skip
    log = proc.stdout + proc.stderr
    assert "Crawled (200)" in log
    config = load_config(path)
    db = open_db(tmp_path / "monitor.db")
    queue_low_ratings(db)
    post_reply_now(db, config, item_for(db, "gbp", "gbp-0"), "Sorry!", actor="dana")
    server.control("/__fail?codes=500,500,500,500")
    with pytest.raises(ReplyFailed) as failed:
        post_reply_now(db, config, item_for(db, "play", "play-0"), "Sorry!", actor="dana")
    monkeypatch.setenv("GOOGLE_REFRESH_TOKEN", "1//revoked-" + g.REFRESH_TOKEN)
    with pytest.raises(ReplyFailed) as refused:
        post_reply_now(db, config, item_for(db, "gbp", "gbp-5"), "Sorry!", actor="dana")
    from monitor.web.app import create_app

    client = create_app(config).test_client()
    pages = "".join(client.get(url).get_data(as_text=True) for url in ("/", "/items/1", "/items/2", "/metrics"))
    stored = json.dumps([list(row) for table in ("mentions", "crawl_runs", "source_state", "queue_events", "replies")
                         for row in db.execute(f"select * from {table}").fetchall()])  # fmt: skip
    tokens = [f"ya29.mock-{n}" for n in range(1, server.state()["issued"] + 1)]
    secrets = [g.CLIENT_SECRET, g.REFRESH_TOKEN, "1//revoked", service_key["pem"].splitlines()[1], *tokens]
    for secret in secrets:
        for where, text in (("log", log), ("pages", pages), ("database", stored),
                            ("messages", str(failed.value) + str(refused.value))):  # fmt: skip
            assert secret not in text, f"{secret[:12]}… in {where}"


# ------------------------------------------------------------ hostile payloads (saved responses, no crawl)


def _response(url: str, data: Any, meta: dict[str, Any]) -> Any:
    from scrapy.http import Request, TextResponse

    request = Request(url, meta=meta)
    return TextResponse(url, body=json.dumps(data).encode(), request=request)


def test_a_hostile_review_costs_only_itself():
    from monitor.config import SourceConfig
    from spiders.google_business import GoogleBusinessSpider
    from spiders.google_play import GooglePlaySpider

    gbp = GoogleBusinessSpider(source=SourceConfig(name="gbp", type="google_business",
                                                   options={"account": "1", "location_ids": ["l"]}))  # fmt: skip
    page = {"reviews": [
        {"reviewId": "bad", "starRating": ["FIVE"], "comment": {"x": 1}, "createTime": "year 10001"},
        {"reviewId": "ok", "starRating": "TWO", "comment": "cold", "reviewer": "not a dict",
         "createTime": "2026-11-20T10:00:00.123456789Z", "reviewReply": "not a dict"},
        {"no": "id"}, "a string"], "nextPageToken": 5}  # fmt: skip
    out = list(gbp.parse_page(_response("http://127.0.0.1/v4/x", page, {"location": "l", "page": 1, "stream": "l"})))
    assert [m["external_id"] for m in out] == ["ok"]
    assert (out[0]["rating"], out[0]["posted_at"], out[0]["author"]) == (2.0, "2026-11-20T10:00:00+00:00", None)
    assert out[0]["raw"]["name"] == "accounts/1/locations/l/reviews/ok"
    assert gbp._streams["l"] == "failed" and len(gbp.problems) == 2  # the watermark stays where it was
    play = GooglePlaySpider(source=SourceConfig(name="play", type="google_play",
                                                options={"package_names": ["com.acme"]}))  # fmt: skip
    page = {
        "reviews": [
            {"reviewId": "bad", "comments": "not a list"},
            {
                "reviewId": "ok",
                "comments": [
                    {
                        "userComment": {
                            "text": "\tslow",
                            "starRating": 9,
                            "lastModified": {"seconds": "99999999999999999"},
                        }
                    }
                ],
            },
        ]
    }
    out = list(play.parse_page(_response("http://127.0.0.1/a", page, {"package": "com.acme", "page": 1,
                                                                       "stream": "com.acme"})))  # fmt: skip
    assert [(m["external_id"], m["text"], m["rating"], m["posted_at"]) for m in out] == [("ok", "slow", None, None)]
    assert play._streams["com.acme"] == "failed"


def test_a_rating_raised_after_our_reply_is_recorded_as_a_recovery(server, tmp_path):
    path, config, db = crawled_queue(server, tmp_path, gbp_source(server))
    item_id = item_for(db, "gbp", "gbp-0")
    post_reply_now(db, config, item_id, "Sorry about the wait - we've changed the rota.", actor="dana")
    server.control("/__edit?review=gbp-0&stars=FIVE&comment=They+called+me+back%2C+thank+you")
    crawl(path)
    queue_low_ratings(db)  # the queue refresh looks for recoveries among replied items
    [recovery] = list(db.query("select * from recoveries where queue_item_id = ?", [item_id]))
    assert recovery["rating_after"] == 5.0 and recovery["rating_before"] < 5.0
    assert recovery["outcome"] == "recovered"
