"""Team assignment, SLA rules, notes, recovery tracking, metrics and CSV export."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import QueueConfig, TeamMember, loads_config
from monitor.queue.export import queue_csv
from monitor.queue.items import QueueError, add_note, assign, dismiss, get_item, mark_replied, refresh_queue, sla_for
from monitor.queue.listing import item_detail, list_items
from monitor.queue.metrics import response_metrics
from monitor.queue.recovery import recovery_outcome
from monitor.queue.replying import reply_page_url
from monitor.queue.team import covers
from monitor.store import record_mentions

from .helpers import add_classified, sla_allowances

HOUR = timedelta(hours=1)


def test_sla_per_source_name_beats_type_beats_kind_and_urgent_flags_shorten_it():
    config = QueueConfig(
        sla_by_source={"yelp": timedelta(hours=12), "yelp-downtown": timedelta(hours=6)},
        sla_urgent=timedelta(minutes=20),
        source_types={"yelp-downtown": "yelp", "yelp-airport": "yelp", "reddit-acme": "reddit"},
    )
    assert sla_for("review", config, "yelp-downtown") == timedelta(hours=6)
    assert sla_for("review", config, "yelp-airport") == timedelta(hours=12)
    assert sla_for("review", config, "other") == timedelta(hours=24)
    assert sla_for("post", config, "reddit-acme") == timedelta(hours=1)
    assert sla_for("review", config, "yelp-airport", ["safety_health"]) == timedelta(minutes=20)
    assert sla_for("post", config, "reddit-acme", ["legal_threat"]) == timedelta(minutes=20)
    assert sla_for("post", config, "reddit-acme", ["churn_threat"]) == timedelta(hours=1)


def test_sla_rules_apply_when_items_are_queued(fresh_db):
    add_classified(fresh_db, "yelp-downtown", "1", "food poisoning", "complaint", hours_ago=0,
                   urgency=["safety_health"])  # fmt: skip
    add_classified(fresh_db, "yelp-downtown", "2", "slow", "complaint", hours_ago=0)
    config = QueueConfig(sla_by_source={"yelp": timedelta(hours=12)}, source_types={"yelp-downtown": "yelp"})
    refresh_queue(fresh_db, config)
    allowed = sla_allowances(fresh_db)
    assert allowed[2] - allowed[1] == timedelta(hours=11, minutes=30)


def test_sla_keys_are_validated(tmp_path):
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"queue.sla_by_source.nope"):
        loads_config('[queue]\nsla_by_source = { nope = "1h" }\n', tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"queue.sla_by_source.yelp"):
        loads_config('[queue]\nsla_by_source = { yelp = "soon" }\n', tmp_path / "c.toml")
    config = loads_config('[queue]\nsla_by_source = { yelp = "12h" }\n', tmp_path / "c.toml")
    assert config.queue.sla_by_source == {"yelp": timedelta(hours=12)}


def test_team_members_cover_locations_sources_and_languages():
    dana = TeamMember("dana", locations=["downtown"], languages=["en"])
    sam = TeamMember("sam", sources=["reddit"])
    assert covers(dana, {"location": "downtown", "lang": "en", "source": "x"})
    assert not covers(dana, {"location": "airport", "lang": "en"})
    assert not covers(dana, {"location": "downtown", "lang": "es"})
    assert covers(dana, {"location": "downtown", "lang": None})  # unknown language: do not exclude
    assert covers(sam, {"source": "reddit-acme"}, source_type="reddit")
    assert not covers(sam, {"source": "reviews"}, source_type="schema_org")


def test_auto_assign_prefers_specialists_then_balances_open_items(fresh_db):
    for n in range(7):
        add_classified(fresh_db, "reviews", str(n), "bad", "complaint")
    fresh_db.execute("update mentions set location = 'downtown' where id <= 4")
    fresh_db.execute("update mentions set location = 'harbour' where id > 4")
    team = [TeamMember("dana", locations=["downtown"]), TeamMember("sam"), TeamMember("kim"),
            TeamMember("lee", locations=["airport"])]  # fmt: skip
    counts = refresh_queue(fresh_db, QueueConfig(auto_assign=True, team=team))
    assert counts.assigned == 7
    owners = {r["mention_id"]: r["assignee"] for r in fresh_db["queue_items"].rows}
    assert [owners[m] for m in (1, 2, 3, 4)] == ["dana"] * 4  # the downtown specialist
    assert sorted(owners[m] for m in (5, 6, 7)) == ["kim", "sam", "sam"]  # generalists share the rest
    assert "lee" not in owners.values()
    events = list(fresh_db.query("select actor from queue_events where action = 'assigned'"))
    assert {e["actor"] for e in events} == {"auto-assign"}


def test_team_config_is_validated(tmp_path):
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"team\[0\].locations\[0\]: unknown location"):
        loads_config('[[team]]\nname = "dana"\nlocations = ["mars"]\n', tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"team\[1\].name: duplicate"):
        loads_config('[[team]]\nname = "dana"\n[[team]]\nname = "dana"\n', tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"team\[0\].name: required"):
        loads_config("[[team]]\nsources = []\n", tmp_path / "c.toml")


def test_notes_are_kept_and_logged(fresh_db):
    add_classified(fresh_db, "reviews", "1", "bad", "complaint")
    refresh_queue(fresh_db, QueueConfig())
    add_note(fresh_db, 1, "Called her back; refund promised.", author="dana")
    with pytest.raises(QueueError, match="empty"):
        add_note(fresh_db, 1, "   ", author="dana")
    with pytest.raises(QueueError, match="no queue item 9"):
        add_note(fresh_db, 9, "x", author="dana")
    detail = item_detail(fresh_db, 1)
    assert [n["text"] for n in detail["notes"]] == ["Called her back; refund promised."]
    assert detail["events"][-1]["action"] == "note" and detail["events"][-1]["actor"] == "dana"


def _an_hour_passes(db):
    """Move the queue's clock marks back, as if the next crawl came an hour after the reply."""
    earlier = (datetime.now(UTC) - HOUR).replace(microsecond=0).isoformat()
    db.execute(
        "update queue_items set updated_at = ?, "
        "first_replied_at = case when first_replied_at is null then null else ? end",
        [earlier, earlier],
    )
    db.execute("update mentions set updated_at = case when updated_at < ? then updated_at else ? end, "
               "first_seen_at = case when first_seen_at < ? then first_seen_at else ? end", [earlier] * 4)  # fmt: skip


