"""Replying to Reddit from the inbox: PRAW posts to a loopback Reddit API only on a person's action."""

import re
import time

import pytest

from monitor.config import loads_config
from monitor.demo.reddit_api import start_reddit_api
from monitor.queue.items import get_item, refresh_queue
from monitor.store import open_db
from monitor.web.app import create_app
from spiders.reddit import run_reddit_source

PASSWORD = "pw-7c2e-demo"

CONFIG = """
[storage]
path = "{db}"
[[sources]]
name = "reddit-acme"
type = "reddit"
search = ["acme coffee"]
subreddits = ["acmecoffee"]
client_id_env = "T_REDDIT_ID"
client_secret_env = "T_REDDIT_SECRET"
username_env = "T_REDDIT_USER"
password_env = "T_REDDIT_PASSWORD"
refresh_token_env = "T_REDDIT_TOKEN"
oauth_url = "{base}"
reddit_url = "{base}"
"""


@pytest.fixture
def reddit_inbox(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    monkeypatch.setenv("T_REDDIT_ID", "cid")
    monkeypatch.setenv("T_REDDIT_SECRET", "csecret")
    monkeypatch.delenv("T_REDDIT_TOKEN", raising=False)
    server, base = start_reddit_api()
    server.users = {"acme_support": PASSWORD}
    config = loads_config(CONFIG.format(db=tmp_path / "r.db", base=base), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    run_reddit_source(db, config.sources[0])
    # Classify by hand (the model is not under test here): the question about opening hours.
    [question] = db.query("select id from mentions where title like 'Does the airport%'")
    db["classifications"].insert(
        {"mention_id": question["id"], "label": "neutral", "score": 0.8, "probs": '{"complaint": 0.1}',
         "topics": "[]", "urgency": '["question"]'}
    )  # fmt: skip
    refresh_queue(db, config.queue)
    db.conn.close()
    app = create_app(config, users={})
    app.testing = True
    yield server, config, app.test_client()
    server.shutdown()
    server.server_close()


def _form(client):
    html = client.get("/items/1").get_data(as_text=True)
    return html, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_post_to_reddit_from_the_inbox(reddit_inbox, monkeypatch):
    server, config, client = reddit_inbox
    monkeypatch.setenv("T_REDDIT_USER", "acme_support")
    monkeypatch.setenv("T_REDDIT_PASSWORD", PASSWORD)
    html, token = _form(client)
    assert 'id="post-reply"' in html  # Reddit items post directly

    response = client.post("/items/1/reply", data={"csrf_token": token, "send": "post",
                                                   "text": "Yes - the airport store opens at 5:30."})  # fmt: skip
    assert response.status_code == 302
    db = open_db(config.storage_path, migrate=False)
    [reply] = list(db["replies"].rows)
    assert reply["channel"] == "reddit" and reply["external_id"].startswith("t1_")
    posted = server.content.get(reply["external_id"])["data"]
    assert posted["body"] == "Yes - the airport store opens at 5:30." and posted["author"] == "acme_support"
    assert get_item(db, 1)["state"] == "replied"
    assert "Reply posted to Reddit." in client.get("/items/1").get_data(as_text=True)


def test_a_refused_reddit_reply_records_nothing_and_says_why(reddit_inbox, monkeypatch):
    server, config, client = reddit_inbox
    monkeypatch.setenv("T_REDDIT_USER", "acme_support")
    monkeypatch.setenv("T_REDDIT_PASSWORD", "wrong-password")
    _html, token = _form(client)
    client.post("/items/1/reply", data={"csrf_token": token, "send": "post", "text": "Hello"})
    html = client.get("/items/1").get_data(as_text=True)
    assert "Not posted:" in html and "wrong-password" not in html
    db = open_db(config.storage_path, migrate=False)
    assert db["replies"].count == 0 and get_item(db, 1)["state"] == "new"


def test_no_reddit_account_is_a_clear_message(reddit_inbox, monkeypatch):
    _server, _config, client = reddit_inbox
    monkeypatch.delenv("T_REDDIT_USER", raising=False)
    monkeypatch.delenv("T_REDDIT_PASSWORD", raising=False)
    _html, token = _form(client)
    client.post("/items/1/reply", data={"csrf_token": token, "send": "post", "text": "Hello"})
    html = client.get("/items/1").get_data(as_text=True)
    assert "Not posted:" in html and "T_REDDIT" in html


def test_recording_a_reddit_reply_made_elsewhere_posts_nothing(reddit_inbox):
    server, config, client = reddit_inbox
    _html, token = _form(client)
    client.post("/items/1/reply", data={"csrf_token": token, "send": "record", "text": "Answered by DM"})
    db = open_db(config.storage_path, migrate=False)
    [reply] = list(db["replies"].rows)
    assert reply["channel"] == "manual" and reply["external_id"] is None


def test_post_from_the_inbox_against_recorded_reddit_traffic(tmp_path, monkeypatch):
    """The inbox's "Post to Reddit" sends what PRAW sent when Reddit's real reply traffic was recorded."""
    from monitor.config import QueueConfig
    from tests.reddit_replay import replaying

    from .helpers import add_classified

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    for name, value in (("T_REDDIT_ID", "cid"), ("T_REDDIT_SECRET", "csecret"), ("T_REDDIT_USER", "acme_support"),
                        ("T_REDDIT_PASSWORD", PASSWORD)):  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("T_REDDIT_TOKEN", raising=False)
    with replaying("TestComment.test_reply") as (replay, base):
        config = loads_config(CONFIG.format(db=tmp_path / "r.db", base=base), tmp_path / "config.toml")
        db = open_db(config.storage_path)
        add_classified(db, "reddit-acme", "t1_d1616q2", "Is this still broken?", "complaint", kind="comment")
        refresh_queue(db, QueueConfig())
        db.conn.close()
        app = create_app(config, users={})
        app.testing = True
        client = app.test_client()
        _html, token = _form(client)
        client.post("/items/1/reply", data={"csrf_token": token, "send": "post", "text": "Comment reply"})
    db = open_db(config.storage_path, migrate=False)
    [reply] = list(db["replies"].rows)
    assert reply["external_id"] == "t1_d1680wu" and reply["channel"] == "reddit"
    assert ("POST", "/api/comment/?raw_json=1") in replay.requests and replay.unmatched == []
