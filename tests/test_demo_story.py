"""The demo tells its story on any day at any hour: an incident, a flagged shift, a spike and a recovery.

Each check goes through the function the digest, the dashboards or the CLI use. The demo runs twice:
with its content dated from now, and from just after local midnight today (the hour where "yesterday"
and "today" are easiest to get wrong). The pipeline itself runs on the real clock both times.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.demo.review_content import SITE_TZ
from monitor.demo.review_week import RECOVERY_ID
from monitor.demo.run import run_demo
from monitor.store import open_db


def _anchors() -> dict[str, datetime]:
    now = datetime.now(UTC).astimezone(SITE_TZ)
    after_midnight = now.replace(hour=0, minute=5, second=0, microsecond=0)
    return {"now": now, "after-midnight": min(after_midnight, now)}


@pytest.fixture(scope="module", params=["now", "after-midnight"])
def demo(request, tmp_path_factory, tiny_model_dir):
    anchor = _anchors()[request.param]
    lines: list[str] = []
    workdir = tmp_path_factory.mktemp(f"demo-{request.param}")
    summary = run_demo(workdir, serve_inbox=False, echo=lines.append, model=str(tiny_model_dir), now=anchor)
    config = load_config(summary["config"])
    db = open_db(config.storage_path)
    yield {"summary": summary, "config": config, "db": db, "lines": lines, "anchor": anchor,
           "yesterday": anchor.date() - timedelta(days=1)}  # fmt: skip
    db.conn.close()


def _client(config):
    from monitor.web.app import create_app

    app = create_app(config, users={})
    app.testing = True
    return app.test_client()


def test_an_incident_yesterday_evening_downtown_in_the_digest_and_on_shifts(demo):
    from monitor.digest.build import gather_digest
    from monitor.shifts.incidents import list_incidents

    db, config, yesterday = demo["db"], demo["config"], demo["yesterday"]
    start = datetime.combine(yesterday, datetime.min.time(), tzinfo=SITE_TZ)  # the digest's local day
    incidents = list_incidents(db, start, start + timedelta(days=1))
    assert len(incidents) == 1, "\n".join(demo["lines"])
    incident = incidents[0]
    assert incident["location"] == "downtown" and incident["shift"] == "evening"
    assert incident["shift_date"] == yesterday.isoformat() and incident["complaints"] >= 6
    assert "reviews-downtown" in incident["sources"]
    digest = gather_digest(db, yesterday, config.digest.brand, config)["shifts"]
    assert len(digest["incidents"]) == 1 and "Downtown" in str(digest["incidents"][0]["location"])
    # Several languages tell of the same evening.
    texts = [r[0] for r in db.execute(
        "select m.text from incident_mentions i join mentions m on m.id = i.mention_id where i.incident_id = ?",
        [incident["id"]])]  # fmt: skip
    assert any("espresso" in t for t in texts) and any("máquina" in t for t in texts)
    assert any("咖啡机" in t for t in texts)

    page = _client(config).get("/shifts").get_data(as_text=True)
    assert 'id="incidents"' in page and "dash-incident" in page
    titles = [r[0] for r in db.execute(
        "select coalesce(m.title, m.text) from incident_mentions i join mentions m on m.id = i.mention_id "
        "where i.incident_id = ?", [incident["id"]])]  # fmt: skip
    assert any(escape(t, quote=False)[:30] in page or escape(t)[:30] in page for t in titles)
    assert demo["summary"]["story"]["incidents_yesterday"]
    assert any(line.startswith("incident: ") for line in demo["lines"])


def test_the_downtown_evening_crew_is_flagged_over_the_digest_week_and_the_30_days(demo):
    from monitor.digest.build import gather_digest
    from monitor.shifts.report import shift_report

    db, config, yesterday = demo["db"], demo["config"], demo["yesterday"]
    week = shift_report(db, config, yesterday - timedelta(days=6), yesterday)  # the digest's week
    flagged = [r for r in week if r["flagged"]]
    assert [(r["location"], r["shift"]) for r in flagged] == [("downtown", "evening")]
    evening = flagged[0]
    assert evening["mentions"] >= 20 and evening["complaints"] >= 10
    assert {"Kyle", "Brianna"} <= set(evening["staff"])  # the named evening crew, from the demo's roster
    morning = next(r for r in week if (r["location"], r["shift"]) == ("downtown", "morning"))
    assert morning["mentions"] >= 20 and not morning["flagged"] and morning["rate"] < evening["rate"]
    assert len(gather_digest(db, yesterday, config.digest.brand, config)["shifts"]["flagged"]) == 1

    month = shift_report(db, config)  # the /shifts page's default 30 days
    assert [(r["location"], r["shift"]) for r in month if r["flagged"]] == [("downtown", "evening")]
    page = _client(config).get("/shifts").get_data(as_text=True)
    assert "Kyle" in page and re.search(r'class="flagged"', page)


def test_a_complaint_spike_for_the_brand_yesterday_on_trends(demo):
    from monitor.trends.report import trends_report
    from monitor.trends.series import sentiment_series
    from monitor.trends.spikes import find_spikes

    db, config, yesterday = demo["db"], demo["config"], demo["yesterday"]
    report = trends_report(db, config.trends, days=14)
    assert [(s.brand, s.period) for s in report.spikes] == [("Acme Coffee", yesterday)]
    # The same through the rule itself, on the 30 days before.
    zone = SITE_TZ
    end = datetime.combine(yesterday + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    points = sentiment_series(db, end - timedelta(days=30), end, "day", config.trends.timezone)
    spikes = find_spikes(points, config.trends.baseline_periods, config.trends.spike_alpha,
                         config.trends.min_spike_complaints)  # fmt: skip
    assert ("Acme Coffee", yesterday) in {(s.brand, s.period) for s in spikes}
    assert "Bean Street Coffee" in {p.brand for p in report.points}  # the competitor the trends compare with

    page = _client(config).get("/trends").get_data(as_text=True)
    assert re.search(r'id="spikes".*?Acme Coffee', page, re.S)


def test_a_recovery_after_the_managers_reply_in_metrics(demo):
    from monitor.queue.metrics import response_metrics

    db, config = demo["db"], demo["config"]
    now = datetime.now(UTC)
    overall, _ = response_metrics(db, now - timedelta(days=7), now + timedelta(minutes=1))
    assert overall.recoveries.get("recovered") == 1 and overall.replied >= 1
    row = next(db.query(
        "select r.*, m.external_id from recoveries r join mentions m on m.id = r.mention_id"))  # fmt: skip
    assert row["external_id"].endswith(f"/reviews/{RECOVERY_ID}")
    assert (row["rating_before"], row["rating_after"], row["outcome"]) == (2, 4, "recovered")
    replies = list(db.query("select replied_by, text from replies where queue_item_id = ?", [row["queue_item_id"]]))
    assert replies and replies[0]["replied_by"] == "dana"

    page = _client(config).get("/metrics").get_data(as_text=True)
    assert re.search(r'id="recovered">\s*1\b', page)


def test_yesterdays_digest_has_the_day_and_the_multilingual_content(demo):
    summary, yesterday = demo["summary"], demo["yesterday"]
    digest = Path(summary["digests"][yesterday.isoformat()]).read_text(encoding="utf-8")
    assert summary["digest"] == summary["digests"][yesterday.isoformat()]
    assert "Acme Coffee Downtown" in digest
    db = demo["db"]
    chinese = db.execute("select count(*) from mentions where text like ?", ["%排了四十分钟，店员态度也很差%"])
    assert chinese.fetchone()[0] == 1
    langs = {r[0] for r in db.execute("select distinct lang from classifications")}
    assert {"en", "zh", "es", "de"} <= langs