def _edit(db, source, external_id, text, rating):
    record_mentions(db, source, [{"external_id": external_id, "text": text, "rating": rating, "kind": "review"}])


@pytest.mark.parametrize(
    "before, after, text_changed, outcome",
    [(1, 4, True, "recovered"), (2, 1, False, "worse"), (1, 1, True, "unchanged"), (None, None, True, "edited")],
)
def test_recovery_outcome(before, after, text_changed, outcome):
    assert recovery_outcome(before, after, text_changed) == outcome


def test_a_raised_rating_after_our_reply_is_a_recovery_and_does_not_reopen(fresh_db):
    add_classified(fresh_db, "reviews", "1", "cold food", "complaint", rating=1)
    refresh_queue(fresh_db, QueueConfig())
    mark_replied(fresh_db, 1, "So sorry - we'd love to make it right.", actor="dana")
    assert refresh_queue(fresh_db, QueueConfig()).recoveries == 0  # no edit yet
    _an_hour_passes(fresh_db)

    _edit(fresh_db, "reviews", "1", "cold food, but they called me and fixed it", 4)
    counts = refresh_queue(fresh_db, QueueConfig())

    assert counts.recoveries == 1 and counts.reopened == 0
    detail = item_detail(fresh_db, 1)
    assert detail["state"] == "replied"
    recovery = detail["recovery"]
    assert (recovery["rating_before"], recovery["rating_after"], recovery["outcome"]) == (1, 4, "recovered")
    assert recovery["text_changed"] == 1
    assert detail["events"][-1]["action"] == "recovered" and "1★ → 4★" in detail["events"][-1]["detail"]
    assert refresh_queue(fresh_db, QueueConfig()).recoveries == 0  # recorded once


def test_an_edit_that_stays_angry_reopens_and_a_later_recovery_updates_the_record(fresh_db):
    add_classified(fresh_db, "reviews", "1", "cold food", "complaint", rating=2)
    refresh_queue(fresh_db, QueueConfig())
    mark_replied(fresh_db, 1, "Sorry!", actor="dana")
    _an_hour_passes(fresh_db)
    _edit(fresh_db, "reviews", "1", "cold food and nobody called me back", 1)
    counts = refresh_queue(fresh_db, QueueConfig())
    assert counts.recoveries == 1 and counts.reopened == 1
    assert item_detail(fresh_db, 1)["recovery"]["outcome"] == "worse"
    assert get_item(fresh_db, 1)["state"] == "new"

    first = get_item(fresh_db, 1)["first_replied_at"]
    mark_replied(fresh_db, 1, "Calling you now.", actor="dana")
    # the first reply time is kept: a recovery compares with the rating when we first answered
    assert get_item(fresh_db, 1)["first_replied_at"] == first
    _an_hour_passes(fresh_db)
    _edit(fresh_db, "reviews", "1", "they fixed it in the end", 5)
    refresh_queue(fresh_db, QueueConfig())
    recovery = item_detail(fresh_db, 1)["recovery"]
    assert (recovery["rating_before"], recovery["rating_after"], recovery["outcome"]) == (2, 5, "recovered")


