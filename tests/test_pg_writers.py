# ruff: noqa: F811 -- the fixtures from tests/pg.py are imported by name, and test arguments name them

"""The remaining writers on both backends (docs/postgres-port.md, step 5): the alert ledger's claims, the web
login's session generation, the shifts stage's estimates, attributions and incidents, and the alert
detectors reading them.

Every test taking ``target`` runs on SQLite and on a real PostgreSQL server (tests/pg.py); ``target`` is the
store's path or URL, so a test can open several connections to one store, as separate processes do."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.detect import Alert, detect_alerts
from monitor.alerts.ledger import CLAIM_TIMEOUT, claim, mark_sent, pending, release, sent_count
from monitor.config import loads_config
from monitor.db.dialect import upsert_sql
from monitor.shifts.incidents import incidents_for_day
from monitor.shifts.stage import _UPSERT_ROWS, _replace_rows, estimate_and_attribute, mention_shift
from monitor.store import open_db, record_mentions
from monitor.web.auth import end_sessions, session_generation

from .pg import pg_server, pg_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A migrated, empty store on each backend: its path (SQLite) or URL (PostgreSQL)."""
    store = request.getfixturevalue("pg_url") if request.param == "postgresql" else tmp_path / "m.db"
    open_db(store).conn.close()  # create and migrate once, before tests open connections side by side
    return store


@pytest.fixture
def connect(target):
    """Open connections to ``target`` (closed at the end of the test)."""
    opened = []

    def open_one():
        db = open_db(target)
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.conn.close()


def alert(key: str, kind: str = "urgent_item", **detail: Any) -> Alert:
    return Alert(kind=kind, key=key, title=f"alert {key}", detail={"n": key, **detail})


