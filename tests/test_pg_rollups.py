# ruff: noqa: F811 -- the fixtures from tests/pg.py are imported by name, and test arguments name them

"""The dashboards' rollup readers on PostgreSQL (docs/postgres-port.md, step 3): the same stored mentions give
the same trend series, topic series, shift counts, shift report and heatmap on both engines, in whole-, half-
and three-quarter-hour zones, across both DST ends of autumn 2026 (Europe on Oct 25, America on Nov 1), and
the PostgreSQL rollups follow every kind of change through its triggers."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.config import loads_config
from monitor.db import POSTGRESQL, SQLITE, dialect_of
from monitor.shifts.report import complaint_heatmap, counts_from_rows, refresh_shift_rollups, shift_counts, shift_report
from monitor.store import open_db, record_mentions, trend_hour_sql, write_transaction
from monitor.trends.series import (
    json_list_param,
    refresh_rollups,
    sentiment_series,
    series_from_rows,
    undated_counts,
)
from monitor.web.dashboard_data import _topics_from_rows, local_day_sql, metrics_by_day, topic_series

from .pg import any_db, pg_server, pg_url  # noqa: F401

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]
START = datetime(2026, 10, 20, tzinfo=UTC)
TOPICS = ["wait_time", "staff_attitude", "product_quality"]
# What a classification's topics may hold besides a clean list: only the text items of a list are names.
ODD_TOPICS = ['[1, "wait_time", null]', "not json", '{"wait_time": 1}', '"wait_time"', "", None]
LOCATIONS = (("berlin", "Europe/Berlin"), ("delhi", "Asia/Kolkata"), ("kathmandu", "Asia/Kathmandu"))


def _fill(db: Any, n: int = 500, seed: int = 4) -> None:
    """The same mentions, labels, topics, estimates and attributions on either engine (ids included)."""
    rng = random.Random(seed)
    mentions = []
    for i in range(n):
        # Many times on or near a quarter / half hour, where zones at :30 and :45 offsets change day.
        moment = START + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23),
                                   minutes=rng.choice([0, 14, 15, 29, 30, 44, 45, 59, rng.randint(0, 59)]),
                                   seconds=rng.choice([0, 0, 59]))  # fmt: skip
        mention = {"external_id": f"m{i}", "text": "x", "brand": rng.choice(["Acme", "Rival", "", None]),
                   "posted_at": moment.isoformat()}  # fmt: skip
        if i % 40 == 0:  # undated backfill: in no series, counted by undated_counts
            mention.update(posted_at=None, backfill=True, first_seen_at=moment.isoformat())
        elif i % 41 == 0:
            mention["backfill"] = True
        elif i % 43 == 0:  # stored with its own offset: placed by its instant
            mention["posted_at"] = moment.astimezone(ZoneInfo("Asia/Kathmandu")).isoformat()
        mentions.append(mention)
    ids = record_mentions(db, "s", mentions).mention_ids
    with write_transaction(db):  # record_mentions stamps first_seen_at now: put the undated ones in range
        for mid, m in zip(ids, mentions, strict=True):
            if m["posted_at"] is None:
                db.execute("update mentions set first_seen_at = ? where id = ?", [START.isoformat(), mid])
    rows = []
    for i, mid in enumerate(ids):
        label = rng.choice(["complaint", "complaint", "praise", "neutral", "unclassified_language", None])
        if label:
            topics = json.dumps(rng.sample(TOPICS, rng.randint(0, 2)) if label == "complaint" else [])
            if label == "complaint" and i % 17 == 0:
                topics = ODD_TOPICS[(i // 17) % len(ODD_TOPICS)]
            rows.append({"mention_id": mid, "label": label, "probs": "{}", "topics": topics})
    db["classifications"].insert_all(rows)
    estimates, attributions = [], []
    for (mid,) in db.execute("select id from mentions where posted_at is not null order by id").fetchall():
        location = rng.choice([loc for loc, _ in LOCATIONS])
        start = START + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23), minutes=rng.randint(0, 59),
                                  seconds=rng.choice([0, 17]))  # fmt: skip
        length = rng.choice([timedelta(0), timedelta(minutes=7), timedelta(minutes=50), timedelta(hours=3, minutes=5)])
        estimates.append({"mention_id": mid, "location": location, "window_start": start.isoformat(),
                          "window_end": (start + length).isoformat(), "basis": "lag"})  # fmt: skip
        day = start.date().isoformat()
        if rng.random() < 0.3:  # a window over two shifts counts half to each
            attributions += [{"mention_id": mid, "location": location, "shift": name, "shift_date": day,
                              "weight": 0.5} for name in ("day", "night")]  # fmt: skip
        else:
            attributions.append({"mention_id": mid, "location": location, "shift": rng.choice(["day", "night"]),
                                 "shift_date": day, "weight": 1.0})  # fmt: skip
    db["incident_estimates"].insert_all(estimates)
    db["shift_attributions"].insert_all(attributions)
    if not dialect_of(db).postgres:
        db.conn.commit()


@pytest.fixture
def both(tmp_path: Path, pg_url: str):
    """A SQLite store and a PostgreSQL store holding the same rows."""
    sqlite, pg = open_db(tmp_path / "s.db"), open_db(pg_url)
    for db in (sqlite, pg):
        _fill(db)
    try:
        yield sqlite, pg
    finally:
        sqlite.conn.close()
        pg.conn.close()


def _bounds(zone: str, first: date, last: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return datetime.combine(first, time(), tzinfo=tz), datetime.combine(last + timedelta(days=1), time(), tzinfo=tz)


def _series(db: Any, *args: Any) -> list[dict[str, Any]]:
    return [p.as_dict() for p in sentiment_series(db, *args)]


def _config(tmp_path: Path):
    return loads_config(
        f'[storage]\npath = "{tmp_path / "test.db"}"\n'
        + "".join(f'[[locations]]\nid = "{loc}"\ntimezone = "{tz}"\n[[locations.shifts]]\nname = "day"\n'
                  'start = "06:00"\nend = "18:00"\n[[locations.shifts]]\nname = "night"\nstart = "18:00"\n'
                  'end = "06:00"\n' for loc, tz in LOCATIONS),
        tmp_path / "config.toml",
    )  # fmt: skip


def _dirty(db: Any, table: str) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


# ------------------------------------------------------------------ trends


def test_trend_and_topic_series_equal_sqlite_in_every_zone(both):
    sqlite, pg = both
    assert _dirty(pg, "trend_dirty") > 0  # the triggers marked every hour written
    for zone in ZONES:
        since, until = _bounds(zone, date(2026, 10, 18), date(2026, 11, 12))
        for by in ("day", "week"):
            for brands in (None, ["Acme", "(no brand)"]):
                expected = _series(sqlite, since, until, by, zone, brands)
                assert _series(pg, since, until, by, zone, brands) == expected, (zone, by, brands)
                # ...and the PostgreSQL rollup counts what its own rows count.
                assert [p.as_dict() for p in series_from_rows(pg, since, until, by, zone, brands)] == expected
            for brands in (None, ["Rival"]):
                expected_topics = topic_series(sqlite, since, until, by, zone, brands)
                assert expected_topics  # the data has complaints with topics
                assert topic_series(pg, since, until, by, zone, brands) == expected_topics, (zone, by, brands)
                assert _topics_from_rows(pg, since, until, by, ZoneInfo(zone), brands) == expected_topics
    assert _dirty(pg, "trend_dirty") == 0  # recounted once, then read
    # Bounds that cut hours (not local midnights), a DST day alone, and an empty range.
    for zone, since, until in (
        ("Asia/Kathmandu", START + timedelta(days=3, minutes=20), START + timedelta(days=9, hours=5, minutes=50)),
        ("America/New_York", *_bounds("America/New_York", date(2026, 11, 1), date(2026, 11, 1))),
        ("Europe/Berlin", *_bounds("Europe/Berlin", date(2026, 10, 25), date(2026, 10, 25))),
        ("UTC", *_bounds("UTC", date(2025, 1, 1), date(2025, 1, 31))),
    ):
        assert _series(pg, since, until, "day", zone) == _series(sqlite, since, until, "day", zone), zone
        assert topic_series(pg, since, until, "day", zone, None) == topic_series(
            sqlite, since, until, "day", zone, None
        )
    since, until = _bounds("UTC", date(2026, 10, 1), date(2026, 11, 30))
    assert undated_counts(pg, since, until) == undated_counts(sqlite, since, until) != {}


def test_topic_names_are_the_text_items_of_a_list_on_both(any_db):
    at = "2026-10-20T10:00:00+00:00"
    record_mentions(any_db, "s", [{"external_id": str(i), "text": "x", "brand": "Acme", "posted_at": at}
                                  for i in range(len(ODD_TOPICS) + 1)])  # fmt: skip
    any_db["classifications"].insert_all(
        [{"mention_id": i + 1, "label": "complaint", "probs": "{}", "topics": t}
         for i, t in enumerate([*ODD_TOPICS, '["wait_time", "wait_time", 2.5, ["x"]]'])]
    )  # fmt: skip
    if not dialect_of(any_db).postgres:
        any_db.conn.commit()
    assert refresh_rollups(any_db)
    rows = [tuple(r) for r in any_db.execute("select hour, brand, topic, complaints from trend_topic_hours")]
    assert rows == [("2026-10-20T10", "Acme", "wait_time", 3)]  # '[1, "wait_time", null]' and the list's two


def test_postgres_rollups_follow_every_kind_of_change(both):
    sqlite, pg = both
    zone = "Asia/Kolkata"
    since, until = _bounds(zone, date(2026, 10, 18), date(2026, 11, 12))
    for db in both:
        sentiment_series(db, since, until, "day", zone)  # the rollups are filled and clean from here
        shift_counts(db, date(2026, 10, 18), date(2026, 11, 12))
    late = (START + timedelta(days=2, hours=18, minutes=30)).isoformat()
    for db in both:
        ids = [r[0] for r in db.execute("select mention_id from classifications order by mention_id limit 30")]
        # Re-classified as the classify stage writes (insert_all replace), updated, deleted; mentions moved.
        db["classifications"].insert_all([{"mention_id": mid, "label": "praise", "probs": "{}", "topics": "[]"}
                                          for mid in ids[:10]], replace=True)  # fmt: skip
        with write_transaction(db):
            db.execute("update classifications set label = 'complaint', topics = '[\"wait_time\"]' "
                       "where mention_id = ?", [ids[10]])  # fmt: skip
            db.execute("delete from classifications where mention_id = ?", [ids[11]])
            db.execute("update mentions set brand = 'Moved' where id = ?", [ids[12]])
            db.execute("update mentions set posted_at = ? where id = ?",
                       [(START + timedelta(days=15)).isoformat(), ids[13]])  # fmt: skip
            db.execute("update mentions set backfill = 1, posted_at = null where id = ?", [ids[14]])
            db.execute("delete from shift_attributions where mention_id in (?, ?)", ids[15:17])
            db.execute("update shift_attributions set shift_date = '2026-11-02' where mention_id = ?", [ids[17]])
        record_mentions(db, "s", [{"external_id": "late", "text": "x", "brand": "Acme", "posted_at": late}])
        if not dialect_of(db).postgres:
            db.conn.commit()
    assert _dirty(pg, "trend_dirty") > 0 and _dirty(pg, "shift_dirty") > 0
    for zone in ("Asia/Kolkata", "UTC", "America/New_York"):
        since, until = _bounds(zone, date(2026, 10, 18), date(2026, 11, 12))
        assert _series(pg, since, until, "day", zone) == _series(sqlite, since, until, "day", zone)
        assert [p.as_dict() for p in series_from_rows(pg, since, until, "day", zone)] == _series(
            pg, since, until, "day", zone
        )
        assert topic_series(pg, since, until, "week", zone, None) == topic_series(sqlite, since, until, "week", zone,
                                                                                  None)  # fmt: skip
    _same_counts(shift_counts(pg, date(2026, 10, 18), date(2026, 11, 12)),
                 counts_from_rows(pg, date(2026, 10, 18), date(2026, 11, 12)))  # fmt: skip
    _same_counts(shift_counts(pg, date(2026, 10, 18), date(2026, 11, 12)),
                 shift_counts(sqlite, date(2026, 10, 18), date(2026, 11, 12)))  # fmt: skip


def test_postgres_reads_hours_through_the_trend_hour_index(pg_url: str):
    db = open_db(pg_url)
    record_mentions(db, "s", [{"external_id": str(i), "text": "x", "posted_at": f"2026-10-20T{i % 24:02d}:00:00Z"}
                              for i in range(200)])  # fmt: skip
    db.execute("analyze mentions")
    with db.conn.transaction():
        db.conn.execute("set local enable_seqscan = off")
        plan = "\n".join(r[0] for r in db.execute(
            f"explain select m.id from mentions m where {trend_hour_sql(db, 'm.')} in ({json_list_param(db)})",
            [json.dumps(["2026-10-20T05"])]))  # fmt: skip
    assert "mentions_trend_hour" in plan
    db.conn.close()


def test_a_read_only_postgres_store_answers_from_the_rows(pg_url: str):
    db = open_db(pg_url)
    _fill(db, n=120)
    db.execute("set default_transaction_read_only = on")  # the recount's write fails: BUSY_ERRORS on PostgreSQL
    assert not refresh_rollups(db) and not refresh_shift_rollups(db)
    since, until = _bounds("Europe/Berlin", date(2026, 10, 18), date(2026, 11, 12))
    assert _series(db, since, until, "week", "Europe/Berlin") == [
        p.as_dict() for p in series_from_rows(db, since, until, "week", "Europe/Berlin")
    ]
    assert _dirty(db, "trend_dirty") > 0  # nothing was cleared
    db.conn.close()


# ------------------------------------------------------------------ shifts


def _same_counts(fast: dict, slow: dict) -> None:
    assert set(fast) == set(slow)
    for key, bucket in slow.items():
        assert fast[key]["mentions"] == pytest.approx(bucket["mentions"])
        assert fast[key]["complaints"] == pytest.approx(bucket["complaints"])
        assert fast[key]["days"] == bucket["days"]
        assert dict(fast[key]["topics"]) == pytest.approx(dict(bucket["topics"]))


def test_shift_counts_report_and_heatmap_equal_sqlite(both, tmp_path: Path):
    sqlite, pg = both
    config = _config(tmp_path)
    assert _dirty(pg, "shift_dirty") > 0
    for since, until, location in ((date(2026, 10, 18), date(2026, 11, 12), None),
                                   (date(2026, 10, 25), date(2026, 10, 31), "delhi"),
                                   (date(2025, 1, 1), date(2025, 1, 30), None)):  # fmt: skip
        _same_counts(shift_counts(pg, since, until, location), shift_counts(sqlite, since, until, location))
        _same_counts(shift_counts(pg, since, until, location), counts_from_rows(pg, since, until, location))
        assert shift_report(pg, config, since, until, location) == shift_report(sqlite, config, since, until, location)
        fast, slow = (
            complaint_heatmap(pg, config, since, until, location),
            complaint_heatmap(sqlite, config, since, until, location),
        )
        assert set(fast) == set(slow)
        for loc, grid in slow.items():
            for day in range(7):
                assert fast[loc][day] == pytest.approx(grid[day], abs=1e-9)
    assert _dirty(pg, "shift_dirty") == 0
    assert sum(map(sum, complaint_heatmap(pg, config, date(2026, 10, 18), date(2026, 11, 12))["kathmandu"])) > 0


# ------------------------------------------------------------------ local days


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_local_day_sql_is_the_same_day_on_both(any_db, zone):
    """Every minute-ish instant around the zone's offset changes gets its local date, on either engine."""
    tz = ZoneInfo(zone)
    since, until = datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
    dialect = POSTGRESQL if dialect_of(any_db).postgres else SQLITE
    sql, params = local_day_sql("v.t", since, until, tz, dialect)
    moments = [since + timedelta(hours=h, minutes=m) for h in range(0, 24 * 225, 31) for m in (0, 59)]
    moments += [datetime(2026, 11, 1, 5, 59, 59, tzinfo=UTC), datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
                datetime(2026, 10, 25, 0, 59, 59, 999000, tzinfo=UTC),
                datetime(2026, 10, 25, 1, tzinfo=UTC)]  # fmt: skip
    values = [moment.isoformat() for moment in moments] + ["2026-11-01T01:30:00-04:00", "not a time", None]
    expected = [moment.astimezone(tz).date().isoformat() for moment in moments]
    expected += [datetime.fromisoformat(values[-3]).astimezone(tz).date().isoformat(), None, None]
    # One round trip (fewer than SQLite's 500 terms of a compound select).
    rows = " union all ".join(f"select {i} as i, :t{i} as t" for i in range(len(values)))
    params.update({f"t{i}": value for i, value in enumerate(values)})
    got = [day for _i, day in any_db.execute(f"select v.i, {sql} from ({rows}) v order by v.i", params)]
    assert got == expected


def test_metrics_by_day_count_the_same_local_days_on_both(both):
    """The /metrics chart's days: items created around New York's DST end land on the same local days.
    (The metrics SQL itself is queue/metrics.py's, ported in step 4; here only the local day is this step's.)"""
    for db in both:
        mids = [r[0] for r in db.execute("select id from mentions order by id limit 120").fetchall()]
        with write_transaction(db):
            for i, mid in enumerate(mids):
                created = datetime(2026, 10, 30, 20, tzinfo=UTC) + timedelta(minutes=47 * i)
                db.execute("insert into queue_items (mention_id, state, priority, created_at) values (?, 'new', 1, ?)",
                           [mid, created.isoformat()])  # fmt: skip
    since, until, now = datetime(2026, 10, 29, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC), START + timedelta(30)
    for zone in ("America/New_York", "Asia/Kathmandu"):
        for weekly in (False, True):
            days = [(day, m.items) for day, m in metrics_by_day(both[1], since, until, zone, now, weekly)]
            assert days == [(day, m.items) for day, m in metrics_by_day(both[0], since, until, zone, now, weekly)]
            assert sum(n for _day, n in days) == 120
