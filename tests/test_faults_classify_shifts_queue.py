"""Fault-campaign regressions for classification, the shifts stage and the reply queue (issue 11, items 1, 2,
5, 13 and the queue side of 11): one bad item costs only itself, and every "pending" walk ends."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.classify.stage import classify_pending
from monitor.classify.textprep import normalise_for_model, valid_unicode
from monitor.cli import cli
from monitor.config import QueueConfig, TeamMember, loads_config
from monitor.cycle import process_new_mentions
from monitor.queue import team as team_module
from monitor.queue.items import assign, clock_start, due_at, get_item, refresh_queue, transition, untimed_sql
from monitor.queue.listing import InboxFilter, list_items
from monitor.queue.metrics import response_metrics
from monitor.shifts import stage as shifts_stage
from monitor.shifts.estimate import estimate_incident
from monitor.shifts.localtime import parse_utc, zone
from monitor.shifts.stage import attribution_rows, clusters, estimate_and_attribute
from monitor.store import open_db, record_mentions

from .conftest import write_config
from .helpers import add_classified

# ------------------------------------------------------------------ item 1: lone surrogates


@pytest.mark.parametrize(
    "text",
    ["x \\ud800", "x \ud800 y", "\\udfff\\ud800", "end \\ud83d", "a\\ud800\\u0000b", "\ud83d\ude00\ud800"],
)
def test_normalised_text_is_always_valid_unicode(text):
    out = normalise_for_model(text)
    out.encode("utf-8")  # raised UnicodeEncodeError before: a lone surrogate came out
    assert "\ufffd" in out


def test_escaped_surrogate_pairs_become_the_character_and_plain_text_is_untouched():
    assert normalise_for_model("great \\ud83d\\ude00 coffee") == "great \U0001f600 coffee"
    assert valid_unicode("plain é 😀 text") == "plain é 😀 text"


def test_a_post_with_an_escaped_surrogate_is_classified_with_its_batch(fresh_db, tiny_classifier):
    texts = ["the coffee was cold", "x \\ud800 rude staff", "never again \\udc00\\ud800", "great staff"]
    record_mentions(fresh_db, "s", [{"external_id": str(i), "text": t} for i, t in enumerate(texts)])
    counts = classify_pending(fresh_db, tiny_classifier)
    assert counts.classified == 4
    assert fresh_db.execute("select count(*) from classifications").fetchone()[0] == 4
    assert classify_pending(fresh_db, tiny_classifier).classified == 0


def test_sentiment_command_with_lone_surrogates(tmp_path, tiny_model_dir):
    config = write_config(tmp_path, '[storage]\npath = "m.db"\n', model=tiny_model_dir)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "cold \\ud800 coffee"}\n')  # JSON-decoded: a real lone surrogate
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli, ["--config", str(config), "sentiment", "x \\ud800", "--file", str(src), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["x \\ud800", "cold \ud800 coffee"]  # given back as given
    assert all(r["label"] in {"complaint", "neutral", "praise"} for r in rows)


# ------------------------------------------------------------------ item 2: the calendar's edges, queue side


def test_a_post_dated_at_the_end_of_the_calendar_is_queued(fresh_db):
    mid = add_classified(fresh_db, "s", "1", "cold coffee", "complaint")
    fresh_db.execute("update mentions set posted_at = '9999-12-31T23:30:00+00:00' where id = ?", [mid])
    add_classified(fresh_db, "s", "2", "rude staff", "complaint")
    counts = refresh_queue(fresh_db, QueueConfig())  # OverflowError before (post time + SLA)
    assert counts.created == 2
    item = get_item(fresh_db, 1)
    seen = datetime.fromisoformat(fresh_db.execute("select first_seen_at from mentions where id = 1").fetchone()[0])
    # A post time far after we saw the post is not a post time: the clock starts when we saw it.
    assert datetime.fromisoformat(item["sla_due_at"]) == seen + QueueConfig().sla_review


def test_junk_post_times_do_not_stop_the_queue(fresh_db):
    for n, posted in enumerate(["not a date", "0001-01-01T00:00:00+00:00", "2026-13-45"]):
        mid = add_classified(fresh_db, "s", str(n), "cold coffee", "complaint")
        fresh_db.execute("update mentions set posted_at = ? where id = ?", [posted, mid])
    assert refresh_queue(fresh_db, QueueConfig()).created == 3
    refresh_queue(fresh_db, QueueConfig())  # recomputing priorities over them works too
    # Junk is not a post time: no item "posted" in year 1 sits overdue at the top for ever.
    rows = fresh_db.query(
        "select q.sla_due_at, m.first_seen_at from queue_items q join mentions m on m.id = q.mention_id"
    )
    for row in rows:
        seen = datetime.fromisoformat(row["first_seen_at"])
        assert datetime.fromisoformat(row["sla_due_at"]) == seen + QueueConfig().sla_review


def test_due_time_saturates_instead_of_overflowing():
    end = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    assert due_at(end, timedelta(hours=24)) == datetime.max.replace(tzinfo=UTC)
    assert clock_start("9999-12-31T23:30:00", "9999-12-31T23:00:00", datetime.now(UTC)).hour == 23
    assert clock_start(None, None, end) == end


# ------------------------------------------------------------------ item 2: the calendar's edges, shifts side

SHIFTS_CONFIG = """
[storage]
path = "m.db"

