"""Sentiment series, share of voice, complaint spikes, and their CSV / PNG / CLI outputs."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import TrendsConfig
from monitor.store import record_mentions
from monitor.trends.export import write_trends_csv, write_trends_png
from monitor.trends.report import trends_report
from monitor.trends.series import sentiment_series
from monitor.trends.spikes import find_spikes, poisson_tail

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def add(db, n, brand, label, when):
    [mention_id] = record_mentions(db, "s", [{"external_id": f"{brand}-{n}-{when.isoformat()}", "text": "x",
                                              "brand": brand, "posted_at": when.isoformat()}]).mention_ids  # fmt: skip
    if label:
        db["classifications"].insert({"mention_id": mention_id, "label": label, "probs": "{}", "topics": "[]"})


def test_series_counts_net_sentiment_and_share_of_voice(fresh_db):
    day = datetime(2026, 11, 18, 15, tzinfo=UTC)
    for n, label in enumerate(["complaint", "complaint", "praise", "neutral"]):
        add(fresh_db, n, "Acme", label, day)
    add(fresh_db, 9, "Acme", None, day)  # not classified (another language): a mention, not a sentiment
    add(fresh_db, 1, "Rival", "praise", day)
    add(fresh_db, 2, "", "praise", day)
    points = sentiment_series(fresh_db, datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    cell = {(p.brand, p.period): p for p in points}
    acme = cell[("Acme", date(2026, 11, 18))]
    assert (acme.mentions, acme.complaint, acme.praise, acme.neutral) == (5, 2, 1, 1)
    assert acme.net_sentiment == -25.0  # (1 - 2) / 4
    assert acme.share_of_voice == round(5 / 6, 4)  # mentions with no brand are no one's voice
    assert cell[("(no brand)", date(2026, 11, 18))].net_sentiment == 100.0
    assert cell[("(no brand)", date(2026, 11, 18))].share_of_voice is None
    only_acme = sentiment_series(fresh_db, datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC),
                                 brands=["Acme"])  # fmt: skip
    assert {p.period: p.share_of_voice for p in only_acme}[date(2026, 11, 18)] == round(5 / 6, 4)
    # every brand has every day, empty days included (a gap is information)
    assert {p.period for p in points} == {date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)}
    assert cell[("Acme", date(2026, 11, 17))].mentions == 0 and cell[("Acme", date(2026, 11, 17))].net_sentiment is None


def test_days_are_local_and_weeks_start_on_monday(fresh_db):
    late = datetime(2026, 11, 17, 3, 30, tzinfo=UTC)  # 22:30 on the 16th in New York
    add(fresh_db, 1, "Acme", "complaint", late)
    since, until = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    ny = sentiment_series(fresh_db, since, until, timezone="America/New_York")
    assert [p.period for p in ny if p.mentions] == [date(2026, 11, 16)]
    weekly = sentiment_series(fresh_db, since, until, by="week")
    assert [p.period for p in weekly] == [date(2026, 11, 9), date(2026, 11, 16)]  # Mondays
    assert [p.mentions for p in weekly] == [0, 1]


def test_local_day_bounds_are_compared_in_utc(fresh_db):
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    add(fresh_db, 1, "Acme", "complaint", datetime(2026, 11, 18, 9, tzinfo=ny))
    add(fresh_db, 2, "Acme", "complaint", datetime(2026, 11, 18, 21, 30, tzinfo=ny))  # 02:30 UTC next day
    since, until = datetime(2026, 11, 18, tzinfo=ny), datetime(2026, 11, 19, tzinfo=ny)
    [point] = sentiment_series(fresh_db, since, until, timezone="America/New_York")
    assert point.complaint == 2


def test_a_new_brand_or_a_bursty_one_is_not_a_spike(fresh_db):
    start = NOW - timedelta(days=30)
    for d in range(26, 30):  # monitoring began four days ago: a steady six a day
        for n in range(6):
            add(fresh_db, n, "New", "complaint", start + timedelta(days=d))
    rng = random.Random(7)
    for d in range(30):  # a brand whose days swing between quiet and busy
        for n in range(rng.choice([2, 3, 4, 16, 18, 20])):
            add(fresh_db, n, "Bursty", "complaint", start + timedelta(days=d))
    report = trends_report(fresh_db, TrendsConfig(), days=10, now=NOW)
    assert report.spikes == []


def test_poisson_tail():
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 0.1353352832, rel=1e-6)
    assert poisson_tail(12, 2.0) < 1e-5
    assert 0.0 <= poisson_tail(500, 400.0) <= 1.0  # large counts do not overflow
    assert 0.0 < poisson_tail(60, 2.0) < 1e-40  # tiny tails keep their precision


def test_a_burst_is_a_spike_and_ordinary_noise_is_not(fresh_db):
    rng = random.Random(3)
    start = NOW - timedelta(days=40)
    for d in range(40):
        day = start + timedelta(days=d)
        quiet = rng.choice([0, 1, 2, 3]) if d != 35 else 14  # one bad day
        busy = rng.randint(15, 25)  # a big brand: 20 a day is normal
        for n in range(quiet):
            add(fresh_db, n, "Small", "complaint", day)
        for n in range(busy):
            add(fresh_db, n, "Big", "complaint", day)
    report = trends_report(fresh_db, TrendsConfig(), days=10, now=NOW)
    assert [(s.brand, s.period) for s in report.spikes] == [("Small", (start + timedelta(days=35)).date())]
    spike = report.spikes[0]
    assert spike.complaints == 14 and spike.baseline < 3 and spike.p_value < 0.01
    assert len({p.period for p in report.points}) == 10  # only the asked-for days are shown


def test_min_complaints_and_history_are_required():
    from monitor.trends.series import TrendPoint

    points = [TrendPoint("A", date(2026, 11, d), complaint=0) for d in range(1, 10)]
    points.append(TrendPoint("A", date(2026, 11, 10), complaint=4))
    assert find_spikes(points, min_complaints=5) == []  # 4 out of nothing: too few to call
    assert find_spikes([TrendPoint("A", date(2026, 11, 1), complaint=50)]) == []  # no history yet


def test_csv_and_png_exports(fresh_db, tmp_path):
    add(fresh_db, 1, '=HYPERLINK("http://x")', "complaint", NOW - timedelta(days=1))
    add(fresh_db, 2, "Acme", "praise", NOW - timedelta(days=2))
    report = trends_report(fresh_db, TrendsConfig(), days=7, now=NOW)
    rows = list(csv.DictReader(write_trends_csv(tmp_path / "t.csv", report.points, report.spikes).open()))
    assert len(rows) == 14 and {r["brand"] for r in rows} == {"Acme", '\'=HYPERLINK("http://x")'}
    png = write_trends_png(tmp_path / "t.png", report.points, report.spikes).read_bytes()
    add(fresh_db, 3, "A$}$B", "praise", NOW - timedelta(days=1))  # not TeX
    add(fresh_db, 4, "_hidden", "praise", NOW - timedelta(days=1))
    again = trends_report(fresh_db, TrendsConfig(), days=7, now=NOW)
    assert write_trends_png(tmp_path / "u.png", again.points, again.spikes).stat().st_size > 5000
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_cli(fresh_db, tmp_path):
    add(fresh_db, 1, "Acme", "complaint", datetime.now(UTC) - timedelta(hours=1))
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "test.db"}"\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "trends", "--days", "7", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["brands"][0]["brand"] == "Acme" and payload["brands"][0]["net_sentiment"] == -100.0
    assert len(payload["points"]) == 7
    table = runner.invoke(cli, ["--config", str(config), "trends", "--output", str(tmp_path / "t.png")])
    assert table.exit_code == 0 and "Acme" in table.stdout and (tmp_path / "t.png").exists()
    bad = runner.invoke(cli, ["--config", str(config), "trends", "--output", str(tmp_path / "t.txt")])
    assert bad.exit_code == 2 and ".csv or .png" in bad.output


def test_the_digest_lists_spikes(fresh_db, tmp_path):
    from monitor.config import loads_config
    from monitor.digest.build import gather_digest, render_digest

    start = NOW - timedelta(days=20)
    for d in range(20):
        for n in range(1 if d < 19 else 15):
            add(fresh_db, n, "<b>Rival</b>", "complaint", start + timedelta(days=d))
    config = loads_config("", tmp_path / "config.toml")
    day = (start + timedelta(days=19)).date()
    data = gather_digest(fresh_db, day, config=config)
    assert [(s["brand"], s["complaints"]) for s in data["spikes"]] == [("<b>Rival</b>", 15)]
    html = render_digest(data, "html")
    assert "&lt;b&gt;Rival&lt;/b&gt;</strong>" in html and "Complaint spikes" in html