def in_threads(count: int, work) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; their results in order (errors re-raised)."""
    barrier, results, errors = threading.Barrier(count), [None] * count, []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------ alert ledger


def test_a_claimed_alert_is_not_claimed_again_until_released(connect):
    first, second = connect(), connect()  # two processes' connections
    alerts = [alert("1"), alert("2")]
    assert claim(first, alerts, "email") == alerts
    assert claim(second, alerts, "email") == []  # being sent by the first
    assert claim(first, alerts, "webhook") == alerts  # another channel has its own claims
    assert pending(second, alerts, "email") == []
    # Sending alert 1 worked, alert 2 failed: 1 is recorded, 2 is released for the next run.
    mark_sent(first, alerts[:1], "email")
    release(first, alerts[1:], "email")
    assert sent_count(second, "email") == 1 and sent_count(second) == 1
    assert pending(second, alerts, "email") == alerts[1:]
    assert claim(second, alerts, "email") == alerts[1:]
    assert claim(first, alerts, "email") == []


def test_two_claimers_at_once_exactly_one_wins_each_alert(connect):
    alerts = [alert(str(i)) for i in range(20)]
    dbs = [connect() for _ in range(4)]
    won = in_threads(len(dbs), lambda i: claim(dbs[i], alerts, "email"))
    keys = [a.key for mine in won for a in mine]
    assert sorted(keys) == sorted(a.key for a in alerts)  # every alert claimed, none twice
    rows = dbs[0].execute("select count(*) from alerts_sent where sent_at is null").fetchone()[0]
    assert rows == len(alerts)


def test_a_failed_send_releases_only_its_own_unsent_claims(connect):
    db = connect()
    sent, failed = alert("sent"), alert("failed")
    assert claim(db, [sent, failed], "email") == [sent, failed]
    mark_sent(db, [sent], "email")
    release(db, [sent, failed], "email")  # a delivered alert's row stays whatever the caller passes
    assert sent_count(db, "email") == 1
    assert [r["subject_key"] for r in db.query("select subject_key from alerts_sent")] == ["sent"]
    release(db, [], "email")  # nothing to release: no statement


def test_mark_sent_is_idempotent_and_completes_a_claim(connect):
    db = connect()
    one = alert("1")
    claim(db, [one], "webhook")
    mark_sent(db, [one], "webhook")
    [row] = db.query("select sent_at, detail from alerts_sent")
    assert row["sent_at"] and "_claim" not in json.loads(row["detail"])  # the claim facts are gone
    mark_sent(db, [one], "webhook")  # a second record keeps the first delivery time
    assert list(db.query("select sent_at from alerts_sent")) == [{"sent_at": row["sent_at"]}]
    mark_sent(db, [alert("2")], "webhook")  # a record without a claim (the webhook marks at once)
    assert sent_count(db, "webhook") == 2


def test_an_abandoned_claim_is_taken_over(connect):
    first, second = connect(), connect()
    one = alert("1")
    assert claim(first, [one], "email") == [one]
    old = (datetime.now(UTC) - CLAIM_TIMEOUT - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    [row] = first.query("select detail from alerts_sent")
    detail = json.loads(row["detail"])
    detail["_claim"]["at"] = old
    first.execute("update alerts_sent set detail = ?", [json.dumps(detail)])
    assert claim(second, [one], "email") == [one]  # the stale claim is deleted and claimed afresh
    [row] = second.query("select detail from alerts_sent")
    assert json.loads(row["detail"])["_claim"]["at"] != old


def test_an_incident_whose_window_moved_is_the_same_incident(connect):
    db = connect()
    first = alert("downtown@10", "incident", location="downtown", window_start="2026-11-20T10:00:00+00:00",
                  window_end="2026-11-20T11:00:00+00:00")  # fmt: skip
    grown = alert("downtown@09", "incident", location="downtown", window_start="2026-11-20T09:00:00+00:00",
                  window_end="2026-11-20T11:30:00+00:00")  # fmt: skip
    assert claim(db, [first], "email") == [first]
    assert claim(db, [grown], "email") == []


# ------------------------------------------------------------------ web logins


def test_session_generation_is_made_once_and_replaced_at_logout(connect):
    first, second = connect(), connect()
    assert session_generation(first, "dana") is None  # never logged in, and nothing made
    assert first["meta"].count == second["meta"].count
    made = session_generation(first, "dana", create=True)
    assert made and session_generation(second, "dana", create=True) == made  # a second login keeps it
    assert session_generation(second, "sam", create=True) not in (None, made)  # per user
    end_sessions(second, "dana")
    renewed = session_generation(first, "dana")
    assert renewed and renewed != made
    end_sessions(first, "newcomer")  # logging out someone without a generation makes one
    assert session_generation(second, "newcomer") is not None


def test_first_logins_at_once_share_one_generation(connect):
    dbs = [connect() for _ in range(4)]
    made = in_threads(len(dbs), lambda i: session_generation(dbs[i], "dana", create=True))
    assert made[0] and len(set(made)) == 1


# ------------------------------------------------------------------ shifts stage

SHIFTS_CONFIG = """
[storage]
path = "m.db"
[trends]
timezone = "UTC"
[alerts]
urgent_items = false
spikes = false
sla_breaches = false
incidents = true
max_age = "30d"

