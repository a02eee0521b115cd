# ruff: noqa: F811 -- the fixtures from tests/pg.py are imported by name, and test arguments name them

"""The reply queue and the inbox on both backends: enqueue, assign, compare-and-set state changes, search (words,
what looks like a phrase, hostile input), filters, counts, response metrics and the inbox's time budget.

The same store is built on SQLite and on a real PostgreSQL server (tests/pg.py), with every time fixed, and each
query must answer the same on both; ``any_target`` runs a behaviour once per backend."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import QueueConfig, TeamMember
from monitor.db import dialect_of
from monitor.queue import listing
from monitor.queue.items import (
    QueueError,
    assign,
    bulk_change,
    dismiss,
    get_item,
    mark_replied,
    refresh_queue,
    set_state,
)
from monitor.queue.listing import Budget, InboxFilter, author_mentions, inbox_counts, item_detail, list_items
from monitor.queue.metrics import response_metrics
from monitor.store import open_db, record_mentions

from .pg import any_db, pg_server, pg_url  # noqa: F401

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = QueueConfig(team=[TeamMember(name="dana"), TeamMember(name="sam")])

# (source, external id, kind, title, text, label, rating, hours before NOW it was posted (None: no time), topics,
#  urgency, author, location, brand)
MENTIONS = [
    ("reddit", "t1", "post", "Cold coffee", "The coffee was cold again", "complaint", None, 3, ["food_quality"],
     [], "spud", None, "acme"),
    ("reddit", "t2", "post", None, "Staff were rude and the coffee was cold", "complaint", None, 30,
     ["staff"], ["churn_threat"], "spud", None, "acme"),
    ("reviews", "r1", "review", "Dirty", "Dirty tables near the window", "complaint", 2, 1, ["cleanliness"], [],
     "kim", "downtown", "acme"),
    ("reviews", "r2", "review", None, "The shop near the station serves cold coffee", "complaint", 1, 50,
     ["food_quality"], ["safety_health"], "lee", "airport", "acme"),
    ("play", "p1", "review", None, "App crashes at checkout, the wi-fi is down", "complaint", 1, 5,
     ["app_website"], [], "spud", None, "acme"),
    ("play", "p2", "review", None, "Don't install: it crashes", "complaint", 2, 80, ["app_website"], [], "max",
     None, "rival"),
    ("reddit", "t3", "post", "Question", "Do you open on Sunday? Asking for a café visit", "neutral", None, 2,
     [], ["question"], "ana", None, "acme"),
    ("reviews", "r3", "review", None, "Great latte", "praise", 5, 4, [], [], "kim", "downtown", "acme"),
    ("reddit", "t4", "post", None, "Refund still missing * \"quoted\" 'single' (brackets) OR AND NOT", "complaint",
     None, None, ["price_billing"], [], "spud", None, "acme"),
    ("reviews", "r4", "review", None, "Cold food, COLD coffee, cold staff", "complaint", 1, 200, ["food_quality"],
     ["legal_threat"], "lee", "downtown", "rival"),
    ("reddit", "t5", "post", None, "Waited 40 minutes for a coffee", "complaint", None, 10, ["wait_time"], [],
     "[deleted]", None, "acme"),
    ("reddit", "t6", "post", None, "Lost my order ümlaut 你好 咖啡", "complaint", None, 7, ["wait_time"], [], "spud",
     None, "acme"),
]  # fmt: skip


def _fill(db: Any) -> None:
    """The same store on either backend: the mentions, their classifications, the queue, a day of work on it,
    and every time that would come from the clock fixed, so both stores hold the same values."""
    for i, (
        source,
        ext,
        kind,
        title,
        text,
        label,
        rating,
        hours,
        topics,
        urgency,
        author,
        location,
        brand,
    ) in enumerate(MENTIONS):
        posted = None if hours is None else (NOW - timedelta(hours=hours)).isoformat()
        mention = {"external_id": ext, "kind": kind, "title": title, "text": text, "rating": rating,
                   "posted_at": posted, "author": author, "author_reach": 10 * i, "location": location,
                   "brand": brand, "backfill": hours is None}  # fmt: skip
        [mention_id] = record_mentions(db, source, [mention]).mention_ids
        probs = {"complaint": 0.9, "neutral": 0.05, "praise": 0.05} if label == "complaint" else {label: 0.9}
        db["classifications"].insert(
            {"mention_id": mention_id, "label": label, "score": 0.9, "probs": json.dumps(probs),
             "topics": json.dumps(topics), "urgency": json.dumps(urgency), "lang": "en", "model": "test",
             "classified_at": NOW.isoformat()}
        )  # fmt: skip
        first_seen = (NOW - timedelta(hours=(hours or 0) + 0.5)).isoformat()
        db.execute("update mentions set first_seen_at = ? where id = ?", [first_seen, mention_id])
    # A comment under the first post (the thread) and one by the same author elsewhere (author_mentions).
    record_mentions(db, "reddit", [{"external_id": "c1", "kind": "comment", "text": "same here", "parent_id": "t1",
                                    "author": "kim", "posted_at": (NOW - timedelta(hours=2)).isoformat()},
                                   {"external_id": "c2", "kind": "comment", "text": "undated", "parent_id": "t1",
                                    "author": "spud"}])  # fmt: skip
    db.execute("update mentions set first_seen_at = ? where kind = 'comment'", [NOW.isoformat()])
    # The shift stage placed a Reddit post at the airport.
    when = NOW.isoformat()
    estimate = {"mention_id": 2, "location": "airport", "window_start": when, "window_end": when}
    db["incident_estimates"].insert({**estimate, "basis": "posted_at", "detail": "", "estimated_at": when})
    counts = refresh_queue(db, CONFIG, now=NOW)
    assert (counts.created, counts.assigned) == (11, 0)
    assign(db, 1, "dana")
    assign(db, 2, "sam")
    dismiss(db, 3, reason="spam")
    mark_replied(db, 4, "Sorry about that")
    mark_replied(db, 5, "We are on it")
    mark_replied(db, 6, "Thanks")
    assert bulk_change(db, [7, 8, 6], "assign", "lead", user="sam").done == [7, 8]
    # The customer of item 4 raised the stars after our reply: a recovery. Item 6's lowered them: it reopens.
    # (Handled long ago, so the edit is later than the handling whatever the clock says.)
    db.execute("update queue_items set updated_at = '2000-01-01T00:00:00+00:00'")
    record_mentions(db, "reviews", [{"external_id": "r2", "kind": "review", "rating": 4, "author": "lee",
                                     "text": "The shop near the station serves cold coffee. Fixed!",
                                     "posted_at": (NOW - timedelta(hours=50)).isoformat(), "location": "airport",
                                     "brand": "acme"}])  # fmt: skip
    record_mentions(db, "play", [{"external_id": "p2", "kind": "review", "rating": 1, "author": "max",
                                  "text": "Don't install: it crashes", "brand": "rival",
                                  "posted_at": (NOW - timedelta(hours=80)).isoformat()}])  # fmt: skip
    counts = refresh_queue(db, CONFIG, now=NOW)
    assert (counts.recoveries, counts.reopened) == (2, 1)
    # Fixed times for what the clock wrote: created, first reply (one before its post: clamped to 0 minutes, one
    # with another UTC offset), revisions, and a junk post time that costs its item the response time only.
    for item_id in range(1, 12):
        db.execute("update queue_items set created_at = ?, updated_at = ? where id = ?",
                   [(NOW - timedelta(hours=item_id)).isoformat(), NOW.isoformat(), item_id])  # fmt: skip
    replied = {4: (NOW - timedelta(hours=40)).isoformat(), 5: (NOW - timedelta(hours=6)).isoformat(),
               6: "2026-11-20T13:30:00+02:00"}  # fmt: skip
    for item_id, at in replied.items():
        db.execute("update queue_items set first_replied_at = ? where id = ?", [at, item_id])
    db.execute("update mention_revisions set seen_at = ?", [NOW.isoformat()])
    db.execute("update mentions set posted_at = 'not a time' where id = 6")
    db.execute("update queue_items set sla_due_at = ? where id = 10", [(NOW + timedelta(minutes=20)).isoformat()])


@pytest.fixture
def both(tmp_path: Path, pg_url: str) -> Any:
    """The same store on SQLite and on PostgreSQL."""
    sqlite, pg = open_db(tmp_path / "queue.db"), open_db(pg_url)
    for db in (sqlite, pg):
        _fill(db)
    yield sqlite, pg
    sqlite.conn.close()
    pg.conn.close()


FILTERS = [
    InboxFilter(),
    InboxFilter(states=("new", "assigned", "replied", "dismissed")),
    InboxFilter(states=("replied",)),
    InboxFilter(source="reviews"),
    InboxFilter(location="airport"),  # one configured, one placed by the shift stage
    InboxFilter(location="downtown", states=("new", "assigned", "replied", "dismissed")),
    InboxFilter(brand="rival"),
    InboxFilter(label="neutral"),
    InboxFilter(topic="food_quality"),
    InboxFilter(topic="app_website", states=("new", "assigned", "replied", "dismissed")),
    InboxFilter(assignee="sam"),
    InboxFilter(sla="overdue"),
    InboxFilter(sla="due_soon"),
    InboxFilter(sla="on_time"),
    InboxFilter(sla="no_clock"),
    InboxFilter(source="reddit", sla="overdue", assignee="dana"),
]
SEARCHES = {
    # what a person types → the items whose mention has every word (case-insensitive), any state
    "coffee": [1, 2, 4, 9, 10],
    "COLD coffee": [1, 2, 4, 9],
    '"cold coffee"': [1, 2, 4, 9],  # quotes are no phrase syntax: every word, in any order
    "coffee cold": [1, 2, 4, 9],
    "NEAR cold coffee": [4],  # NEAR is a word here (r2 says "near")
    "near": [3, 4],
    "cold OR rude": [],  # OR is a word too, which no mention has
    "OR AND NOT": [8],
    "*": [],
    "coff*": [],  # no prefix search
    '"': [],
    "'single'": [8],
    "(brackets)": [8],
    "wi-fi": [5],
    "don't": [6],
    "café": [7],
    "你好": [11],
    "\x00cold\x01 \x1bcoffee\x7f": [1, 2, 4, 9],  # control characters are spaces
    "cold \x1b[31mcoffee": [],  # so "[31mcoffee" is one word, in no mention
    "cold \ud800": [1, 2, 4, 9],  # and so is a lone surrogate
    "   ": [],
    "nothing-matches-this": [],
}
ALL_STATES = ("new", "assigned", "replied", "dismissed")


def _without_clock_times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("at", "replied_at", "updated_at", "detected_at", "rowid")}


def test_the_queue_is_the_same_on_both(both):
    sqlite, pg = both
    for db in both:
        rows = list(db.query("select id, mention_id, state, assignee, priority, reason, sla_due_at, created_at, "
                             "first_replied_at from queue_items order by id"))  # fmt: skip
        assert [(r["state"], r["assignee"]) for r in rows] == [
            ("assigned", "dana"), ("assigned", "sam"), ("dismissed", None), ("replied", None), ("replied", None),
            ("new", None), ("assigned", "sam"), ("assigned", "sam"), ("new", None), ("new", None), ("new", None),
        ]  # fmt: skip
    tables = ("queue_items", "queue_events", "replies", "recoveries")
    for table in tables:
        key = "queue_item_id" if table == "recoveries" else "id"
        a, b = (list(db.query(f"select * from {table} order by {key}")) for db in both)
        assert [_without_clock_times(r) for r in a] == [_without_clock_times(r) for r in b], table
    assert [r["outcome"] for r in pg.query("select outcome from recoveries order by queue_item_id")] == [
        "recovered", "worse"]  # fmt: skip


@pytest.mark.parametrize("index", range(len(FILTERS)))
def test_filters_list_and_count_the_same(both, index):
    sqlite, pg = both
    filters = FILTERS[index]
    lists = [list_items(db, filters=filters, now=NOW) for db in both]
    assert lists[0] == lists[1]
    assert lists[0], "each filter shows something"
    counts = [inbox_counts(db, filters, NOW) for db in both]
    assert counts[0] == counts[1]


def test_pages_keep_one_order(both):
    """Ties (equal priority, an item without a clock) sort the same, so pages neither repeat nor skip items."""
    for db in both:
        db.execute("update queue_items set priority = 1.0")
    pages = [[list_items(db, filters=InboxFilter(states=ALL_STATES), limit=3, offset=o, now=NOW) for o in (0, 3, 6, 9)]
             for db in both]  # fmt: skip
    assert pages[0] == pages[1]
    ids = [item["id"] for page in pages[1] for item in page]
    assert sorted(ids) == list(range(1, 12))


@pytest.mark.parametrize("search", list(SEARCHES))
def test_search_finds_the_same_items(both, search):
    expected = SEARCHES[search]
    for db in both:
        found = list_items(db, filters=InboxFilter(states=ALL_STATES, search=search), now=NOW)
        assert sorted(item["id"] for item in found) == expected, dialect_of(db).name
    lists = [list_items(db, filters=InboxFilter(search=search), now=NOW) for db in both]
    assert lists[0] == lists[1]
    counts = [inbox_counts(db, InboxFilter(search=search), NOW) for db in both]
    assert counts[0] == counts[1]
    total = counts[1].states
    assert sum(n for n in total.values() if n is not None) == len(expected)


def test_a_term_with_punctuation_inside_is_a_phrase_on_sqlite_only(both):
    """A deliberate difference (docs/postgres-port.md): SQLite quotes each term, and a quoted term whose characters
    split into several words ("NEAR(cold") is a phrase, those words side by side; PostgreSQL's plainto_tsquery
    (``Dialect.fts_match``) wants each of the words anywhere. Words joined the same way in the text match on both."""
    sqlite, pg = both
    found = [[it["id"] for it in list_items(db, filters=InboxFilter(states=ALL_STATES, search="NEAR(cold coffee)"),
                                            now=NOW)] for db in both]  # fmt: skip
    assert found == [[], [4]]  # r2: "near the station serves cold coffee"
    for search in ("wi-fi", "don't"):
        found = [[it["id"] for it in list_items(db, filters=InboxFilter(states=ALL_STATES, search=search), now=NOW)]
                 for db in both]  # fmt: skip
        assert found[0] == found[1] != []


def test_search_combines_with_filters(both):
    for filters in (
        InboxFilter(search="coffee", source="reviews", states=ALL_STATES),
        InboxFilter(search="cold", topic="food_quality", sla="overdue"),
        InboxFilter(search="cold coffee", assignee="dana"),
        InboxFilter(search="coffee", label="complaint", location="airport", states=ALL_STATES),
    ):
        lists = [list_items(db, filters=filters, now=NOW) for db in both]
        assert lists[0] == lists[1], filters
        counts = [inbox_counts(db, filters, NOW) for db in both]
        assert counts[0] == counts[1], filters


@pytest.mark.parametrize("queue_set_max", [0, 10_000])  # 0: always the GIN index; else: item by item
def test_both_postgres_search_plans_find_what_sqlite_finds(both, monkeypatch, queue_set_max):
    """PostgreSQL matches a small queue set item by item (``ts_match_vq``) and a large one through the GIN index
    (``@@``): the same items, pages and counts either way, and the same as SQLite's."""
    sqlite, pg = both
    monkeypatch.setattr(listing, "PG_QUEUE_SET_MAX", queue_set_max)
    monkeypatch.setattr(listing, "COUNT_BUDGET", 30.0)  # the numbers, not the speed: no "—" on a busy machine
    for search in SEARCHES:
        for filters in (InboxFilter(search=search), InboxFilter(search=search, states=ALL_STATES),
                        InboxFilter(search=search, label="complaint")):  # fmt: skip
            lists = [list_items(db, filters=filters, now=NOW) for db in both]
            assert lists[0] == lists[1], (queue_set_max, filters)
            counts = [inbox_counts(db, filters, NOW) for db in both]
            assert counts[0] == counts[1], (queue_set_max, filters)
            # The inbox page finds the open matches once for its list and counts (None on SQLite: not used).
            matched = listing.open_matches(pg, filters)
            assert matched is None if queue_set_max == 0 else matched is not None
            assert list_items(pg, filters=filters, now=NOW, matched=matched) == lists[0], filters
            assert inbox_counts(pg, filters, NOW, matched) == counts[0], filters
            assert listing.open_matches(sqlite, filters) is None


