"""Second speed round of issue 12: the /sources chart drawn without matplotlib, one time format on the dashboards,
the inbox counts with a search, and the look-up indexes of store migration 9."""

from __future__ import annotations

import json
import re
import xml.dom.minidom
from datetime import UTC, date, datetime, timedelta

import pytest

from monitor.queue import listing
from monitor.queue.listing import OPEN_STATES, STATES, InboxFilter, inbox_counts, list_items, sla_clock
from monitor.store import open_db
from monitor.web import charts

from .test_dashboards import client_for

# ---------------------------------------------------------------- /sources chart


@pytest.fixture
def client(tmp_path):
    from .test_dashboards import build

    return client_for(build(tmp_path))


def test_sources_chart_is_drawn_without_matplotlib(client, monkeypatch):
    def no_matplotlib(*_args, **_kwargs):
        raise AssertionError("the /sources chart must not draw with matplotlib (~250 ms for eight rows)")

    monkeypatch.setattr(charts, "_figure", no_matplotlib)
    response = client.get("/sources/chart.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    body = response.get_data(as_text=True)
    xml.dom.minidom.parseString(body)  # well-formed
    assert "viewBox=" in body and "<script" not in body and "style=" not in body  # no inline style: the CSP
    assert "reviews-downtown" in body and "7 new" in body and "rival-feed" in body
    page = client.get("/sources").get_data(as_text=True)
    height = re.search(r'sources/chart\.svg"[^>]* height="(\d+)"', page).group(1)
    assert f'height="{height}"' in body  # the page reserves the chart's own size


def test_sources_chart_escapes_names_and_drops_what_xml_cannot_hold():
    days = [date(2026, 11, 13) + timedelta(days=i) for i in range(14)]
    hostile = '<script>alert(1)</script>&"\x01\ud800'
    series = {hostile: [(d, i) for i, d in enumerate(days)], "北京三里屯": [(d, 0) for d in days], "quiet": []}
    body = charts.sources_chart(series, days).decode()
    document = xml.dom.minidom.parseString(body)
    assert "<script" not in body and "&lt;script&gt;" in body
    texts = [node.firstChild.data for node in document.getElementsByTagName("text") if node.firstChild]
    assert "北京三里屯" in texts and "91 new · busiest day 13" in texts
    assert len(document.getElementsByTagName("rect")) == 1 + 13  # the background, and one bar per non-zero day
    assert charts.sources_chart({}, days).startswith(b"<svg")  # no sources yet: still an image


def test_long_names_are_cut_to_leave_room_for_the_numbers():
    assert charts._fit("reviews-downtown", 200) == "reviews-downtown"
    cut = charts._fit("a-very-long-source-name-" * 4, 200)
    assert cut.endswith("…") and len(cut) < 30
    assert len(charts._fit("北京三里屯" * 10, 200)) < 17  # wide characters count double


# ---------------------------------------------------------------- one time format


def test_dashboard_times_use_the_inboxs_format(client):
    page = client.get("/sources").get_data(as_text=True)
    times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', page)
    assert times, page
    for stamp, title, shown in times:
        moment = datetime.fromisoformat(stamp)
        assert title == moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")  # UTC on hover, as in the inbox
        assert shown.endswith(("CET", "CEST"))  # local, [schedule] timezone Europe/Berlin
    assert not re.search(r"<time[^>]*>\s*<time", page)  # one element per time, not one inside another


# ---------------------------------------------------------------- inbox counts with a search


@pytest.fixture
def queue(tmp_path):
    """Open items on the newest mentions, handled ones on older ones, words spread over both."""
    db = open_db(tmp_path / "q.db")
    now = datetime.now(UTC).replace(microsecond=0)
    words = ["latte cold", "rude staff", "latte rude", "order wrong", "cold order latte"]
    for i in range(1, 401):
        posted = now - timedelta(hours=400 - i)
        db["mentions"].insert({"id": i, "source": ["yelp", "reddit"][i % 2], "external_id": f"x{i}", "kind": "review",
                               "text": words[i % len(words)], "posted_at": posted.isoformat(),
                               "first_seen_at": posted.isoformat(), "location": ["downtown", "airport"][i % 2],
                               "backfill": 0})  # fmt: skip
        db["classifications"].insert({"mention_id": i, "label": "complaint", "topics": "[]", "urgency": "[]"})
        state = ("new", "assigned")[i % 2] if i > 300 else ("replied", "replied", "dismissed")[i % 3]
        db["queue_items"].insert({"id": i, "mention_id": i, "state": state, "priority": i % 7,
                                  "sla_due_at": (posted + timedelta(hours=[1, 24, 600][i % 3])).isoformat(),
                                  "assignee": "dana" if state != "new" else None,
                                  "created_at": posted.isoformat()})  # fmt: skip
    yield db, now
    db.conn.close()


def _brute_force(db, filters: InboxFilter, now: datetime) -> tuple[dict, dict]:
    """Counts from listing every item: what the tabs must show."""
    states = {}
    for state in STATES:
        f = InboxFilter(**{**filters.__dict__, "states": (state,), "sla": None if state not in OPEN_STATES
                           else filters.sla})  # fmt: skip
        states[state] = len(list_items(db, filters=f, limit=10_000, now=now))
    shown = set(filters.states) & set(OPEN_STATES) or set(OPEN_STATES)
    sla = dict.fromkeys(listing.SLA_BUCKETS, 0)
    for item in list_items(db, filters=InboxFilter(**{**filters.__dict__, "states": tuple(shown), "sla": None}),
                           limit=10_000, now=now):  # fmt: skip
        sla[sla_clock(item, now)[0]] += 1
    return states, sla


FILTERS = [
    {"search": "latte"}, {"search": "latte", "location": "downtown"}, {"search": "rude", "sla": "overdue"},
    {"search": "order", "states": ("replied",)}, {"search": "cold latte", "assignee": "dana"},
    {"search": "nothing-matches"}, {"search": "latte", "source": "reddit", "states": ("assigned",)}, {},
]  # fmt: skip


@pytest.mark.parametrize("ratio", [listing.PROBE_RATIO, 0])  # 0: always probe the index per open item
@pytest.mark.parametrize("fields", FILTERS)
def test_counts_with_a_search_match_the_listed_items(queue, monkeypatch, fields, ratio):
    db, now = queue
    monkeypatch.setattr(listing, "PROBE_RATIO", ratio)
    monkeypatch.setattr(listing, "COUNT_BUDGET", 30.0)  # the counts' correctness, not their speed (bench/inbox.py)
    filters = InboxFilter(**fields)
    counts = inbox_counts(db, filters, now)
    states, sla = _brute_force(db, filters, now)
    assert counts.states == states and counts.sla == sla


def test_counts_do_not_plan_the_search_again(queue, monkeypatch):
    """The open counts read the matches within the open items' id range themselves: the list's plan (up to two
    capped counts of every match, ~25 ms for a common word on 1M mentions) is not worked out a second time."""
    db, now = queue

    def planned(*_args):
        raise AssertionError("inbox_counts asked choose_search_plan")

    monkeypatch.setattr(listing, "choose_search_plan", planned)
    counts = inbox_counts(db, InboxFilter(search="latte"), now)
    assert counts.states["new"] and counts.states["replied"]


# ---------------------------------------------------------------- migration 9


@pytest.mark.sqlite_only(reason="SQLite's query plans")
def test_migration_9_indexes_the_item_pages_lookups_and_the_metrics_range(tmp_path):
    db = open_db(tmp_path / "i.db")
    plan = " ".join(row[3] for row in db.execute(
        "explain query plan select m.id from mentions m where m.author = ? and m.source in (?, ?) and m.id != ? "
        "order by coalesce(m.posted_at, m.first_seen_at) desc limit 10", ["pat", "a", "b", 1]))  # fmt: skip
    assert "idx_mentions_author_source" in plan
    plan = " ".join(row[3] for row in db.execute(
        "explain query plan select id from mentions where source = ? and parent_id = ? order by posted_at limit 20",
        ["reddit", "t3_x"]))  # fmt: skip
    assert "idx_mentions_source_parent_id_posted_at" in plan and "TEMP B-TREE" not in plan  # read in order
    plan = " ".join(row[3] for row in db.execute(
        "explain query plan select q.state, q.first_replied_at, q.sla_due_at, q.assignee, q.mention_id "
        "from queue_items q where q.created_at >= ? and q.created_at < ?", ["a", "b"]))  # fmt: skip
    assert "COVERING INDEX queue_items_metrics" in plan
    names = {row[0] for row in db.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_queue_items_created_at" not in names  # their work is done by the indexes that start like them
    assert "idx_mentions_source_parent_id" not in names


def test_metrics_read_no_row_as_a_python_dict(tmp_path, monkeypatch):
    """Counting happens in SQLite: no ``db.query`` (a dict per item, ~1.5 s for 145,000 items)."""
    from monitor.queue.metrics import response_metrics

    db = open_db(tmp_path / "d.db")
    monkeypatch.setattr(type(db), "query", lambda *a, **k: (_ for _ in ()).throw(AssertionError("db.query")))
    now = datetime.now(UTC)
    overall, groups = response_metrics(db, now - timedelta(days=1), now, "location", now)
    assert overall.items == 0 and groups == {}
    assert json.dumps(overall.as_dict())


@pytest.mark.sqlite_only(reason="SQLite's statement trace")
def test_unfiltered_counts_read_the_queue_alone(queue):
    """The first page's counts need no mention or classification: leaving those joins out took them from ~23 ms
    to ~4 ms on the 1M-mention bench store (a look-up per open item and per counted handled item)."""
    db, now = queue
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        counts = inbox_counts(db, InboxFilter(), now)
    finally:
        db.conn.set_trace_callback(None)
    assert statements and not [s for s in statements if "mentions" in s or "classifications" in s]
    assert counts.states == _brute_force(db, InboxFilter(), now)[0]
