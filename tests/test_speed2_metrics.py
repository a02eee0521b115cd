"""Response metrics counted in SQL (monitor/queue/metrics.py, dashboard_data.metrics_by_day) give exactly what the
Python summary they replaced gave: that summary is kept here as the reference, and both run on a small store with
the edge cases (unreplied, dismissed, replied before reply times were kept, no start time, backfill items with and
without a reopening, inferred locations, NULL and empty group keys, recoveries, times with offsets)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from monitor.queue import metrics
from monitor.queue.items import LOCATION_SQL, untimed_sql
from monitor.store import open_db
from monitor.trends.series import period_of
from monitor.web.dashboard_data import local_day_sql, metrics_by_day

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------- the reference: the Python summary as it was

REFERENCE_SQL = """
select q.id, q.state, q.assignee, q.sla_due_at, q.first_replied_at, q.created_at,
       case when {untimed} then m.first_seen_at else coalesce(m.posted_at, m.first_seen_at) end as started_at,
       {untimed} as untimed, m.source, {location} as location,
       r.outcome as recovery, r.rating_before, r.rating_after
from queue_items q join mentions m on m.id = q.mention_id
left join recoveries r on r.queue_item_id = q.id
where q.created_at >= ? and q.created_at < ?
"""


def _minutes(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    b = b if b.tzinfo else b.replace(tzinfo=UTC)
    return max((b - a).total_seconds() / 60, 0.0)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def reference_summarise(rows: list[dict[str, Any]], now: datetime) -> metrics.ResponseMetrics:
    out = metrics.ResponseMetrics(items=len(rows))
    now_iso = now.isoformat()
    times, changes = [], []
    for row in rows:
        if row["first_replied_at"]:
            out.replied += 1
            minutes = _minutes(row["started_at"], row["first_replied_at"])
            if minutes is not None:
                times.append(minutes)
            if not row.get("untimed") and row["sla_due_at"] and row["first_replied_at"] > row["sla_due_at"]:
                out.sla_breaches += 1
        elif row["state"] == "dismissed":
            out.dismissed += 1
        elif row["state"] == "replied":
            out.replied += 1
        else:
            out.open += 1
            if not row.get("untimed") and row["sla_due_at"] and row["sla_due_at"] < now_iso:
                out.sla_breaches += 1
                out.breached_open += 1
        if row["recovery"]:
            out.recoveries[row["recovery"]] = out.recoveries.get(row["recovery"], 0) + 1
            if row["rating_before"] is not None and row["rating_after"] is not None:
                changes.append(row["rating_after"] - row["rating_before"])
    needed = out.items - out.dismissed
    out.response_rate = round(out.replied / needed, 4) if needed else None
    out.breach_rate = round(out.sla_breaches / needed, 4) if needed else None
    out.median_first_response_minutes = _quantile(times, 0.5)
    out.p90_first_response_minutes = _quantile(times, 0.9)
    rated = sum(out.recoveries.get(k, 0) for k in ("recovered", "unchanged", "worse"))
    out.recovery_rate = round(out.recoveries.get("recovered", 0) / rated, 4) if rated else None
    out.mean_rating_change = round(sum(changes) / len(changes), 2) if changes else None
    return out


def _reference_rows(db, since: datetime, until: datetime) -> list[dict[str, Any]]:
    sql = REFERENCE_SQL.format(untimed=untimed_sql(db), location=LOCATION_SQL)
    return list(db.query(sql + " order by q.created_at, q.id", [since.isoformat(), until.isoformat()]))


def reference_metrics(db, since, until, group_by=None, now=None):
    now = now or datetime.now(UTC)
    rows = _reference_rows(db, since, until)
    groups: dict[str, list[dict[str, Any]]] = {}
    if group_by:
        for row in rows:
            groups.setdefault(row[group_by] or "(none)", []).append(row)
    return reference_summarise(rows, now), {key: reference_summarise(groups[key], now) for key in sorted(groups)}


def reference_by_day(db, since, until, timezone, now, weekly=False):
    zone = ZoneInfo(timezone)
    by = "week" if weekly else "day"
    buckets: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in _reference_rows(db, since, until):
        buckets[period_of(datetime.fromisoformat(row["created_at"]), zone, by)].append(row)
    day, last = period_of(since, zone, by), period_of(until - timedelta(microseconds=1), zone, by)
    out = []
    while day <= last:
        out.append((day, reference_summarise(buckets.get(day, []), now)))
        day += timedelta(days=7 if weekly else 1)
    return out


# ---------------------------------------------------------------- a small store with the edge cases


def _iso(moment: datetime, offset: str = "") -> str:
    if offset:  # the same instant written with another UTC offset
        sign = 1 if offset[0] == "+" else -1
        shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
        return (moment + shift).replace(tzinfo=None).isoformat() + offset
    return moment.isoformat()


@pytest.fixture
def store(tmp_path):
    db = open_db(tmp_path / "m.db")
    rng = random.Random(7)
    sources = ["yelp", "reddit", "feed"]
    assignees = ["dana", "sam", None, ""]
    outcomes = [None, None, None, "recovered", "unchanged", "worse", "no_rating", ""]
    for i in range(1, 241):
        source = sources[i % 3]
        created = NOW - timedelta(days=40) + timedelta(minutes=i * 233 + rng.randint(0, 59))
        posted = created - timedelta(minutes=rng.choice([0, 1, 15, 45, 90, 600]), seconds=rng.choice([0, 15, 30]))
        backfill = 1 if i % 17 == 0 else 0
        no_start = i % 23 == 0
        db["mentions"].insert({
            "id": i, "source": source, "external_id": f"e{i}", "kind": "review", "author": f"a{i % 9}",
            "text": "t", "rating": 2.0, "posted_at": None if backfill or no_start else _iso(posted, ["", "+05:30",
            "-04:00", ""][i % 4]), "first_seen_at": None if no_start else (posted + timedelta(minutes=7)).isoformat(),
            # Reddit posts have no location of their own: the shifts stage infers one for some of them.
            "location": None if source == "reddit" else ("" if i % 11 == 0 else ["downtown", "airport"][i % 2]),
            "backfill": backfill,
        })  # fmt: skip
        if source == "reddit" and i % 2:
            db["incident_estimates"].insert({"mention_id": i, "location": "downtown", "basis": "keyword"})
        roll = rng.random()
        state = "new" if roll < 0.2 else "assigned" if roll < 0.3 else "dismissed" if roll < 0.4 else "replied"
        replied = None
        if state == "replied" and i % 13:  # i % 13 == 0: replied before reply times were kept
            replied = _iso(posted + timedelta(minutes=rng.choice([2, 30, 61, 300, 1500, 3000]),
                                              seconds=rng.choice([0, 15, 45])))  # fmt: skip
        if state == "dismissed" and i % 7 == 0:
            replied = _iso(posted + timedelta(hours=2))  # replied, then dismissed: counted as replied
        if i % 29 == 0:
            replied = _iso(posted - timedelta(minutes=5))  # a reply "before" the post: 0 minutes
        due = None if backfill else _iso(posted + timedelta(hours=rng.choice([1, 24])))
        db["queue_items"].insert({
            "id": i, "mention_id": i, "state": state, "priority": 1.0, "reason": "complaint",
            "sla_due_at": "" if i % 31 == 0 else due, "assignee": assignees[i % 4] if state != "new" else None,
            "created_at": created.isoformat(), "updated_at": created.isoformat(), "first_replied_at": replied,
        })  # fmt: skip
        if backfill and i % 2:  # reopened by new activity: it has a clock again
            db["queue_events"].insert({"queue_item_id": i, "at": created.isoformat(), "actor": "system",
                                       "action": "new", "detail": "reopened"})  # fmt: skip
        outcome = outcomes[i % len(outcomes)]
        if outcome is not None and replied:
            after = None if outcome == "no_rating" else {"recovered": 4.5, "unchanged": 2.0}.get(outcome, 1.0)
            db["recoveries"].insert({"queue_item_id": i, "mention_id": i, "outcome": outcome, "rating_before": 2.0,
                                     "rating_after": after})  # fmt: skip
    yield db
    db.conn.close()


def _as_dicts(result) -> tuple[dict, dict]:
    overall, groups = result
    return asdict(overall), {key: asdict(value) for key, value in groups.items()}


@pytest.mark.parametrize("group_by", [None, "assignee", "source", "location"])
@pytest.mark.parametrize("days", [1, 7, 45])
def test_sql_metrics_equal_the_python_summary(store, group_by, days):
    for now in (NOW, NOW - timedelta(days=3), NOW + timedelta(days=30)):
        since, until = now - timedelta(days=days), now + timedelta(seconds=1)
        new = metrics.response_metrics(store, since, until, group_by, now)
        old = reference_metrics(store, since, until, group_by, now)
        assert _as_dicts(new) == _as_dicts(old)
        assert list(new[1]) == list(old[1])  # groups in the same (sorted) order
        assert list(new[0].recoveries) == list(old[0].recoveries)  # outcomes in the order they were met


def test_the_store_has_every_edge_case(store):
    overall, by_location = reference_metrics(store, NOW - timedelta(days=60), NOW, "location", NOW)
    assert overall.dismissed and overall.open and overall.breached_open and overall.recoveries
    assert overall.mean_rating_change is not None and set(overall.recoveries) >= {"recovered", "unchanged", "worse"}
    assert "(none)" in by_location and "downtown" in by_location  # empty location; Reddit posts placed downtown
    _overall, by_assignee = reference_metrics(store, NOW - timedelta(days=60), NOW, "assignee", NOW)
    assert "(none)" in by_assignee  # NULL and '' together
    rows = _reference_rows(store, NOW - timedelta(days=60), NOW)
    assert any(r["untimed"] for r in rows) and any(r["first_replied_at"] and not r["started_at"] for r in rows)
    assert any(r["state"] == "replied" and not r["first_replied_at"] for r in rows)


def test_a_junk_post_time_costs_the_item_its_time_not_the_page(store):
    store.execute("update mentions set posted_at = 'yesterday' where id = 10")
    assert store.execute("select first_replied_at from queue_items where id = 10").fetchone()[0]
    with pytest.raises(ValueError):  # the Python summary could not read it: the whole page failed
        reference_metrics(store, NOW - timedelta(days=60), NOW, "source", NOW)
    overall, groups = metrics.response_metrics(store, NOW - timedelta(days=60), NOW, "source", NOW)
    assert overall.items == 240 and sum(g.items for g in groups.values()) == 240


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("weekly", [False, True])
def test_metrics_by_day_equal_the_python_summary(store, timezone, weekly):
    # 2026-11-01: New York leaves summer time, Lord Howe keeps +11; the range crosses it.
    since, until = NOW - timedelta(days=38), NOW + timedelta(seconds=1)
    new = metrics_by_day(store, since, until, timezone, NOW, weekly)
    old = reference_by_day(store, since, until, timezone, NOW, weekly)
    assert [(day, asdict(m)) for day, m in new] == [(day, asdict(m)) for day, m in old]


@pytest.mark.sqlite_only(reason="SQLite's date arithmetic (PostgreSQL's: tests/test_pg_rollups.py)")
def test_local_day_sql_switches_offset_where_the_zone_does(store):
    zone = ZoneInfo("America/New_York")
    since, until = datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    sql, params = local_day_sql(":t", since, until, zone)
    assert params["day_shift0"] == "-240 minutes" and params["day_shift1"] == "-300 minutes"
    for moment in (datetime(2026, 11, 1, 5, 59, 59, tzinfo=UTC), datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
                   datetime(2026, 11, 2, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 3, 59, tzinfo=UTC)):  # fmt: skip
        day = store.execute(f"select {sql}", {**params, "t": moment.isoformat()}).fetchone()[0]
        assert day == moment.astimezone(zone).date().isoformat(), moment


def test_cli_metrics_output_is_unchanged(store, tmp_path, monkeypatch):
    from monitor.cli import cli

    (tmp_path / "config.toml").write_text(f'[storage]\npath = "{tmp_path / "m.db"}"\n')
    monkeypatch.setattr("monitor.cli.datetime", _FrozenClock)
    outputs = {}
    for name, function in (("new", metrics.response_metrics), ("old", reference_metrics)):
        monkeypatch.setattr(metrics, "response_metrics", function)
        runs = []
        for args in (["--days", "45"], ["--days", "45", "--by", "location"], ["--days", "45", "--format", "json"]):
            result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "queue", "metrics", *args])
            assert result.exit_code == 0, result.output
            runs.append(result.output)
        outputs[name] = runs
    assert outputs["new"] == outputs["old"]
    assert json.loads(outputs["new"][2])["all"]["items"] > 100


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW if tz else NOW.replace(tzinfo=None)