@pytest.mark.parametrize("group_by", [None, "assignee", "source", "location"])
def test_response_metrics_are_the_same(both, group_by):
    since, until = NOW - timedelta(days=30), NOW
    results = [response_metrics(db, since, until, group_by=group_by, now=NOW) for db in both]
    (overall_a, groups_a), (overall_b, groups_b) = results
    assert overall_a.as_dict() == overall_b.as_dict()
    assert {k: v.as_dict() for k, v in groups_a.items()} == {k: v.as_dict() for k, v in groups_b.items()}
    assert list(groups_a) == list(groups_b)
    if group_by is None:
        # 11 items, 1 dismissed, 3 replied: 4 after 600 minutes, 5 before its post (0), 6 with a junk post time
        assert (overall_b.items, overall_b.dismissed, overall_b.replied) == (11, 1, 3)
        assert overall_b.response_rate == 0.3
        assert overall_b.median_first_response_minutes == 300.0
        assert overall_b.recoveries == {"recovered": 1, "worse": 1}


def test_metrics_keep_a_junk_start_out_of_the_times(both):
    """An unreadable post time: no response time for that item (``greatest`` would have made it 0 minutes)."""
    for db in both:
        db.execute("update mentions set posted_at = 'junk', first_seen_at = 'junk' where id = 4")
    results = [response_metrics(db, NOW - timedelta(days=30), NOW, now=NOW)[0] for db in both]
    assert results[0].as_dict() == results[1].as_dict()
    assert results[1].median_first_response_minutes == 0.0  # only item 5's (replied before its post) is left


