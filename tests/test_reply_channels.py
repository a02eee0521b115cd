"""The reply-channel plumbing (monitor.queue.replying): the same claim → post → record for every channel, edits,
deletes, replies seen on the platform, the inbox's reply UI and ``monitor queue reply --post``.

A fake channel stands in for a platform (registered for ``yelp``, which has none of its own); the platform
clients themselves are tested against loopback servers (tests/test_owner_google.py, tests/test_reddit.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import QueueConfig, loads_config
from monitor.queue import channels
from monitor.queue.channels import ChannelError, PostedReply, channel_for
from monitor.queue.items import QueueError, dismiss, get_item, mark_replied, refresh_queue, transition
from monitor.queue.listing import item_detail
from monitor.queue.replying import (
    PENDING_KEY,
    ReplyFailed,
    apply_pending_platform_replies,
    can_post_directly,
    delete_reply,
    edit_reply,
    post_reply_now,
    record_platform_reply,
)
from monitor.store import open_db, record_mentions
from monitor.web.app import create_app
from tests.helpers import add_classified

SECRET = "s3cret-token-value-991"
CONFIG = """
[storage]
path = "{db}"
[[sources]]
name = "biz"
type = "yelp"
business_ids = ["acme"]
api_key_env = "T_FAKE_KEY"
"""


class FakeChannel:
    name = "fakeplat"
    platform = "Fakeplat"
    max_length = 20
    can_edit = True
    can_delete = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, ...]] = []
        self.fail: list[BaseException] = []

    def length(self, text: str) -> int:
        return len(text)

    def _maybe_fail(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    def post(self, source, mention, text, key) -> PostedReply:
        self.calls.append(("post", mention["external_id"], text, key))
        self._maybe_fail()
        return PostedReply(external_id=f"r-{len(self.calls)}", posted_at="2026-11-26T10:00:00+00:00",
                           url="https://fake.example/r")  # fmt: skip

    def edit(self, source, mention, reply_id, text) -> PostedReply:
        self.calls.append(("edit", reply_id, text))
        self._maybe_fail()
        return PostedReply(external_id=reply_id)

    def delete(self, source, mention, reply_id) -> None:
        self.calls.append(("delete", reply_id))
        self._maybe_fail()


@pytest.fixture
def fake(monkeypatch) -> FakeChannel:
    channel = FakeChannel()
    monkeypatch.setitem(channels._CHANNELS, "yelp", lambda: channel)
    monkeypatch.setenv("T_FAKE_KEY", SECRET)
    return channel


@pytest.fixture
def setup(tmp_path, fake):
    text = CONFIG.format(db=tmp_path / "c.db")
    (tmp_path / "config.toml").write_text(text)
    config = loads_config(text, tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "biz", "rev-1", "cold food", "complaint", rating=1)
    add_classified(db, "biz", "rev-2", "rude staff", "complaint", rating=2)
    refresh_queue(db, QueueConfig())
    return config, db


# ------------------------------------------------------------ posting


def test_any_channel_posts_once_and_stores_the_platforms_answer(setup, fake):
    config, db = setup
    assert can_post_directly("yelp") and not can_post_directly("schema_org")
    assert post_reply_now(db, config, 1, "Sorry!", actor="dana") == "r-1"
    assert fake.calls == [("post", "rev-1", "Sorry!", "monitor-1-1")]
    detail = item_detail(db, 1)
    assert detail["state"] == "replied" and detail["first_replied_at"]
    [reply] = detail["replies"]
    assert (reply["channel"], reply["external_id"], reply["text"]) == ("fakeplat", "r-1", "Sorry!")
    assert detail["events"][-1]["action"] == "posted"
    assert detail["events"][-1]["detail"] == "Fakeplat reply r-1 at 2026-11-26T10:00:00+00:00 · https://fake.example/r"
    with pytest.raises(QueueError, match="is replied; reopen it"):
        post_reply_now(db, config, 1, "Again", actor="sam")
    assert len(fake.calls) == 1


def test_rules_are_checked_before_anything_is_claimed_or_sent(setup, fake):
    config, db = setup
    events = db["queue_events"].count
    with pytest.raises(ReplyFailed, match="biz: fakeplat replies are limited to 20 characters; this one has 21"):
        post_reply_now(db, config, 1, "x" * 21, actor="dana")
    with pytest.raises(QueueError, match="the reply text is empty"):
        post_reply_now(db, config, 1, "  ", actor="dana")
    assert fake.calls == [] and db["queue_events"].count == events and get_item(db, 1)["state"] == "new"


def test_a_refusal_gives_the_item_back_and_the_retry_reuses_the_idempotency_key(setup, fake):
    config, db = setup
    transition(db, 1, "assigned", "lead", assignee="dana")
    fake.fail = [ChannelError(f"biz: platform said no (token {SECRET})")]
    with pytest.raises(ReplyFailed) as refused:
        post_reply_now(db, config, 1, "Sorry!", actor="dana")
    assert SECRET not in str(refused.value) and "[redacted]" in str(refused.value)
    detail = item_detail(db, 1)
    assert detail["state"] == "assigned" and detail["replies"] == [] and detail["first_replied_at"] is None
    assert "reply not posted" in detail["events"][-1]["detail"] and SECRET not in detail["events"][-1]["detail"]
    post_reply_now(db, config, 1, "Sorry!", actor="dana")
    # The same key both times: a platform that saw the first request answers the retry with the same reply.
    assert [call[3] for call in fake.calls] == ["monitor-1-1", "monitor-1-1"]
    transition(db, 1, "new", "system", "new activity on the thread")
    post_reply_now(db, config, 1, "Update: fixed", actor="dana")
    assert fake.calls[-1][3] == "monitor-1-2"  # a new reply, a new key


def test_an_unexpected_error_gives_the_item_back_too(setup, fake):
    config, db = setup
    fake.fail = [RuntimeError("boom")]
    with pytest.raises(RuntimeError):
        post_reply_now(db, config, 1, "Sorry!", actor="dana")
    assert get_item(db, 1)["state"] == "new" and db["replies"].count == 0


def test_a_missing_credential_is_a_refusal_naming_the_key(setup, fake):
    from monitor.config import ConfigError

    config, db = setup
    fake.fail = [ConfigError("sources[0].api_key_env", "environment variable T_FAKE_KEY is not set (source 'biz')")]
    with pytest.raises(ReplyFailed, match="T_FAKE_KEY is not set"):
        post_reply_now(db, config, 1, "Sorry!", actor="dana")
    assert get_item(db, 1)["state"] == "new"


def test_sources_without_a_channel_are_replied_by_hand(tmp_path):
    config = loads_config(f'[storage]\npath = "{tmp_path / "c.db"}"\n[[sources]]\nname = "site"\ntype = "schema_org"\n'
                          'urls = ["https://example.com/r"]\n', tmp_path / "config.toml")  # fmt: skip
    db = open_db(config.storage_path)
    add_classified(db, "site", "x", "cold food", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    with pytest.raises(QueueError, match="schema_org replies are made on the platform, then marked replied"):
        post_reply_now(db, config, 1, "Sorry!", actor="dana")


def test_reddit_is_a_channel_with_its_comment_limit(tmp_path, monkeypatch):
    import spiders.reddit

    reddit = channel_for("reddit")
    assert (reddit.name, reddit.max_length, reddit.can_edit, reddit.can_delete) == ("reddit", 10_000, True, True)
    config = loads_config(f'[storage]\npath = "{tmp_path / "c.db"}"\n[[sources]]\nname = "r"\ntype = "reddit"\n'
                          'search = ["acme"]\n', tmp_path / "config.toml")  # fmt: skip
    db = open_db(config.storage_path)
    add_classified(db, "r", "t3_abc", "anyone?", "complaint", kind="post")
    refresh_queue(db, QueueConfig())
    monkeypatch.setattr(spiders.reddit, "post_reply", lambda *a: pytest.fail("posted a reply over the limit"))
    with pytest.raises(ReplyFailed, match="reddit replies are limited to 10000 characters"):
        post_reply_now(db, config, 1, "x" * 10_001, actor="dana")


# ------------------------------------------------------------ edit and delete


def test_edit_and_delete_a_posted_reply(setup, fake):
    config, db = setup
    post_reply_now(db, config, 1, "Sorry!", actor="dana")
    edit_reply(db, config, 1, "Sorry - fixed.", actor="sam")
    assert fake.calls[-1] == ("edit", "r-1", "Sorry - fixed.")
    with pytest.raises(ReplyFailed, match="limited to 20"):
        edit_reply(db, config, 1, "x" * 21, actor="sam")
    detail = item_detail(db, 1)
    assert detail["replies"][0]["text"] == "Sorry - fixed."
    assert detail["events"][-1]["action"] == "reply_edited" and "it said: Sorry!" in detail["events"][-1]["detail"]
    fake.fail = [ChannelError("biz: gone")]
    with pytest.raises(ReplyFailed, match="gone"):
        delete_reply(db, config, 1, actor="sam")
    assert get_item(db, 1)["state"] == "replied"
    delete_reply(db, config, 1, actor="sam")
    detail = item_detail(db, 1)
    assert detail["state"] == "new" and detail["replies"][0]["channel"] == "fakeplat (deleted)"
    with pytest.raises(QueueError, match="was not posted from here"):
        edit_reply(db, config, 1, "again", actor="sam")  # deleted: nothing to edit


def test_a_reply_recorded_by_hand_cannot_be_edited_through_the_channel(setup, fake):
    config, db = setup
    mark_replied(db, 1, "Answered by phone", actor="dana")
    with pytest.raises(QueueError, match="was not posted from here"):
        edit_reply(db, config, 1, "x", actor="dana")
    assert fake.calls == []


# ------------------------------------------------------------ replies seen on the platform


def test_a_reply_seen_on_the_platform_marks_the_item_replied_with_its_time(setup):
    _config, db = setup
    outcome = record_platform_reply(db, "biz", "rev-1", "We called you.", "owner-9", "2026-11-20T09:30:00Z")
    assert outcome == "recorded"
    detail = item_detail(db, 1)
    [reply] = detail["replies"]
    assert detail["state"] == "replied" and (reply["text"], reply["channel"], reply["external_id"]) == (
        "We called you.", "platform", "owner-9")  # fmt: skip
    assert reply["replied_at"] == detail["first_replied_at"] == "2026-11-20T09:30:00+00:00"
    # Seen again by the next crawl: nothing new.
    assert record_platform_reply(db, "biz", "rev-1", "We called you.", "owner-9", None) == "ours"
    assert db["replies"].count == 1


def test_our_own_reply_seen_by_the_crawl_is_not_recorded_twice_nor_reopens(setup, fake):
    config, db = setup
    post_reply_now(db, config, 1, "Sorry!", actor="dana")
    assert record_platform_reply(db, "biz", "rev-1", "Sorry! (edited)", "r-1", None) == "ours"  # by reply id
    transition(db, 1, "new", "system", "new activity on the thread")
    assert record_platform_reply(db, "biz", "rev-1", "Sorry!", None, None) == "ours"  # no id: by text
    assert get_item(db, 1)["state"] == "new" and db["replies"].count == 1
    dismiss(db, 2, actor="dana")
    assert record_platform_reply(db, "biz", "rev-2", "Hello", "x", None) == "handled"
    assert get_item(db, 2)["state"] == "dismissed"


def test_a_reply_seen_before_the_review_is_queued_waits_for_the_queue(setup):
    _config, db = setup
    record_mentions(db, "biz", [{"external_id": "rev-3", "text": "bad", "kind": "review", "rating": 1}])
    record_mentions(db, "biz", [{"external_id": "rev-4", "text": "great", "kind": "review", "rating": 5}])
    assert record_platform_reply(db, "biz", "rev-3", "Sorry!", "o-3", None) == "pending"
    assert record_platform_reply(db, "biz", "rev-4", "Thanks!", "o-4", None) == "pending"
    assert apply_pending_platform_replies(db) == 0  # not classified yet: both wait
    add_classified(db, "biz", "rev-3", "bad", "complaint", rating=1)
    add_classified(db, "biz", "rev-4", "great", "praise", rating=5)
    refresh_queue(db, QueueConfig())
    assert apply_pending_platform_replies(db, "biz") == 1
    item = next(db.query("select q.state from queue_items q join mentions m on m.id = q.mention_id "
                         "where m.external_id = 'rev-3'"))  # fmt: skip
    assert item["state"] == "replied"
    assert db.execute("select count(*) from source_state where key like ?", [PENDING_KEY + "%"]).fetchone()[0] == 0


# ------------------------------------------------------------ inbox and CLI


def _page(client, item_id: int = 1) -> tuple[str, str]:
    html = client.get(f"/items/{item_id}").get_data(as_text=True)
    return html, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_inbox_posts_through_the_channel_with_a_counter_and_edits_and_deletes(setup, fake):
    config, db = setup
    app = create_app(config, users={})
    app.testing = True
    client = app.test_client()
    html, token = _page(client)
    assert re.search(r"<button [^>]*id=\"post-reply\"[^>]*>Post to Fakeplat</button>", html)
    assert 'data-max-length="20"' in html and "/ 20 characters (Fakeplat's limit)" in html
    assert "reply_counter.js" in html
    response = client.post("/items/1/reply", data={"csrf_token": token, "send": "post", "text": "Sorry!"})
    assert response.status_code == 302 and fake.calls[0][:3] == ("post", "rev-1", "Sorry!")
    html, token = _page(client)
    assert "Reply posted to Fakeplat." in html
    assert 'id="edit-reply-1"' in html and 'id="delete-reply-1"' in html
    assert client.post("/items/1/replies/1/edit", data={"text": "Hi"}).status_code == 403  # no CSRF token
    assert client.post("/items/2/replies/1/edit", data={"csrf_token": token, "text": "Hi"}).status_code == 404
    client.post("/items/1/replies/1/edit", data={"csrf_token": token, "text": "Sorry - fixed."})
    assert fake.calls[-1] == ("edit", "r-1", "Sorry - fixed.")
    html, token = _page(client)
    assert "Reply edited on the platform." in html
    client.post("/items/1/replies/1/delete", data={"csrf_token": token})
    html, _token = _page(client)
    assert "Reply deleted on the platform." in html and fake.calls[-1] == ("delete", "r-1")
    assert 'id="delete-reply-1"' not in html and get_item(db, 1)["state"] == "new"


def test_inbox_says_why_a_reply_was_not_posted(setup, fake):
    config, _db = setup
    client = create_app(config, users={}).test_client()
    _html, token = _page(client)
    client.post("/items/1/reply", data={"csrf_token": token, "send": "post", "text": "x" * 21})
    html, _ = _page(client)
    assert "Not posted: biz: fakeplat replies are limited to 20 characters" in html and fake.calls == []


def test_inbox_offers_no_delete_where_the_platform_has_none(setup, fake):
    config, db = setup
    fake.can_delete = False
    post_reply_now(db, config, 1, "Sorry!", actor="dana")
    html, _ = _page(create_app(config, users={}).test_client())
    assert 'id="edit-reply-1"' in html and 'id="delete-reply-1"' not in html


def test_cli_posts_through_any_channel(setup, fake, tmp_path):
    config, _db = setup
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(tmp_path / "config.toml"), "queue", "reply", "2", "--post",
                                 "--text", "Sorry!", "--as", "dana"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "#2 replied on Fakeplat (r-1)" in result.output and fake.calls[0][1] == "rev-2"
    result = runner.invoke(cli, ["--config", str(tmp_path / "config.toml"), "queue", "reply", "1", "--post",
                                 "--text", "x" * 21])  # fmt: skip
    assert result.exit_code != 0 and "limited to 20 characters" in result.output


def test_reddit_channel_edits_and_deletes_the_comment_through_praw(monkeypatch):
    import prawcore

    import spiders.reddit
    from monitor.config import SourceConfig

    done: list[tuple[str, ...]] = []

    class Comment:
        def __init__(self, ident: str) -> None:
            self.ident = ident

        def edit(self, text: str) -> None:
            done.append(("edit", self.ident, text))

        def delete(self) -> None:
            raise prawcore.Forbidden(type("R", (), {"status_code": 403, "headers": {}, "url": "x"})())

    monkeypatch.setattr(spiders.reddit, "_reply_auth", lambda source: {"refresh_token": "t"})
    monkeypatch.setattr(spiders.reddit, "make_reddit", lambda source, **auth: type("R", (), {"comment": Comment})())
    source = SourceConfig(name="r", type="reddit")
    reddit = channel_for("reddit")
    assert reddit.edit(source, {}, "t1_abc", "Edited").external_id == "t1_abc"
    assert done == [("edit", "abc", "Edited")]
    with pytest.raises(ChannelError, match="r: could not delete t1_abc"):
        reddit.delete(source, {}, "t1_abc")
    with pytest.raises(ChannelError, match="not a Reddit comment id"):
        reddit.edit(source, {}, "t3_post", "x")