[[locations]]
id = "downtown"
name = "Acme Downtown"
timezone = "America/New_York"
keywords = ["main street"]
[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"
[[locations.shifts]]
name = "evening"
start = "14:00"
end = "22:00"

[[locations]]
id = "airport"
timezone = "America/New_York"
sources = ["airport-feed"]
[[locations.shifts]]
name = "overnight"
start = "22:00"
end = "06:00"

[[sources]]
name = "reddit"
type = "reddit"
search = ["acme"]
visit_lag = "30m"

[[sources]]
name = "airport-feed"
type = "schema_org"
urls = ["https://acme.example/airport"]
"""
INCIDENT_POSTS = ["2026-11-20T23:00:00+00:00", "2026-11-21T00:10:00+00:00", "2026-11-21T01:00:00+00:00"]


def shifts_config(tmp_path: Path):
    return loads_config(SHIFTS_CONFIG, tmp_path / "config.toml")


def add(db, source: str, ext: str, text: str, label: str, posted: str, topics=(), **fields) -> int:
    [mid] = record_mentions(db, source, [{"external_id": ext, "text": text, "posted_at": posted, **fields}]).mention_ids
    db["classifications"].insert(
        {"mention_id": mid, "label": label, "topics": json.dumps(list(topics)), "probs": "{}", "urgency": "[]"},
        replace=True,
    )
    return mid


def fill(db) -> dict[str, int]:
    """Three complaints at downtown within two hours (an incident), and mentions placed every other way."""
    ids = {
        f"incident{i}": add(db, source, f"i{i}", "so slow", "complaint", posted, topics=["wait_time"],
                            location="downtown")
        for i, (source, posted) in enumerate(zip(["reviews", "reddit", "reviews"], INCIDENT_POSTS, strict=True))
    }  # fmt: skip
    ids["late"] = add(
        db, "reviews", "late", "slow again", "complaint", "2026-11-21T15:00:00+00:00", location="downtown"
    )
    ids["praise"] = add(db, "reviews", "p", "lovely", "praise", "2026-11-21T00:30:00+00:00", location="downtown")
    ids["by_source"] = add(db, "airport-feed", "a", "slow", "complaint", "2026-11-21T08:00:00+00:00")
    ids["by_keyword"] = add(db, "reddit", "k", "Main Street staff ignored me 20 minutes ago", "complaint",
                            "2026-11-21T20:00:00Z")  # fmt: skip
    ids["nowhere"] = add(db, "reddit", "n", "acme is fine", "neutral", "2026-11-21T08:00:00+00:00")
    ids["no_time"] = add(db, "reddit", "t", "main street", "neutral", "not a date")
    db.execute("update mentions set backfill = 1 where id = ?", [ids["no_time"]])  # first seen is no post time
    return ids


def tables(db) -> dict[str, list[dict[str, Any]]]:
    """What the stage wrote, without the write times (they differ from run to run)."""
    return {
        "estimates": list(db.query("select mention_id, location, window_start, window_end, basis, detail "
                                   "from incident_estimates order by mention_id")),
        "attributions": list(db.query("select mention_id, location, shift, shift_date, weight "
                                      "from shift_attributions order by mention_id, shift_date, shift")),
        "incidents": list(db.query("select id, location, window_start, window_end, shift, shift_date, complaints, "
                                   "sources, topic from incidents order by id")),
        "incident_mentions": list(db.query("select incident_id, mention_id from incident_mentions "
                                           "order by incident_id, mention_id")),
    }  # fmt: skip


def test_the_shifts_stage_writes_estimates_attributions_and_incidents(connect, tmp_path):
    config, db = shifts_config(tmp_path), connect()
    ids = fill(db)
    counts = estimate_and_attribute(db, config)
    assert (counts.estimated, counts.without_location, counts.without_time, counts.incidents) == (7, 1, 1, 1)
    estimates = {r["mention_id"]: r for r in tables(db)["estimates"]}
    assert len(estimates) == len(ids)  # every mention has a row, with no window when it has no place or time
    assert estimates[ids["nowhere"]]["basis"] == "no location" and estimates[ids["nowhere"]]["window_start"] is None
    assert estimates[ids["no_time"]]["basis"] == "no time"
    assert estimates[ids["by_source"]]["location"] == "airport"
    keyword = mention_shift(db, ids["by_keyword"])
    assert keyword["location"] == "downtown" and keyword["basis"] == "text" and keyword["detail"] == "20 minutes ago"
    assert keyword["window_start"] == "2026-11-21T19:30:00+00:00"
    assert keyword["shifts"] == [{"shift": "evening", "shift_date": "2026-11-21", "weight": 1.0}]
    [incident] = incidents_for_day(db, config, date(2026, 11, 20))
    assert (incident["location"], incident["complaints"], incident["topic"]) == ("downtown", 3, "wait_time")
    assert incident["sources"] == ["reddit", "reviews"]
    assert sorted(incident["mention_ids"]) == sorted(ids[f"incident{i}"] for i in range(3))
    assert mention_shift(db, ids["incident0"])["incident"]["id"] == incident["id"]

    # Re-running estimates nothing and keeps the incident's id and first detection time.
    before = tables(db)
    detected = db.execute("select detected_at from incidents").fetchone()[0]
    assert estimate_and_attribute(connect(), config).estimated == 0
    assert tables(db) == before
    assert db.execute("select detected_at from incidents").fetchone()[0] == detected

    # An edited mention is estimated again (its estimate and attributions replaced, the mark moved on).
    record_mentions(db, "reviews", [{"external_id": "late", "text": "slow, this morning around 7",
                                     "location": "downtown", "posted_at": "2026-11-21T15:00:00+00:00"}])  # fmt: skip
    assert estimate_and_attribute(db, config).estimated == 1
    assert mention_shift(db, ids["late"])["shifts"][0]["shift"] == "morning"
    assert db.execute("select value from meta where key = 'shifts.revision_mark'").fetchone()[0] != "0"
    assert estimate_and_attribute(db, config).estimated == 0


def test_a_grown_incident_keeps_its_id_and_new_ones_get_fresh_ids(connect, tmp_path):
    config, db = shifts_config(tmp_path), connect()
    fill(db)
    estimate_and_attribute(db, config)
    [first] = list(db.query("select id, window_start from incidents"))
    add(db, "reviews", "earlier", "so slow", "complaint", "2026-11-20T22:20:00+00:00", location="downtown")
    for i, posted in enumerate(["2026-11-25T12:00:00+00:00", "2026-11-25T12:30:00+00:00", "2026-11-25T13:00:00Z"]):
        add(db, "reviews", f"next{i}", "cold", "complaint", posted, location="downtown")
    assert estimate_and_attribute(db, config).incidents == 2
    rows = list(db.query("select id, window_start, complaints from incidents order by window_start"))
    assert rows[0]["window_start"] != first["window_start"] and rows[0]["complaints"] == 4
    assert rows[1]["id"] not in (None, rows[0]["id"])


def test_a_config_change_recomputes_every_estimate(connect, tmp_path):
    config, db = shifts_config(tmp_path), connect()
    fill(db)
    estimate_and_attribute(db, config)
    changed = loads_config(SHIFTS_CONFIG.replace('end = "22:00"', 'end = "23:00"'), tmp_path / "config.toml")
    assert estimate_and_attribute(db, changed).estimated == 7
    assert estimate_and_attribute(db, changed).estimated == 0


def test_both_backends_store_the_same_shifts_results(tmp_path, pg_url):
    config = shifts_config(tmp_path)
    results = []
    for store in (tmp_path / "s.db", pg_url):
        db = open_db(store)
        fill(db)
        estimate_and_attribute(db, config)
        results.append(tables(db))
        db.conn.close()
    assert results[0] == results[1]


def test_replacing_rows_on_postgresql_goes_in_batches_and_keeps_the_last_of_a_key(connect, tmp_path):
    db = connect()
    mentions = record_mentions(db, "s", [{"external_id": str(i), "text": "x"} for i in range(_UPSERT_ROWS + 5)])
    rows = [{"mention_id": mid, "location": "a", "basis": "first"} for mid in mentions.mention_ids]
    rows.append({**rows[0], "basis": "last"})  # one key twice: the later row wins, as with insert or replace
    _replace_rows(db, "incident_estimates", ("mention_id",), rows)
    assert db["incident_estimates"].count == _UPSERT_ROWS + 5
    got = db.execute("select basis from incident_estimates where mention_id = ?", [rows[0]["mention_id"]])
    assert got.fetchone()[0] == "last"
    _replace_rows(db, "incident_estimates", ("mention_id",), [{**rows[1], "basis": "again", "location": None}])
    assert list(db.query("select location, basis from incident_estimates where mention_id = ?",
                         [rows[1]["mention_id"]])) == [{"location": None, "basis": "again"}]  # fmt: skip
    _replace_rows(db, "incident_estimates", ("mention_id",), [])


def test_upsert_sql_refuses_names_that_are_not_plain_identifiers():
    assert upsert_sql("t", ["k", "v"], ["k"], rows=2) == (
        'insert into "t" ("k", "v") values (?, ?), (?, ?) on conflict ("k") do update set "v" = excluded."v"'
    )
    assert upsert_sql("t", ["k"], ["k"]).endswith('on conflict ("k") do nothing')
    for bad in ('t"; drop table mentions; --', "mentiöns", "a b", ""):
        with pytest.raises(ValueError):
            upsert_sql(bad, ["k"], ["k"])
        with pytest.raises(ValueError):
            upsert_sql("t", ["k", bad], ["k"])
    with pytest.raises(ValueError):
        upsert_sql("t", ["v"], ["k"])  # the key must be among the columns


# ------------------------------------------------------------------ alert detectors


def test_detectors_read_the_stage_results_and_queue(connect, tmp_path):
    config, db = shifts_config(tmp_path), connect()
    now = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
    ids = fill(db)
    estimate_and_attribute(db, config)
    # Mentions first seen "now" count as new; make them so for the detectors' max_age window.
    db.execute("update mentions set first_seen_at = ?", [now.isoformat()])
    [incident] = detect_alerts(db, config, now)
    assert incident.kind == "incident" and incident.key.startswith("downtown@")
    assert incident.title.startswith("Incident at Acme Downtown: 3 complaints") and "(wait_time)" in incident.title
    assert len(incident.excerpts) == 3

    # An urgent queue item and an overdue one (items are inserted directly: the queue is another stage).
    db["classifications"].insert(
        {"mention_id": ids["late"], "label": "complaint", "topics": "[]", "probs": '{"complaint": 0.99}',
         "urgency": '["safety_health"]'}, replace=True)  # fmt: skip
    item = {"mention_id": ids["late"], "state": "new", "priority": 90.0, "created_at": now.isoformat(),
            "sla_due_at": (now - timedelta(hours=1)).isoformat()}  # fmt: skip
    db["queue_items"].insert(item)
    config.alerts = dataclasses.replace(config.alerts, urgent_items=True, sla_breaches=True, flags=["safety_health"])
    kinds = sorted(a.kind for a in detect_alerts(db, config, now))
    assert kinds == ["incident", "sla_breach", "urgent_item"]
    # A backfill mention (no trustworthy time) raises no item alert.
    db.execute("update mentions set backfill = 1 where id = ?", [ids["late"]])
    assert sorted(a.kind for a in detect_alerts(db, config, now)) == ["incident"]


def test_the_digests_own_queries_run_on_both_backends(connect, tmp_path):
    """digest/build.py's SQL is the common form (its metrics, trends and shift parts are other modules')."""
    from zoneinfo import ZoneInfo

    from monitor.digest import build

    db, zone = connect(), ZoneInfo("UTC")
    ids = fill(db)
    db["queue_items"].insert({"mention_id": ids["late"], "state": "new", "sla_due_at": "2026-11-21T16:00:00+00:00"})
    start, end = "2026-11-20T00:00:00+00:00", "2026-11-22T00:00:00+00:00"
    assert build._count_labels(db, start, end) == {"complaint": 6, "praise": 1, "neutral": 1}
    complaints = build._mentions(db, "complaint", start, end, 3, {}, build._Links("http://inbox"), zone)
    assert len(complaints) == 3 and all(c["location"] in ("downtown", "") for c in complaints)
    assert [(t["topic"], t["count"]) for t in build._topics(db, start, end)] == [("wait_time", 3)]
    shown, total = build._overdue(db, datetime(2026, 11, 21, 18, tzinfo=UTC), build._Links(""), zone)
    assert total == 1 and shown[0]["id"] and shown[0]["late"]