def test_author_and_detail_look_ups_are_the_same(both):
    for author, sources, exclude in (
        ("spud", ["reddit", "play"], 1),
        ("lee", ["reviews"], 0),
        ("[deleted]", ["reddit"], 0),
    ):
        found = [author_mentions(db, sources, author, exclude) for db in both]
        assert found[0] == found[1]
    assert [m["mention_id"] for m in found[1] or []] == []
    details = [item_detail(db, 1) for db in both]
    for detail in details:
        detail["events"] = [_without_clock_times(e) for e in detail["events"]]
    assert details[0]["thread"] == details[1]["thread"]
    assert [c["text"] for c in details[1]["thread"]["children"]] == ["undated", "same here"]  # undated first
    assert {k: v for k, v in details[0].items() if k != "thread"} == {k: v for k, v in details[1].items()
                                                                        if k != "thread"}  # fmt: skip


def test_handled_counts_are_capped_on_both(both, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 1)
    counts = [inbox_counts(db, InboxFilter(), NOW) for db in both]
    assert counts[0] == counts[1]
    assert counts[1].states["replied"] == 1 and counts[1].capped == {"replied", "dismissed"}
    monkeypatch.setattr(listing, "COUNT_BUDGET", 0.0)
    monkeypatch.setattr(listing, "BUDGET_STEPS", 1)
    for db in both:  # no time at all: no number, and the page still renders
        assert inbox_counts(db, InboxFilter(), NOW).states["replied"] is None