[[locations]]
id = "tokyo"
timezone = "Asia/Tokyo"
[[locations.shifts]]
name = "day"
start = "09:00"
end = "21:00"

[[locations]]
id = "nyc"
timezone = "America/New_York"
[[locations.shifts]]
name = "day"
start = "09:00"
end = "21:00"
"""


@pytest.fixture
def shifts_setup(tmp_path):
    config = loads_config(SHIFTS_CONFIG, tmp_path / "config.toml")
    db = open_db(config.storage_path)
    yield config, db
    db.conn.close()


def _mention(db, ext, location, posted, experienced=None, text="rude staff", label="complaint"):
    row = {"external_id": ext, "text": text, "posted_at": posted, "experienced_at": experienced, "location": location}
    [mid] = record_mentions(db, "reviews", [row]).mention_ids
    db["classifications"].insert({"mention_id": mid, "label": label, "topics": "[]", "probs": "{}", "urgency": "[]"},
                                 replace=True)  # fmt: skip
    return mid


EDGE_CASES = [
    ("tokyo", "9999-12-31T23:30:00+00:00", None),  # a located year-9999 post in a UTC+ zone
    ("tokyo", "9999-12-31T23:30:00+00:00", "9999-12-31"),
    ("nyc", "2026-11-21T15:00:00+00:00", "9999-12-31"),
    ("tokyo", "2026-11-21T15:00:00+00:00", "9999-12-31"),
    ("tokyo", "2026-11-21T15:00:00+00:00", "0001-01-01"),
    ("nyc", "2026-11-21T15:00:00+00:00", "0001-01-01"),
    ("tokyo", "2026-11-21T15:00:00+00:00", "9999-12-31T23:59:00"),
    ("nyc", "0001-01-01T00:10:00+00:00", None),
    ("tokyo", "0001-01-01T00:00:00+00:00", "0001-01-01"),
    ("nyc", "9999-12-31T23:30:00-05:00", None),  # overflows converting to UTC
]


@pytest.mark.parametrize(("location", "posted", "experienced"), EDGE_CASES)
def test_dates_at_the_calendars_edge_cost_only_their_mention(shifts_setup, location, posted, experienced):
    config, db = shifts_setup
    bad = _mention(db, "bad", location, posted, experienced, text="yesterday morning the staff were rude")
    good = _mention(db, "good", location, "2026-11-21T15:00:00+00:00")
    estimate_and_attribute(db, config)  # raised OverflowError before
    rows = {r["mention_id"]: r for r in db.query("select * from incident_estimates")}
    assert set(rows) == {bad, good}
    assert rows[good]["basis"] == "lag" and rows[good]["window_start"]
    assert db.execute("select count(*) from shift_attributions where mention_id = ?", [good]).fetchone()[0] >= 1
    if rows[bad]["window_start"]:  # an implausible visit date is ignored, the post time still counts
        assert rows[bad]["window_start"].startswith("2026-")
    else:
        assert rows[bad]["basis"] == "no time" and rows[bad]["location"] == location
    assert estimate_and_attribute(db, config).estimated == 0  # stored: not retried on every pass


def test_a_stored_first_seen_time_is_used_when_the_post_time_is_junk(shifts_setup):
    config, db = shifts_setup
    mid = _mention(db, "1", "nyc", "9999-12-31T23:30:00+00:00")
    counts = estimate_and_attribute(db, config)
    assert counts.estimated == 1 and counts.without_time == 0
    start = db.execute("select window_start from incident_estimates where mention_id = ?", [mid]).fetchone()[0]
    assert parse_utc(start) > datetime.now(UTC) - timedelta(days=1)


def test_estimate_refuses_an_implausible_post_time_with_a_value_error():
    with pytest.raises(ValueError, match="not a real post time"):
        estimate_incident(datetime(9999, 12, 31, 23, 30, tzinfo=UTC), zone("Asia/Tokyo"), timedelta(hours=2))


def test_windows_years_apart_get_their_own_shift_occurrences(shifts_setup, monkeypatch):
    config, db = shifts_setup
    location = config.locations[0]
    spans = []
    real = shifts_stage.occurrences_for

    def spy(loc, starts, ends):
        spans.append(int(ends.max() - starts.min()))
        return real(loc, starts, ends)

    monkeypatch.setattr(shifts_stage, "occurrences_for", spy)
    posts = ["1971-03-01T12:00:00+00:00", "2026-11-21T03:00:00+00:00", "2026-11-21T05:00:00+00:00",
             "8999-06-01T00:00:00+00:00"]  # fmt: skip
    estimates = [estimate_incident(parse_utc(p), zone(location.timezone), timedelta(hours=2)) for p in posts]
    started = time.monotonic()
    rows = attribution_rows(location, [1, 2, 3, 4], estimates)
    assert time.monotonic() - started < 5  # 7,000 years of daily occurrences before
    assert len(spans) == 3 and max(spans) < 86400
    assert {r["mention_id"] for r in rows} == {1, 2, 3, 4}
    one_by_one = [r for i, e in enumerate(estimates, 1) for r in attribution_rows(location, [i], [e])]
    key = lambda r: (r["mention_id"], r["shift"], r["shift_date"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(one_by_one, key=key)


def test_clusters_split_only_at_gaps():
    starts = np.array([100, 0, 10_000, 50], dtype=np.int64)
    ends = np.array([200, 60, 10_100, 5_000], dtype=np.int64)
    groups = [sorted(g.tolist()) for g in clusters(starts, ends, gap=1000)]
    assert groups == [[0, 1, 3], [2]]


# ------------------------------------------------------------------ item 13: pending walks end whatever the clock


def _bounded_utcnow(monkeypatch, calls=50):
    """The stage stamps each chunk with utcnow(): fail instead of looping for ever."""
    real = shifts_stage.utcnow
    count = [0]

    def limited():
        count[0] += 1
        if count[0] > calls:
            raise AssertionError("the shifts stage keeps re-estimating the same mentions")
        return real()

    monkeypatch.setattr(shifts_stage, "utcnow", limited)


def test_a_mention_updated_ahead_of_the_clock_is_estimated_once(shifts_setup, monkeypatch):
    config, db = shifts_setup
    ids = [_mention(db, str(n), "nyc", "2026-11-21T15:00:00+00:00") for n in range(3)]
    db.execute("update mentions set updated_at = '2999-01-01T00:00:00+00:00' where id = ?", [ids[1]])
    _bounded_utcnow(monkeypatch)
    assert estimate_and_attribute(db, config).estimated == 3  # looped for ever before
    assert estimate_and_attribute(db, config).estimated == 0


def test_an_edit_is_reestimated_even_when_the_estimate_looks_newer(shifts_setup, monkeypatch):
    config, db = shifts_setup
    mid = _mention(db, "1", "nyc", "2026-11-21T15:00:00+00:00")
    estimate_and_attribute(db, config)
    # Estimated by a process whose clock was ahead: a timestamp comparison would skip the edit.
    db.execute("update incident_estimates set estimated_at = '2999-01-01T00:00:00+00:00'")
    record_mentions(db, "reviews", [{"external_id": "1", "text": "rude staff, this morning around 7",
                                     "posted_at": "2026-11-21T15:00:00+00:00", "location": "nyc"}])  # fmt: skip
    _bounded_utcnow(monkeypatch)
    assert estimate_and_attribute(db, config).estimated == 1
    assert db.execute("select basis from incident_estimates where mention_id = ?", [mid]).fetchone()[0] == "text"
    assert estimate_and_attribute(db, config).estimated == 0
    assert db.execute("select value from meta where key = 'shifts.revision_mark'").fetchone()[0] == "1"


def test_many_edits_and_new_mentions_converge_in_chunks(shifts_setup, monkeypatch):
    config, db = shifts_setup
    monkeypatch.setattr(shifts_stage, "CHUNK", 3)
    for n in range(7):
        _mention(db, str(n), "nyc", "2026-11-21T15:00:00+00:00")
    estimate_and_attribute(db, config)
    for n in range(7):
        record_mentions(db, "reviews", [{"external_id": str(n), "text": f"edited {n}", "location": "nyc",
                                         "posted_at": "2026-11-21T15:00:00+00:00"}])  # fmt: skip
    _mention(db, "new", "nyc", "2026-11-21T15:00:00+00:00")
    db.execute("update mentions set updated_at = '2999-01-01T00:00:00+00:00'")
    _bounded_utcnow(monkeypatch, calls=10)
    assert estimate_and_attribute(db, config).estimated == 8
    assert estimate_and_attribute(db, config).estimated == 0


# ------------------------------------------------------------------ item 5: a crash during auto-assign

TEAM = [TeamMember("dana", locations=["downtown"]), TeamMember("sam")]


def test_items_left_unassigned_by_a_crash_are_assigned_on_the_next_run(fresh_db, monkeypatch):
    for n in range(5):
        add_classified(fresh_db, "reviews", str(n), "bad", "complaint")
    config = QueueConfig(auto_assign=True, team=TEAM)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process is killed after the items were created

    monkeypatch.setattr(team_module, "auto_assign", crash)
    with pytest.raises(KeyboardInterrupt):
        refresh_queue(fresh_db, config)
    assert fresh_db.execute("select count(*) from queue_items where assignee is null").fetchone()[0] == 5
    monkeypatch.undo()
    counts = refresh_queue(fresh_db, config)  # nothing new is created: only this run's items were looked at
    assert counts.created == 0 and counts.assigned == 5
    assert fresh_db.execute("select count(*) from queue_items where assignee is null").fetchone()[0] == 0


def test_auto_assign_leaves_handled_and_reopened_items_to_their_people(fresh_db):
    for n in range(3):
        add_classified(fresh_db, "reviews", str(n), "bad", "complaint")
    refresh_queue(fresh_db, QueueConfig())
    assign(fresh_db, 1, "kim")
    transition(fresh_db, 1, "new", "kim", "back to the pile")  # reopened: still kim's
    transition(fresh_db, 2, "dismissed", "kim")
    counts = refresh_queue(fresh_db, QueueConfig(auto_assign=True, team=TEAM))
    assert counts.assigned == 1
    assert [get_item(fresh_db, i)["assignee"] for i in (1, 2, 3)] == ["kim", None, "sam"]


# ------------------------------------------------------------------ item 11, queue side: backfill items


def _ensure_backfill_column(db):
    if "backfill" not in db["mentions"].columns_dict:
        db["mentions"].add_column("backfill", int, not_null_default=0)


def test_a_backfill_item_is_queued_without_an_sla_clock(fresh_db):
    _ensure_backfill_column(fresh_db)
    old = add_classified(fresh_db, "appstore", "1", "crashes on login", "complaint", hours_ago=24 * 300)
    new = add_classified(fresh_db, "appstore", "2", "crashes on start", "complaint", hours_ago=48)
    fresh_db.execute("update mentions set backfill = 1 where id = ?", [old])
    refresh_queue(fresh_db, QueueConfig())
    items = {i["mention_id"]: i for i in list_items(fresh_db)}
    assert set(items) == {old, new}  # both shown
    assert items[old]["sla_due_at"] is None and items[new]["sla_due_at"] is not None
    now = datetime.now(UTC)
    overdue = list_items(fresh_db, filters=InboxFilter(sla="overdue"), now=now)
    assert [i["mention_id"] for i in overdue] == [new]
    overall, _ = response_metrics(fresh_db, now - timedelta(days=1), now + timedelta(days=1), now=now)
    assert (overall.items, overall.open, overall.sla_breaches, overall.breached_open) == (2, 2, 1, 1)
    # Priority: the same complaint, but no clock climbing for the undated one.
    assert items[old]["priority"] < items[new]["priority"]


def test_an_item_queued_before_its_mention_was_marked_backfill_loses_its_clock(fresh_db):
    mid = add_classified(fresh_db, "appstore", "1", "crashes on login", "complaint", hours_ago=24 * 300)
    refresh_queue(fresh_db, QueueConfig())
    assert get_item(fresh_db, 1)["sla_due_at"] is not None
    _ensure_backfill_column(fresh_db)
    fresh_db.execute("update mentions set backfill = 1 where id = ?", [mid])
    refresh_queue(fresh_db, QueueConfig())
    assert get_item(fresh_db, 1)["sla_due_at"] is None


def test_a_reopened_backfill_item_gets_a_real_clock(fresh_db):
    _ensure_backfill_column(fresh_db)
    mid = add_classified(fresh_db, "appstore", "1", "crashes on login", "complaint", hours_ago=24 * 300)
    fresh_db.execute("update mentions set backfill = 1 where id = ?", [mid])
    config = QueueConfig()
    refresh_queue(fresh_db, config)
    transition(fresh_db, 1, "dismissed", "kim")
    transition(fresh_db, 1, "new", "kim", "reopened by hand", sla_due_at="2000-01-01T00:00:00+00:00")
    refresh_queue(fresh_db, config)
    assert get_item(fresh_db, 1)["sla_due_at"] == "2000-01-01T00:00:00+00:00"  # new activity is real
    now = datetime.now(UTC)
    overall, _ = response_metrics(fresh_db, now - timedelta(days=1), now + timedelta(days=1), now=now)
    assert overall.sla_breaches == 1


@pytest.mark.sqlite_only(reason="a store from before migration 7 exists only as a SQLite file")
def test_the_queue_works_without_the_backfill_column(fresh_db):
    add_classified(fresh_db, "s", "1", "cold coffee", "complaint")
    if "backfill" in fresh_db["mentions"].columns_dict:  # a database from before the column
        fresh_db.execute("alter table mentions drop column backfill")
    assert untimed_sql(fresh_db) == "0"
    assert refresh_queue(fresh_db, QueueConfig(auto_assign=True, team=TEAM)).created == 1
    now = datetime.now(UTC)
    overall, _ = response_metrics(fresh_db, now - timedelta(days=1), now + timedelta(days=1), now=now)
    assert overall.items == 1 and overall.sla_breaches == 0


# ------------------------------------------------------------------ one failing stage does not stop the others


def test_a_failing_classify_stage_still_lets_shifts_and_queue_run(tmp_path, fresh_db, monkeypatch):
    import monitor.cycle

    def broken(db, classifier):
        raise RuntimeError("model blew up")

    monkeypatch.setattr(monitor.cycle, "classify_pending", broken)
    config = loads_config(SHIFTS_CONFIG, tmp_path / "config.toml")
    add_classified(fresh_db, "s", "1", "cold coffee", "complaint")  # classified in an earlier pass
    record_mentions(fresh_db, "s", [{"external_id": "2", "text": "not classified yet"}])
    with pytest.raises(RuntimeError, match="model blew up"):
        process_new_mentions(fresh_db, config, None)
    assert fresh_db.execute("select count(*) from queue_items").fetchone()[0] == 1
    assert fresh_db.execute("select count(*) from incident_estimates").fetchone()[0] == 2


def test_an_undated_backfill_mention_is_not_placed_on_the_crawls_hour(shifts_setup):
    config, db = shifts_setup
    _ensure_backfill_column(db)
    undated = [_mention(db, str(n), "nyc", None) for n in range(4)]
    db.execute(f"update mentions set backfill = 1 where id in ({', '.join('?' * len(undated))})", undated)
    dated = _mention(db, "dated", "nyc", None)  # not backfill: first seen stands in for the post time
    counts = estimate_and_attribute(db, config)
    assert counts.without_time == 4 and counts.estimated == 1 and counts.incidents == 0
    rows = {r["mention_id"]: r for r in db.query("select * from incident_estimates")}
    assert {rows[m]["basis"] for m in undated} == {"no time"} and rows[dated]["basis"] == "lag"
    # Only the dated mention is placed (its window may straddle two shifts, depending on the hour the test runs).
    placed = {r[0] for r in db.execute("select distinct mention_id from shift_attributions")}
    assert placed == {dated}


def test_an_estimate_or_attribution_that_raises_costs_only_its_mention(shifts_setup, monkeypatch):
    config, db = shifts_setup
    ok = _mention(db, "1", "nyc", "2026-11-21T15:00:00+00:00")
    boom = _mention(db, "2", "nyc", "2026-11-21T15:00:00+00:00", text="boom")
    bad_attr = _mention(db, "3", "tokyo", "2026-11-21T16:00:00+00:00")
    tokyo_ok = _mention(db, "4", "tokyo", "2026-11-21T15:00:00+00:00")
    real_estimate, real_rows = shifts_stage.estimate_incident, shifts_stage.attribution_rows

    def estimate(posted, tz, lag, text="", experienced_at=None):
        if text == "boom":
            raise RuntimeError("a parser bug")
        return real_estimate(posted, tz, lag, text, experienced_at)

    def rows(location, mention_ids, estimates):
        if bad_attr in mention_ids:
            raise ValueError("bad window")
        return real_rows(location, mention_ids, estimates)

    monkeypatch.setattr(shifts_stage, "estimate_incident", estimate)
    monkeypatch.setattr(shifts_stage, "attribution_rows", rows)
    counts = estimate_and_attribute(db, config)
    assert counts.estimated == 3 and counts.without_time == 1
    basis = dict(db.execute("select mention_id, basis from incident_estimates").fetchall())
    assert basis == {ok: "lag", boom: "no time", bad_attr: "lag", tokyo_ok: "lag"}
    attributed = {r[0] for r in db.execute("select mention_id from shift_attributions")}
    assert attributed == {ok, tokyo_ok}