def test_edits_before_the_reply_are_not_recoveries(fresh_db):
    add_classified(fresh_db, "reviews", "1", "cold food", "complaint", rating=1)
    refresh_queue(fresh_db, QueueConfig())
    _edit(fresh_db, "reviews", "1", "cold food!!", 1)
    fresh_db.execute("update mention_revisions set seen_at = '2000-01-01T00:00:00+00:00'")
    mark_replied(fresh_db, 1, "Sorry!")
    assert refresh_queue(fresh_db, QueueConfig()).recoveries == 0


def test_response_metrics(fresh_db):
    now = datetime.now(UTC)
    for n in range(5):
        add_classified(fresh_db, "reviews", str(n), "bad", "complaint", rating=1, hours_ago=30)
    refresh_queue(fresh_db, QueueConfig())
    # SLA for reviews is 24 h and the posts are 30 h old: all five are overdue by now.
    assign(fresh_db, 1, "dana")
    mark_replied(fresh_db, 1, "Sorry", actor="dana")
    mark_replied(fresh_db, 2, "Sorry", actor="sam")
    fresh_db.execute(
        "update queue_items set first_replied_at = ? where id = 2", [(now - timedelta(hours=28)).isoformat()]
    )
    dismiss(fresh_db, 3, reason="spam")
    _edit(fresh_db, "reviews", "1", "fixed!", 5)
    refresh_queue(fresh_db, QueueConfig())

    overall, result = response_metrics(fresh_db, now - timedelta(days=2), now + HOUR, group_by="assignee", now=now)
    assert (overall.items, overall.replied, overall.dismissed, overall.open) == (5, 2, 1, 2)
    assert overall.response_rate == 0.5  # 2 of the 4 that needed an answer
    assert overall.sla_breaches == 3 and overall.breached_open == 2  # item 1 late, items 4-5 open past due
    assert 119 <= overall.median_first_response_minutes <= 30 * 60 + 1  # 2 h and ~30 h
    assert overall.recoveries == {"recovered": 1} and overall.recovery_rate == 1.0
    assert overall.mean_rating_change == 4.0
    assert result["dana"].replied == 1 and "(none)" in result


@pytest.mark.sqlite_only(reason="a version-4 store exists only as a SQLite file")
def test_a_v4_database_migrates_with_reply_times_backfilled(tmp_path, monkeypatch):
    import monitor.store as store

    monkeypatch.setattr(store.migrations, "SCHEMA_VERSION", 4)
    db = store.open_db(tmp_path / "old.db")
    add_classified(db, "reviews", "1", "bad", "complaint", rating=1)
    db["queue_items"].insert({"mention_id": 1, "state": "replied", "priority": 1.0, "reason": "complaint",
                              "sla_due_at": "2099-01-01T00:00:00+00:00", "created_at": "2026-11-01T00:00:00+00:00",
                              "updated_at": "2026-11-01T00:00:00+00:00"})  # fmt: skip
    db["replies"].insert({"queue_item_id": 1, "text": "Sorry", "replied_by": "dana", "channel": "manual",
                          "replied_at": "2026-11-01T02:00:00+00:00"})  # fmt: skip
    db.conn.close()
    monkeypatch.setattr(store.migrations, "SCHEMA_VERSION", len(store.MIGRATIONS))

    db = store.open_db(tmp_path / "old.db")

    assert store.schema_version(db) == len(store.MIGRATIONS)
    assert get_item(db, 1)["first_replied_at"] == "2026-11-01T02:00:00+00:00"
    overall, _ = response_metrics(db, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert (overall.replied, overall.open, overall.sla_breaches) == (1, 0, 0)


def test_csv_export_neutralises_formulas():
    items = [
        {"id": 1, "text": "=HYPERLINK(\"http://evil\",\"x\")", "author": "+cmd|' /C calc'!A0", "title": "-2+3",
         "topics": '["wait_time", "staff_attitude"]', "rating": 1.0, "source": "@SUM(A1)"},
        {"id": 2, "text": "fine, = inside is ok", "author": "pat"},
    ]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(queue_csv(items))))
    assert rows[0]["text"].startswith("'=") and rows[0]["author"].startswith("'+")
    assert rows[0]["title"] == "'-2+3" and rows[0]["source"] == "'@SUM(A1)"
    assert rows[0]["topics"] == "wait_time;staff_attitude" and rows[0]["rating"] == "1.0"
    assert rows[1]["text"] == "fine, = inside is ok"