# ---------------------------------------------------------------- compare-and-set, on each backend


@pytest.fixture(params=["sqlite", "postgresql"])
def any_target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A filled store's target (path or URL) and one connection to it, once per backend."""
    target = request.getfixturevalue("pg_url") if request.param == "postgresql" else tmp_path / "cas.db"
    db = open_db(target)
    _fill(db)
    yield target, db
    db.conn.close()


def test_compare_and_set_refuses_a_stale_state(any_target):
    target, db = any_target
    other = open_db(target)  # a colleague's session
    try:
        item = get_item(db, 10)
        assert item["state"] == "new"
        assign(other, 10, "sam", actor="sam")
        events = db["queue_events"].count
        with pytest.raises(QueueError, match="changed by someone else"):
            set_state(db, 10, item["state"], "dismissed", "dana")
        assert get_item(db, 10)["state"] == "assigned" and get_item(db, 10)["assignee"] == "sam"
        assert db["queue_events"].count == events  # the refused change left nothing behind
        with pytest.raises(QueueError, match="cannot move to replied"):
            mark_replied(db, 3, "too late")  # dismissed
        result = bulk_change(other, [10, 3, 11, 999], "dismiss", "sam", reason="dupe")
        assert result.done == [10, 11] and result.skipped == {"already dismissed": [3], "not found": [999]}
        assert get_item(db, 11)["state"] == "dismissed"
    finally:
        other.conn.close()


