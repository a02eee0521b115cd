"""The dashboards' SQL rollups (store migration 8) count exactly what the row-by-row computations counted.

Speed itself is measured by ``bench/inbox.py --dashboards`` (docs/benchmarks.md); these tests pin the
results: local-day boundaries in whole-, half- and three-quarter-hour zones and across DST, empty ranges,
mentions without a brand or a label, undated backfill mentions left out, and rollups kept in step when rows
are added, re-classified (``insert or replace``), moved, re-attributed or deleted.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.config import loads_config
from monitor.shifts.localtime import parse_utc
from monitor.shifts.report import complaint_heatmap, counts_from_rows, shift_counts
from monitor.store import record_mentions
from monitor.trends.series import hour_runs, period_of, sentiment_series, series_from_rows
from monitor.trends.spikes import poisson_tail
from monitor.web.dashboard_data import _topics_from_rows, topic_series

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "America/Asuncion"]
START = datetime(2026, 10, 20, tzinfo=UTC)  # spans Europe's (Oct 25) and America's (Nov 1) DST ends
TOPICS = ["wait_time", "staff_attitude", "product_quality"]
LOCATIONS = (("berlin", "Europe/Berlin"), ("delhi", "Asia/Kolkata"), ("kathmandu", "Asia/Kathmandu"))


def _store(db, n: int = 900, seed: int = 4, offsets: bool = True) -> None:
    rng = random.Random(seed)
    mentions = []
    for i in range(n):
        # Many times on or near a quarter / half hour, where zones at :30 and :45 offsets change day.
        moment = START + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23),
                                   minutes=rng.choice([0, 14, 15, 29, 30, 44, 45, 59, rng.randint(0, 59)]),
                                   seconds=rng.choice([0, 0, 59]))  # fmt: skip
        mention = {"external_id": f"m{i}", "text": "x", "brand": rng.choice(["Acme", "Rival", "", None]),
                   "posted_at": moment.isoformat()}  # fmt: skip
        if i % 40 == 0:  # an undated backfill item: no day, in no series
            mention.update(posted_at=None, backfill=True, first_seen_at=moment.isoformat())
        elif i % 41 == 0:  # a dated backfill item lands on the day it was written
            mention["backfill"] = True
        elif i % 43 == 0 and offsets:  # a time stored with its own offset
            mention["posted_at"] = moment.astimezone(ZoneInfo("America/New_York")).isoformat()
        mentions.append(mention)
    ids = record_mentions(db, "s", mentions).mention_ids
    undated = [mid for mid, m in zip(ids, mentions, strict=True) if m["posted_at"] is None]
    if undated:  # record_mentions stamps first_seen_at now: put them inside the range
        for mid in undated:
            db.execute("update mentions set first_seen_at = ? where id = ?", [START.isoformat(), mid])
    rows = []
    for mid in ids:
        label = rng.choice(["complaint", "complaint", "praise", "neutral", "unclassified_language", None])
        if label:
            topics = rng.sample(TOPICS, rng.randint(0, 2)) if label == "complaint" else []
            rows.append({"mention_id": mid, "label": label, "probs": "{}", "topics": json.dumps(topics)})
    db["classifications"].insert_all(rows)
    db.conn.commit()


def _same_series(db, since: datetime, until: datetime, by: str, zone: str, brands=None) -> None:
    fast = sentiment_series(db, since, until, by, zone, brands)
    slow = series_from_rows(db, since, until, by, zone, brands)
    assert [p.as_dict() for p in fast] == [p.as_dict() for p in slow]


def _bounds(zone: str, first: date, last: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return datetime.combine(first, time(), tzinfo=tz), datetime.combine(last + timedelta(days=1), time(), tzinfo=tz)


@pytest.mark.parametrize("zone", ZONES)
def test_series_from_the_rollup_equal_the_rows(fresh_db, zone):
    _store(fresh_db)
    assert fresh_db.execute("select count(*) from trend_dirty").fetchone()[0] > 0
    for by in ("day", "week"):
        since, until = _bounds(zone, date(2026, 10, 18), date(2026, 11, 12))
        _same_series(fresh_db, since, until, by, zone)
        _same_series(fresh_db, since, until, by, zone, brands=["Acme", "(no brand)"])
        fast = topic_series(fresh_db, since, until, by, zone, None)
        assert fast == _topics_from_rows(fresh_db, since, until, by, ZoneInfo(zone), None)
        assert topic_series(fresh_db, since, until, by, zone, ["Rival"]) == _topics_from_rows(
            fresh_db, since, until, by, ZoneInfo(zone), ["Rival"]
        )
    assert fresh_db.execute("select count(*) from trend_dirty").fetchone()[0] == 0  # recounted once, then read
    _same_series(fresh_db, *_bounds(zone, date(2025, 1, 1), date(2025, 1, 31)), "day", zone)  # nothing in it
    _same_series(fresh_db, *_bounds(zone, date(2026, 10, 25), date(2026, 10, 25)), "day", zone)  # one day


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
def test_bounds_that_cut_an_hour(fresh_db, zone):
    """Bounds that are not local midnights. (The row path compares stored text with the bounds, the rollup the
    instants: they differ only for a time stored with another offset than UTC right at a bound; none here.)"""
    _store(fresh_db, offsets=False)
    _same_series(fresh_db, START + timedelta(days=3, minutes=20), START + timedelta(days=9, hours=5, minutes=50),
                 "day", zone)  # fmt: skip


def test_the_rollup_follows_every_kind_of_change(fresh_db):
    _store(fresh_db, n=300)
    since, until = _bounds("Asia/Kolkata", date(2026, 10, 18), date(2026, 11, 12))
    _same_series(fresh_db, since, until, "day", "Asia/Kolkata")  # the rollup is filled and clean from here
    ids = [r[0] for r in fresh_db.execute("select mention_id from classifications order by mention_id limit 30")]
    # Re-classified the way the classify stage writes: insert or replace (no delete trigger fires).
    fresh_db["classifications"].insert_all([{"mention_id": mid, "label": "praise", "probs": "{}", "topics": "[]"}
                                            for mid in ids[:10]], replace=True)  # fmt: skip
    fresh_db.execute("update classifications set label = 'complaint', topics = '[\"wait_time\"]' where mention_id = ?",
                     [ids[10]])  # fmt: skip
    fresh_db.execute("delete from classifications where mention_id = ?", [ids[11]])
    fresh_db.execute("update mentions set brand = 'Moved' where id = ?", [ids[12]])
    fresh_db.execute("update mentions set posted_at = ? where id = ?", [(START + timedelta(days=15)).isoformat(),
                                                                        ids[13]])  # fmt: skip
    fresh_db.execute("update mentions set backfill = 1, posted_at = null where id = ?", [ids[14]])
    late = (START + timedelta(days=2, hours=18, minutes=30)).isoformat()
    record_mentions(fresh_db, "s", [{"external_id": "late", "text": "x", "brand": "Acme", "posted_at": late}])
    fresh_db.conn.commit()
    for zone in ("Asia/Kolkata", "UTC"):
        since, until = _bounds(zone, date(2026, 10, 18), date(2026, 11, 12))
        _same_series(fresh_db, since, until, "day", zone)
        assert topic_series(fresh_db, since, until, "week", zone, None) == _topics_from_rows(
            fresh_db, since, until, "week", ZoneInfo(zone), None
        )


def test_series_read_the_rollup_not_the_rows(fresh_db):
    """The speed fix itself: once counted, an hour is read from ``trend_hours`` (a rollup row shows up)."""
    _store(fresh_db, n=50)
    since, until = _bounds("UTC", date(2026, 10, 20), date(2026, 10, 21))
    before = {p.brand: p.mentions for p in sentiment_series(fresh_db, since, until) if p.period == date(2026, 10, 20)}
    fresh_db.execute("insert into trend_hours (hour, brand, label, mentions) values ('2026-10-20T05', 'Acme', '', 7)")
    after = {p.brand: p.mentions for p in sentiment_series(fresh_db, since, until) if p.period == date(2026, 10, 20)}
    assert after["Acme"] == before.get("Acme", 0) + 7


@pytest.mark.parametrize("zone", ZONES)
def test_hour_runs_place_every_hour_in_its_local_period(zone):
    tz = ZoneInfo(zone)
    since, until = _bounds(zone, date(2026, 3, 20), date(2026, 4, 10))  # spring changes on both hemispheres
    since += timedelta(minutes=10)
    for by in ("day", "week"):
        runs, split = hour_runs(since, until, tz, by)
        covered = set(split)
        for first, stop, period in runs:
            hour = datetime.fromisoformat(first + ":00+00:00")
            while hour < datetime.fromisoformat(stop + ":00+00:00"):
                key = hour.isoformat()[:13]
                assert key not in covered
                covered.add(key)
                for minute in (0, 29, 30, 44, 45, 59):  # every instant of a whole hour is in the run's period
                    assert period_of(hour + timedelta(minutes=minute), tz, by).isoformat() == period
                hour += timedelta(hours=1)
        hours, hour = set(), since.astimezone(UTC).replace(minute=0)
        while hour < until:
            hours.add(hour.isoformat()[:13])
            hour += timedelta(hours=1)
        assert covered == hours


def _shift_config(tmp_path):
    return loads_config(
        f'[storage]\npath = "{tmp_path / "test.db"}"\n'
        + "".join(f'[[locations]]\nid = "{loc}"\ntimezone = "{tz}"\n[[locations.shifts]]\nname = "day"\n'
                  'start = "06:00"\nend = "18:00"\n[[locations.shifts]]\nname = "night"\nstart = "18:00"\n'
                  'end = "06:00"\n' for loc, tz in LOCATIONS),
        tmp_path / "config.toml",
    )  # fmt: skip


def _attribute(db, seed: int = 9) -> None:
    rng = random.Random(seed)
    mids = [r[0] for r in db.execute("select id from mentions where posted_at is not null")]
    estimates, attributions = [], []
    for mid in mids:
        location = rng.choice(["berlin", "delhi", "kathmandu"])
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
    db.conn.commit()


def _same_counts(db, since: date, until: date, location: str | None = None) -> None:
    fast, slow = shift_counts(db, since, until, location), counts_from_rows(db, since, until, location)
    assert set(fast) == set(slow)
    for key, bucket in slow.items():
        assert fast[key]["mentions"] == pytest.approx(bucket["mentions"])
        assert fast[key]["complaints"] == pytest.approx(bucket["complaints"])
        assert fast[key]["days"] == bucket["days"]
        assert dict(fast[key]["topics"]) == pytest.approx(dict(bucket["topics"]))


def test_shift_counts_from_the_rollup_equal_the_rows(fresh_db):
    _store(fresh_db, n=600)
    _attribute(fresh_db)
    for since, until, location in ((date(2026, 10, 18), date(2026, 11, 12), None),
                                   (date(2026, 10, 25), date(2026, 10, 31), "delhi"),
                                   (date(2025, 1, 1), date(2025, 1, 30), None)):  # fmt: skip
        _same_counts(fresh_db, since, until, location)
    assert fresh_db.execute("select count(*) from shift_dirty").fetchone()[0] == 0
    # The shifts stage re-attributes (delete + insert or replace); the classify stage re-labels.
    ids = [r[0] for r in fresh_db.execute("select mention_id from shift_attributions order by 1 limit 20")]
    fresh_db.execute(f"delete from shift_attributions where mention_id in ({', '.join('?' * 10)})", ids[:10])
    fresh_db["shift_attributions"].insert_all([{"mention_id": mid, "location": "berlin", "shift": "night",
                                                "shift_date": "2026-11-02", "weight": 1.0} for mid in ids[:10]],
                                              replace=True)  # fmt: skip
    fresh_db["classifications"].insert_all([{"mention_id": mid, "label": "complaint", "probs": "{}",
                                             "topics": '["wait_time", "wait_time"]'} for mid in ids[10:]],
                                           replace=True)  # fmt: skip
    fresh_db.conn.commit()
    _same_counts(fresh_db, date(2026, 10, 18), date(2026, 11, 12))


def _heatmap_before(db, config, since: date, until: date) -> dict[str, list[list[float]]]:
    """The heatmap as it was computed before the rollups: every window walked quarter hour by quarter hour."""
    rows = db.query(
        "select e.location, e.window_start, e.window_end from incident_estimates e "
        "join classifications c on c.mention_id = e.mention_id where c.label = 'complaint' and e.mention_id in "
        "(select mention_id from shift_attributions where shift_date >= ? and shift_date <= ?)",
        [since.isoformat(), until.isoformat()],
    )
    grids = {loc.id: [[0.0] * 24 for _ in range(7)] for loc in config.locations}
    zones = {loc.id: ZoneInfo(loc.timezone) for loc in config.locations}
    for row in rows:
        start, end = parse_utc(row["window_start"]), parse_utc(row["window_end"])
        tz, grid = zones[row["location"]], grids[row["location"]]
        if end <= start:
            local = start.astimezone(tz)
            grid[local.weekday()][local.hour] += 1.0
            continue
        total, cursor = (end - start).total_seconds(), start
        while cursor < end:
            step = cursor.replace(minute=(cursor.minute // 15) * 15, second=0, microsecond=0) + timedelta(minutes=15)
            piece_end = min(step, end)
            local = cursor.astimezone(tz)
            grid[local.weekday()][local.hour] += (piece_end - cursor).total_seconds() / total
            cursor = piece_end
    return grids


def test_heatmap_equals_the_quarter_hour_walk(fresh_db, tmp_path):
    config = _shift_config(tmp_path)
    _store(fresh_db, n=600)
    _attribute(fresh_db)
    since, until = date(2026, 10, 18), date(2026, 11, 12)
    fast, slow = complaint_heatmap(fresh_db, config, since, until), _heatmap_before(fresh_db, config, since, until)
    assert set(fast) == set(slow)
    for loc, grid in slow.items():
        for day in range(7):
            assert fast[loc][day] == pytest.approx(grid[day], abs=1e-9)
    assert sum(map(sum, fast["kathmandu"])) > 0
    empty = complaint_heatmap(fresh_db, config, date(2025, 1, 1), date(2025, 1, 5), "delhi")
    assert empty == {"delhi": [[0.0] * 24 for _ in range(7)]}


def test_a_count_at_or_below_its_mean_is_never_a_spike():
    """find_spikes skips the tail sum there (the slow part for big weekly counts): the tail is over 1/2."""
    for mean in [0.5, 0.9, 1.0, 2.5, 3.3, 7.0, 19.99, 150.5, 2400.25]:
        for k in range(0, math.floor(mean) + 1):
            assert poisson_tail(k, mean) >= 0.5


def test_share_of_voice_counts_every_brand_in_the_rollup(fresh_db):
    _store(fresh_db, n=200)
    since, until = _bounds("Asia/Kathmandu", date(2026, 10, 18), date(2026, 11, 12))
    points = sentiment_series(fresh_db, since, until, "week", "Asia/Kathmandu", ["Rival"])
    totals = defaultdict(int)
    for p in sentiment_series(fresh_db, since, until, "week", "Asia/Kathmandu"):
        if p.brand != "(no brand)":
            totals[p.period] += p.mentions
    for p in points:
        assert p.share_of_voice == (round(p.mentions / totals[p.period], 4) if totals[p.period] else None)