def test_inbox_filters(fresh_db):
    add_classified(fresh_db, "reviews", "1", "slow service downtown", "complaint", topics=["wait_time"], hours_ago=30)
    add_classified(fresh_db, "reddit", "2", "rude staff", "complaint", topics=["staff_attitude"], kind="post",
                   hours_ago=0.1)  # fmt: skip
    fresh_db.execute("update mentions set location = 'downtown', brand = 'Acme' where id = 1")
    refresh_queue(fresh_db, QueueConfig())
    assign(fresh_db, 2, "sam")
    from monitor.queue.listing import InboxFilter

    def ids(**kw):
        return [r["mention_id"] for r in list_items(fresh_db, filters=InboxFilter(**kw))]

    assert ids(topic="wait_time") == [1] and ids(topic="staff_attitude") == [2]
    assert ids(location="downtown") == [1] and ids(brand="Acme") == [1]
    assert ids(sla="overdue") == [1] and ids(sla="due_soon") == [2] and ids(sla="on_time") == []
    assert ids(assignee="sam") == [2] and ids(states=("assigned",)) == [2]
    assert ids(search="rude") == [2]


def test_reply_page_urls():
    assert (
        reply_page_url("hackernews", {"external_id": "hn:123", "url": "x"})
        == "https://news.ycombinator.com/reply?id=123"
    )
    assert reply_page_url("yelp", {"url": "https://www.yelp.com/biz/x"}) == "https://biz.yelp.com/"
    assert reply_page_url("schema_org", {"url": "https://example.com/r/1"}) == "https://example.com/r/1"
    assert reply_page_url("schema_org", {"url": "javascript:alert(1)"}) == "#"


@pytest.mark.parametrize("few, many, plan", [(10_000, 20_000, "matches"), (2, 10_000, "queue_set"),
                                             (2, 3, "queue_probe")])  # fmt: skip
@pytest.mark.sqlite_only(reason="SQLite's FTS5 search plans (PostgreSQL has one: tests/test_pg_queue.py)")
def test_every_search_plan_gives_the_same_page(fresh_db, monkeypatch, few, many, plan):
    import monitor.queue.listing as listing
    from monitor.queue.listing import InboxFilter, choose_search_plan

    for n in range(30):
        text = ("cold latte again" if n % 3 == 0 else "slow service") + (" downtown" if n % 2 else "")
        add_classified(fresh_db, "reviews", str(n), text, "complaint", rating=1 + n % 3, hours_ago=n)
    refresh_queue(fresh_db, QueueConfig())
    dismiss(fresh_db, 1)
    expected = [r["id"] for r in list_items(fresh_db, filters=InboxFilter(search="latte"), limit=100)]
    monkeypatch.setattr(listing, "FEW_MATCHES", few)
    monkeypatch.setattr(listing, "MANY_MATCHES", many)
    assert choose_search_plan(fresh_db, "latte") == plan
    for filters in (InboxFilter(search="latte"), InboxFilter(search="cold downtown", states=("new", "dismissed"))):
        page = [r["id"] for r in list_items(fresh_db, filters=filters, limit=5, offset=1)]
        monkeypatch.setattr(listing, "FEW_MATCHES", 10**9)
        reference = [r["id"] for r in list_items(fresh_db, filters=filters, limit=5, offset=1)]
        monkeypatch.setattr(listing, "FEW_MATCHES", few)
        assert page == reference and page
    assert len(expected) == 9  # ten "cold latte" mentions, one dismissed


def test_auto_assign_uses_the_location_the_shift_stage_inferred(fresh_db):
    add_classified(fresh_db, "reddit", "1", "rude staff at the airport", "complaint", kind="post")
    fresh_db["incident_estimates"].insert({"mention_id": 1, "location": "airport", "basis": "post_time"})
    team = [TeamMember("dana", locations=["downtown"]), TeamMember("lee", locations=["airport"])]
    refresh_queue(fresh_db, QueueConfig(auto_assign=True, team=team))
    assert get_item(fresh_db, 1)["assignee"] == "lee"