def test_refresh_enqueues_once_and_auto_assigns(any_target):
    _target, db = any_target
    record_mentions(db, "reddit", [{"external_id": "t9", "kind": "post", "text": "rude staff", "author": "zed",
                                    "posted_at": (NOW - timedelta(hours=1)).isoformat()}])  # fmt: skip
    mention_id = db.execute("select id from mentions where external_id = 't9'").fetchone()[0]
    db["classifications"].insert({"mention_id": mention_id, "label": "complaint", "probs": '{"complaint": 0.8}',
                                  "topics": "[]", "urgency": "[]"})  # fmt: skip
    config = QueueConfig(team=CONFIG.team, auto_assign=True)
    counts = refresh_queue(db, config, now=NOW)
    assert counts.created == 1 and counts.assigned == 5  # the new item and every new one without an assignee
    again = refresh_queue(db, config, now=NOW)
    assert (again.created, again.assigned) == (0, 0)
    [row] = db.query("select state, assignee, sla_due_at from queue_items where mention_id = ?", [mention_id])
    assert row["state"] == "assigned" and row["sla_due_at"] == NOW.isoformat()  # posted 1 h before, 1 h SLA


# ---------------------------------------------------------------- the time budget on PostgreSQL

ENDLESS = "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"


def test_a_query_past_its_budget_is_stopped_on_postgres(pg_url: str):
    import psycopg

    db = open_db(pg_url)
    try:
        started = time.monotonic()
        with Budget(db, 0.05) as budget:
            assert budget.run(ENDLESS, []) is None
        with Budget(db, 5) as budget, pytest.raises(psycopg.errors.UndefinedTable):
            budget.run("select * from no_such_table", [])  # other errors are not swallowed
        assert time.monotonic() - started < 5
        assert db.execute("select current_setting('statement_timeout')").fetchone()[0] == "0"
        assert not db.in_transaction
        with Budget(db, 5) as budget:
            assert budget.run("select ? + 1", [1]) == [(2,)]
        with Budget(db, 0.0) as budget:  # spent before it started: no query at all
            assert budget.run("select 1", []) is None
    finally:
        db.conn.close()


