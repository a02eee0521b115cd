"""The finished inbox (issue 12): SLA clocks in words, counts per state and SLA status, bulk assign / dismiss,
the author's other mentions, platform icons and names, human topic names, one time format, each platform's
reply limit, and hostile mention text inert in all of it."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import loads_config
from monitor.queue.items import QueueError, bulk_change, mark_replied, refresh_queue
from monitor.queue.listing import Budget, InboxFilter, author_mentions, inbox_counts, list_items, sla_clock
from monitor.store import open_db
from monitor.web.app import create_app
from monitor.web.inbox_view import time_filter

from .helpers import XSS, add_classified

CONFIG = """
[storage]
path = "{db}"
[schedule]
timezone = "Europe/Berlin"
[[locations]]
id = "downtown"
name = "Acme Downtown"
timezone = "America/New_York"
[[team]]
name = "dana"
[[team]]
name = "sam"
[[sources]]
name = "reddit-acme"
type = "reddit"
search = ["acme"]
client_id_env = "T_ID"
client_secret_env = "T_SECRET"
[[sources]]
name = "reddit-rivals"
type = "reddit"
search = ["rival"]
client_id_env = "T_ID"
client_secret_env = "T_SECRET"
[[sources]]
name = "reviews"
type = "schema_org"
urls = ["http://127.0.0.1:9/reviews"]
location = "downtown"
[[sources]]
name = "play"
type = "google_play"
package_names = ["com.acme"]
key_file_env = "T_KEY"
"""
HOSTILE_URL = "javascript:window.__pwned=9"


def _config(tmp_path):
    return loads_config(CONFIG.format(db=tmp_path / "inbox.db"), tmp_path / "config.toml")


@pytest.fixture
def store(tmp_path):
    """Five open items: reddit posts by one author (one placed downtown by the shift stage), a review, a Play
    review; plus an older mention by the same author that needed no reply."""
    config = _config(tmp_path)
    db = open_db(config.storage_path)
    add_classified(db, "reddit-acme", "t3_a", "Waited 40 minutes downtown", "complaint", kind="post",
                   topics=["wait_time"], hours_ago=3)  # fmt: skip
    add_classified(db, "reddit-acme", "t3_b", "Still no refund " + XSS, "complaint", kind="post", hours_ago=30,
                   url=HOSTILE_URL, topics=["price_billing"])  # fmt: skip
    add_classified(db, "reviews", "r1", "Dirty tables", "complaint", rating=2, topics=["cleanliness_ambience"],
                   hours_ago=1)  # fmt: skip
    add_classified(db, "play", "p1", "App crashes at checkout", "complaint", rating=1, topics=["app_website"])
    add_classified(db, "reddit-rivals", "t3_c", "Rival's coffee is better", "complaint", kind="post", hours_ago=50)
    add_classified(db, "reddit-acme", "t3_old", "Love the new cups " + XSS, "praise", kind="post", hours_ago=200,
                   url=HOSTILE_URL, probs={"complaint": 0.01, "neutral": 0.09, "praise": 0.9})  # fmt: skip
    db.execute("update mentions set author = 'spud' where source like 'reddit-%'")
    db.execute("update mentions set location = 'downtown' where source = 'reviews'")
    when = "2026-01-01T10:00:00+00:00"  # the shift stage placed the first Reddit post downtown
    db["incident_estimates"].insert({"mention_id": 1, "location": "downtown", "window_start": when, "window_end": when,
                                     "basis": "posted_at", "detail": "", "estimated_at": when})  # fmt: skip
    refresh_queue(db, config.queue)
    yield config, db
    db.conn.close()


def _app(config):
    app = create_app(config, users={})
    app.testing = True
    return app


def _token(client, path="/"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _state(db, item_id):
    return db.execute("select state from queue_items where id = ?", [item_id]).fetchone()[0]


# ---------------------------------------------------------------- SLA clocks, counts


def test_sla_clock_reads_like_the_cli():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    due = lambda minutes: {"state": "new", "sla_due_at": (now + timedelta(minutes=minutes)).isoformat()}  # noqa: E731
    assert sla_clock(due(25), now) == ("due_soon", "due in 25 min")
    assert sla_clock(due(300), now) == ("on_time", "due in 5.0 h")
    assert sla_clock(due(-210), now) == ("overdue", "3.5 h overdue")
    assert sla_clock(due(-3 * 1440), now) == ("overdue", "3.0 d overdue")
    assert sla_clock({"state": "assigned", "sla_due_at": None}, now) == ("no_clock", "no SLA clock")
    assert sla_clock({"state": "replied", "sla_due_at": due(-5)["sla_due_at"]}, now) == ("closed", "")


def test_counts_per_state_and_sla_apply_the_other_filters(store):
    config, db = store
    now = datetime.now(UTC)
    db.execute("update queue_items set sla_due_at = ? where id = 1", [(now + timedelta(minutes=20)).isoformat()])
    db.execute("update queue_items set sla_due_at = ? where id = 2", [(now - timedelta(hours=2)).isoformat()])
    db.execute("update queue_items set sla_due_at = ? where id = 3", [(now + timedelta(hours=5)).isoformat()])
    db.execute("update queue_items set sla_due_at = null where id = 4")
    db.execute("update queue_items set sla_due_at = ? where id = 5", [(now - timedelta(hours=1)).isoformat()])
    mark_replied(db, 5, "Thanks")
    counts = inbox_counts(db, InboxFilter(), now)
    assert counts.states == {"new": 4, "assigned": 0, "replied": 1, "dismissed": 0}
    assert counts.sla == {"overdue": 1, "due_soon": 1, "on_time": 1, "no_clock": 1}
    # the SLA filter narrows the state counts; the state does not change with it
    overdue = inbox_counts(db, InboxFilter(sla="overdue"), now)
    assert overdue.states["new"] == 1 and overdue.sla["due_soon"] == 1
    # other filters narrow both; a location inferred by the shift stage counts
    downtown = inbox_counts(db, InboxFilter(location="downtown"), now)
    assert downtown.states["new"] == 2 and downtown.sla == {"overdue": 0, "due_soon": 1, "on_time": 1, "no_clock": 0}
    # and the list agrees with the chip it came from
    assert [it["id"] for it in list_items(db, filters=InboxFilter(sla="no_clock"), now=now)] == [4]


def test_handled_counts_are_capped_and_bounded_in_time(store, monkeypatch):
    import monitor.queue.listing as listing

    _config, db = store
    for item_id in (1, 2, 3):
        mark_replied(db, item_id, "Thanks")
    monkeypatch.setattr(listing, "COUNT_CAP", 2)
    counts = inbox_counts(db, InboxFilter())
    assert counts.states["replied"] == 2 and counts.capped == {"replied"}
    monkeypatch.setattr(listing, "COUNT_BUDGET", 0.0)  # no time at all: no number, but the page still renders
    monkeypatch.setattr(listing, "BUDGET_STEPS", 1)
    assert inbox_counts(db, InboxFilter()).states["replied"] is None


@pytest.mark.sqlite_only(reason="SQLite's progress handler (PostgreSQL's statement_timeout: tests/test_pg_queue.py)")
def test_a_query_past_its_budget_is_stopped_not_waited_for(store):
    _config, db = store
    endless = "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"
    with Budget(db, 0.05) as budget:
        assert budget.run(endless, []) is None
        with pytest.raises(sqlite3.OperationalError):
            budget.run("select * from no_such_table", [])  # other errors are not swallowed
    assert db.execute("select 1").fetchone() == (1,)  # the handler is gone afterwards


# ---------------------------------------------------------------- bulk actions


def test_bulk_dismiss_changes_what_it_can_and_says_what_it_skipped(store):
    _config, db = store
    mark_replied(db, 2, "Sorry")
    result = bulk_change(db, [1, 2, 3, 3, 999], "dismiss", "dana", reason="spam")
    assert result.done == [1, 3]
    assert result.skipped == {"already replied": [2], "not found": [999]}
    assert result.message("dismissed") == "2 dismissed, 2 skipped (1 already replied, 1 not found)"
    assert [_state(db, i) for i in (1, 2, 3)] == ["dismissed", "replied", "dismissed"]
    events = list(db.query("select queue_item_id, actor, action, detail from queue_events where action = 'dismissed'"))
    assert events == [{"queue_item_id": 1, "actor": "dana", "action": "dismissed", "detail": "spam"},
                      {"queue_item_id": 3, "actor": "dana", "action": "dismissed", "detail": "spam"}]  # fmt: skip


def test_bulk_assign_skips_items_already_theirs(store):
    _config, db = store
    assert bulk_change(db, [1], "assign", "web", user="sam").message("assigned to sam") == "1 assigned to sam"
    result = bulk_change(db, [1, 2], "assign", "web", user="sam")
    assert result.message("assigned to sam") == "1 assigned to sam, 1 skipped (already sam's)"
    assert db.execute("select assignee from queue_items where id = 2").fetchone()[0] == "sam"


def test_bulk_is_one_transaction(store, monkeypatch):
    """A failure half-way leaves every item as it was (no item dismissed while its neighbour is not)."""
    import monitor.queue.items as items

    _config, db = store
    real = items.set_state
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(items, "set_state", failing)
    with pytest.raises(RuntimeError):
        bulk_change(db, [1, 2], "dismiss", "dana")
    assert [_state(db, i) for i in (1, 2)] == ["new", "new"]


@pytest.mark.parametrize("action, user, message", [("archive", None, "unknown bulk action"),
                                                   ("assign", None, "team member")])  # fmt: skip
def test_bulk_refuses_what_it_cannot_do(store, action, user, message):
    _config, db = store
    with pytest.raises(QueueError, match=message):
        bulk_change(db, [1], action, "dana", user=user)
    with pytest.raises(QueueError, match="at most"):
        bulk_change(db, list(range(1, 600)), "dismiss", "dana")


def test_bulk_from_the_web_needs_the_token_and_reports_back(store):
    config, db = store
    mark_replied(db, 2, "Sorry")
    client = _app(config).test_client()
    assert client.post("/bulk", data={"action": "dismiss", "ids": ["1"]}).status_code == 403
    token = _token(client)
    response = client.post("/bulk", data={"csrf_token": token, "action": "dismiss", "ids": ["1", "2", "3", "x'1"],
                                          "next": "/?state=open&topic=wait_time"})  # fmt: skip
    assert response.status_code == 302 and response.headers["Location"] == "/?state=open&topic=wait_time"
    html = client.get("/").get_data(as_text=True)
    assert "2 dismissed, 1 skipped (already replied)" in html
    assert [_state(db, i) for i in (1, 2, 3)] == ["dismissed", "replied", "dismissed"]
    # a hostile "next" goes home; a stranger to the team is refused; nothing ticked says so
    response = client.post("/bulk", data={"csrf_token": token, "action": "assign", "user": "dana", "ids": ["4"],
                                          "next": "//evil.example/"})  # fmt: skip
    assert response.headers["Location"] == "/"
    assert "1 assigned to dana" in client.get("/").get_data(as_text=True)
    assert client.post("/bulk", data={"csrf_token": token, "action": "assign", "user": "kim",
                                      "ids": ["5"]}).status_code == 400  # fmt: skip
    client.post("/bulk", data={"csrf_token": token, "action": "dismiss"})
    assert "Nothing selected" in client.get("/").get_data(as_text=True)


# ---------------------------------------------------------------- the list page


def test_inbox_shows_counts_clocks_platforms_locations_and_topic_names(store):
    config, db = store
    due = (datetime.now(UTC) - timedelta(hours=3.5)).isoformat()
    db.execute("update queue_items set sla_due_at = ? where id = 2", [due])
    html = _app(config).test_client().get("/").get_data(as_text=True)
    assert re.search(r'id="tab-open"[^>]*>Open <span class="count">5</span>', html)
    assert re.search(r'id="sla-overdue"[^>]*>Overdue <span class="count">\d+</span>', html)
    assert re.search(r"3\.5 h overdue</time>", html)  # relative, in the CLI's words
    assert "due 20" not in html and " UTC overdue" not in html  # no more absolute UTC due times on cards
    assert 'class="src-icon icon-reddit" aria-hidden="true"></span><span class="sr-only">Reddit: </span>' in html
    assert 'class="src-icon icon-google_play"' in html and 'class="src-icon icon-review"' in html
    assert html.count("Acme Downtown</span>") >= 2  # the review's location, and the Reddit post placed downtown
    assert "no location" in html  # said, not left out
    assert "Waiting time" in html and ">wait_time<" not in html and "Cleanliness and ambience" in html


def test_one_time_format_local_with_utc_on_hover():
    when = time_filter({"downtown": "America/New_York"}, "Europe/Berlin")
    stamp = f"{datetime.now(UTC).year}-07-01T16:05:00+00:00"
    weekday = datetime.fromisoformat(stamp).strftime("%a")
    assert str(when(stamp, "downtown")) == (
        f'<time datetime="{stamp}" title="{stamp[:10]} 16:05 UTC">{weekday} 01 Jul 12:05 EDT</time>'
    )
    assert "18:05 CEST" in when(stamp, None) and "18:05 CEST" in when(stamp, "nowhere")
    assert "2019" in when("2019-07-01T16:05:00+00:00")  # another year says so
    assert str(when("<b>soon</b>")) == "&lt;b&gt;soon&lt;/b&gt;"  # a source's junk stays text
    clock = when(stamp, label="3 h overdue")
    assert f'title="due {weekday} 01 Jul 18:05 CEST · ' in clock and ">3 h overdue</time>" in clock


def test_every_time_on_the_item_page_uses_the_one_format(store):
    config, db = store
    client = _app(config).test_client()
    token = _token(client, "/items/1")
    client.post("/items/1/note", data={"csrf_token": token, "text": "called them"})
    html = client.get("/items/1").get_data(as_text=True)
    assert not re.search(r">\s*\d{4}-\d\d-\d\dT", html)  # no raw ISO times left in the text
    assert html.count('<time datetime="') >= 4  # posted, SLA, note, history


# ---------------------------------------------------------------- the item page


def test_item_page_lists_the_authors_other_mentions_on_the_same_platform(store):
    config, db = store
    html = _app(config).test_client().get("/items/1").get_data(as_text=True)
    section = html[html.index('id="author-others"') :]
    section = section[: section.index("</section>")]
    assert "More from spud on Reddit" in section
    # the other queued post links to its item; the praise (no item) is listed; newest first
    assert section.index("Still no refund") < section.index("Rival&#39;s coffee") < section.index("Love the new cups")
    assert 'href="/items/2"' in section and 'href="/items/5"' in section
    assert "Waited 40 minutes" not in section  # not the item itself
    assert "<script>" not in section and "javascript:" not in section and "&lt;script&gt;" in section
    assert "Dirty tables" not in section and "App crashes" not in section  # other platforms


def test_author_lookup_is_limited_and_skips_anonymous_authors(store):
    _config, db = store
    assert len(author_mentions(db, ["reddit-acme", "reddit-rivals"], "spud", 1, limit=2)) == 2
    assert author_mentions(db, ["reddit-acme"], "[deleted]", 1) == []
    assert author_mentions(db, ["reddit-acme"], None, 1) == []


def test_the_reply_counter_shows_each_platforms_limit_on_every_channel(store):
    config, _db = store
    client = _app(config).test_client()
    play = client.get("/items/4").get_data(as_text=True)  # posts through the Play API: 350
    assert re.search(r'data-max-length="350"', play) and "/ 350 characters (Google Play's limit)" in play
    reddit = client.get("/items/1").get_data(as_text=True)
    assert "/ 10000 characters (Reddit's limit)" in reddit
    review = client.get("/items/3").get_data(as_text=True)  # answered by hand on a website: counted, no limit known
    assert 'id="char-count"' in review and "publishes no limit we know of" in review
    assert "reply_counter.js" in review