def test_our_own_reply_in_the_thread_does_not_reopen_but_a_customer_reply_does(fresh_db):
    add_classified(fresh_db, "reddit", "t3_a", "is anyone there?", "complaint", kind="post")
    refresh_queue(fresh_db, QueueConfig())
    mark_replied(fresh_db, 1, "We are!", channel="reddit", external_id="t1_ours")
    _an_hour_passes(fresh_db)
    record_mentions(fresh_db, "reddit", [{"external_id": "t1_ours", "parent_id": "t3_a", "text": "We are!",
                                          "kind": "comment"}])  # fmt: skip
    assert refresh_queue(fresh_db, QueueConfig()).reopened == 0
    record_mentions(fresh_db, "reddit", [{"external_id": "t1_theirs", "parent_id": "t3_a", "text": "still broken",
                                          "kind": "comment"}])  # fmt: skip
    before = get_item(fresh_db, 1)["sla_due_at"]
    assert refresh_queue(fresh_db, QueueConfig()).reopened == 1
    item = get_item(fresh_db, 1)
    assert item["state"] == "new" and item["sla_due_at"] > before  # a fresh SLA from the new activity


def _reddit_item(tmp_path):
    """A config with one Reddit source and a store holding one queued Reddit post."""
    from monitor.config import loads_config
    from monitor.store import open_db

    config = loads_config(
        f'[storage]\npath = "{tmp_path / "c.db"}"\n[[sources]]\nname = "reddit"\ntype = "reddit"\nsearch = ["acme"]\n',
        tmp_path / "config.toml",
    )
    db = open_db(config.storage_path)
    add_classified(db, "reddit", "t3_a", "anyone?", "complaint", kind="post")
    refresh_queue(db, QueueConfig())
    return config, db


def test_two_people_posting_at_once_post_one_reddit_reply(tmp_path, monkeypatch):
    import threading
    import time as time_module

    import spiders.reddit
    from monitor.queue.replying import post_reply_now
    from monitor.store import open_db

    config, db = _reddit_item(tmp_path)
    posted = []

    def slow_post(source, parent, text):
        time_module.sleep(0.2)
        posted.append(text)
        return f"t1_{len(posted)}"

    monkeypatch.setattr(spiders.reddit, "post_reply", slow_post)
    outcomes = []

    def attempt(name):
        conn = open_db(config.storage_path, migrate=False)
        try:
            post_reply_now(conn, config, 1, f"hello from {name}", actor=name)
            outcomes.append("posted")
        except QueueError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in ("dana", "sam")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(posted) == 1 and outcomes.count("posted") == 1
    assert db["replies"].count == 1 and get_item(db, 1)["state"] == "replied"


def test_a_failed_reddit_post_gives_the_item_back(tmp_path, monkeypatch):
    import spiders.reddit
    from monitor.queue.replying import ReplyFailed, post_reply_now

    config, db = _reddit_item(tmp_path)
    assign(db, 1, "dana")

    def refuse(source, parent, text):
        raise spiders.reddit.RedditReplyError("reddit: Reddit refused the reply: RATELIMIT")

    monkeypatch.setattr(spiders.reddit, "post_reply", refuse)
    with pytest.raises(ReplyFailed, match="RATELIMIT"):
        post_reply_now(db, config, 1, "hello", actor="dana")
    item = item_detail(db, 1)
    assert item["state"] == "assigned" and item["replies"] == [] and item["first_replied_at"] is None
    assert "reply not posted" in item["events"][-1]["detail"]


def test_refresh_only_looks_at_what_changed_since_the_last_one(fresh_db):
    add_classified(fresh_db, "reviews", "1", "cold food", "complaint", rating=1)
    refresh_queue(fresh_db, QueueConfig())
    mark_replied(fresh_db, 1, "Sorry!")
    _an_hour_passes(fresh_db)
    marks = dict(fresh_db.execute("select key, value from meta where key like 'queue.%'").fetchall())
    assert marks == {"queue.mention_mark": "1", "queue.revision_mark": "0"}
    _edit(fresh_db, "reviews", "1", "cold food, still waiting", 1)  # revision 1, above the mark
    assert refresh_queue(fresh_db, QueueConfig()).reopened == 1
    assert fresh_db.execute("select value from meta where key = 'queue.revision_mark'").fetchone()[0] == "1"
    assert refresh_queue(fresh_db, QueueConfig()).reopened == 0  # nothing new since