def test_a_budget_inside_a_transaction_keeps_the_transaction(pg_url: str):
    db = open_db(pg_url)
    try:
        with db.atomic():
            db.execute("insert into meta (key, value) values ('k', 'v')")
            with Budget(db, 0.05) as budget:
                assert budget.run(ENDLESS, []) is None  # its savepoint rolled back, not the transaction
            with Budget(db, 5) as budget:
                assert budget.run("select value from meta where key = 'k'", []) == [("v",)]
            # the timeout was the savepoint's only: later statements of the transaction have no limit
            assert db.execute("select current_setting('statement_timeout')").fetchone()[0] == "0"
        assert db.execute("select value from meta where key = 'k'").fetchone() == ("v",)
    finally:
        db.conn.close()


def test_author_look_up_out_of_time_is_none_on_postgres(pg_url: str, monkeypatch):
    db = open_db(pg_url)
    try:
        _fill(db)
        monkeypatch.setattr(listing, "AUTHOR_LOOKUP_BUDGET", 0.0)
        assert author_mentions(db, ["reddit"], "spud", 0) is None
    finally:
        db.conn.close()


def test_any_db_runs_the_queue_end_to_end(any_db):
    """A fresh store on either backend: a complaint is queued, claimed and answered."""
    record_mentions(any_db, "reviews", [{"external_id": "x", "kind": "review", "text": "Cold soup", "rating": 1,
                                        "posted_at": (NOW - timedelta(hours=2)).isoformat()}])  # fmt: skip
    any_db["classifications"].insert({"mention_id": 1, "label": "complaint", "probs": '{"complaint": 0.9}',
                                      "topics": '["food_quality"]', "urgency": "[]"})  # fmt: skip
    assert refresh_queue(any_db, QueueConfig(), now=NOW).created == 1
    assign(any_db, 1, "dana")
    mark_replied(any_db, 1, "Sorry, a fresh one is on us")
    [item] = list_items(any_db, filters=InboxFilter(states=("replied",), search="soup", topic="food_quality"), now=NOW)
    assert item["id"] == 1 and item["first_replied_at"]
    overall, _ = response_metrics(any_db, NOW - timedelta(days=1), datetime.now(UTC) + timedelta(days=1), now=NOW)
    assert (overall.items, overall.replied, overall.response_rate) == (1, 1, 1.0)
    assert asdict(overall)["median_first_response_minutes"] is not None
