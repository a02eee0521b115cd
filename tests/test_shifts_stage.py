"""The shifts stage against a real database: estimates, attributions, incidents, report, CLI."""

import json
from datetime import date

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import loads_config
from monitor.shifts.incidents import find_runs, incidents_for_day
from monitor.shifts.report import complaint_heatmap, format_csv, format_table, shift_report
from monitor.shifts.stage import estimate_and_attribute, mention_shift
from monitor.shifts.summary import shifts_for_digest
from monitor.store import open_db, record_mentions

CONFIG = """
[storage]
path = "m.db"

[shifts]
roster = "roster.csv"
min_shift_mentions = 5
min_shift_complaints = 3

[[locations]]
id = "downtown"
timezone = "America/New_York"
business_ids = ["ChIJdowntown"]
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
keywords = ["terminal 4"]
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
ROSTER = "date,location,shift,staff\n2026-11-20,downtown,evening,Sam; Ana\n2026-11-20,downtown,morning,Lee\n"


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    (tmp_path / "roster.csv").write_text(ROSTER)
    config = loads_config(CONFIG, tmp_path / "config.toml")
    return config, open_db(config.storage_path)


def add(db, source, ext, text, label, posted, topics=(), **fields):
    [mid] = record_mentions(db, source, [{"external_id": ext, "text": text, "posted_at": posted, **fields}]).mention_ids
    db["classifications"].insert(
        {"mention_id": mid, "label": label, "topics": json.dumps(list(topics)), "probs": "{}", "urgency": "[]"},
        replace=True,
    )
    return mid


def test_locations_are_resolved_and_windows_stored(setup):
    config, db = setup
    own = add(db, "reviews", "1", "rude", "complaint", "2026-11-21T02:00:00+00:00", location="downtown")
    by_source = add(db, "airport-feed", "2", "slow", "complaint", "2026-11-21T08:00:00+00:00")
    by_keyword = add(
        db, "reddit", "3", "Terminal 4 staff ignored me 20 minutes ago", "complaint", "2026-11-21T08:00:00Z"
    )
    by_business = add(
        db, "x", "4", "ok", "neutral", "2026-11-21T08:00:00Z", url="https://maps.example/?cid=ChIJdowntown"
    )
    nowhere = add(db, "reddit", "5", "acme is fine", "neutral", "2026-11-21T08:00:00+00:00")
    counts = estimate_and_attribute(db, config)
    assert counts.estimated == 4 and counts.without_location == 1
    rows = {r["mention_id"]: r for r in db.query("select * from incident_estimates")}
    assert rows[own]["location"] == "downtown" and rows[own]["basis"] == "lag"
    assert rows[by_source]["location"] == "airport"
    assert rows[by_keyword]["location"] == "airport" and rows[by_keyword]["basis"] == "text"
    assert rows[by_keyword]["window_start"] == "2026-11-21T07:30:00+00:00"  # 20 min ago ± 10 min
    assert rows[by_business]["location"] == "downtown"
    assert rows[nowhere]["location"] is None
    # the source's 30 min lag, not the default 2 h
    info = mention_shift(db, by_keyword)
    assert info["shifts"] == [{"shift": "overnight", "shift_date": "2026-11-20", "weight": 1.0}]
    assert info["detail"] == "20 minutes ago"


def test_rerun_is_incremental_and_edits_are_reestimated(setup):
    config, db = setup
    mid = add(db, "reviews", "1", "rude", "complaint", "2026-11-21T15:00:00+00:00", location="downtown")
    estimate_and_attribute(db, config)
    assert estimate_and_attribute(db, config).estimated == 0
    db.execute("update incident_estimates set estimated_at = '2000-01-01T00:00:00+00:00'")
    record_mentions(db, "reviews", [{"external_id": "1", "text": "rude, this morning around 7", "location": "downtown",
                                     "posted_at": "2026-11-21T15:00:00+00:00"}])  # fmt: skip
    assert estimate_and_attribute(db, config).estimated == 1
    assert mention_shift(db, mid)["shifts"][0]["shift"] == "morning"


def test_config_change_recomputes(setup, tmp_path):
    config, db = setup
    add(db, "reviews", "1", "rude", "complaint", "2026-11-21T15:00:00+00:00", location="downtown")
    estimate_and_attribute(db, config)
    changed = loads_config(CONFIG.replace('end = "22:00"', 'end = "23:00"'), tmp_path / "config.toml")
    assert estimate_and_attribute(db, changed).estimated == 1


def test_incidents_group_complaints_across_sources(setup):
    config, db = setup
    posts = ["2026-11-20T23:00:00+00:00", "2026-11-21T00:10:00+00:00", "2026-11-21T01:00:00+00:00"]
    ids = [
        add(db, source, str(i), "so slow", "complaint", posted, topics=["wait_time"], location="downtown")
        for i, (source, posted) in enumerate(zip(["reviews", "reddit", "reviews"], posts, strict=True))
    ]
    add(db, "reviews", "late", "slow again", "complaint", "2026-11-21T15:00:00+00:00", location="downtown")
    add(db, "reviews", "p", "lovely", "praise", "2026-11-21T00:30:00+00:00", location="downtown")
    assert estimate_and_attribute(db, config).incidents == 1
    [incident] = incidents_for_day(db, config, date(2026, 11, 20))
    assert incident["location"] == "downtown" and incident["complaints"] == 3
    assert incident["sources"] == ["reddit", "reviews"] and incident["topic"] == "wait_time"
    assert (incident["shift"], incident["shift_date"]) == ("evening", "2026-11-20")
    assert sorted(incident["mention_ids"]) == sorted(ids)
    assert mention_shift(db, ids[0])["incident"]["id"] == incident["id"]
    estimate_and_attribute(db, config)
    assert incidents_for_day(db, config, date(2026, 11, 20))[0]["id"] == incident["id"]  # stable across runs
    summary = shifts_for_digest(db, config, date(2026, 11, 20))
    assert [i["id"] for i in summary["incidents"]] == [incident["id"]]
    assert summary["shifts"] and all(r["location"] == "downtown" for r in summary["shifts"])


def test_find_runs_merges_overlapping_windows():
    import numpy as np

    hour = 3600
    times = np.array([0, 1, 2, 2.5, 10, 20, 20.5, 21], dtype=float) * hour
    assert find_runs(times.astype(np.int64), 3, 3 * hour) == [(0, 3), (5, 7)]
    assert find_runs(times.astype(np.int64), 5, 3 * hour) == []


def test_report_rates_flags_topics_and_roster(setup):
    config, db = setup
    # 20 evening mentions on 20 Nov with 12 complaints, 20 morning ones with 1: evening is flagged.
    for i in range(20):
        add(db, "reviews", f"e{i}", "x", "complaint" if i < 12 else "praise", "2026-11-20T23:30:00+00:00",
            topics=["staff_attitude"], location="downtown", experienced_at="2026-11-20T18:00:00")  # fmt: skip
        add(db, "reviews", f"m{i}", "x", "complaint" if i < 1 else "praise", "2026-11-20T17:00:00+00:00",
            topics=["wait_time"], location="downtown", experienced_at="2026-11-20T08:00:00")  # fmt: skip
    estimate_and_attribute(db, config)
    rows = shift_report(db, config, date(2026, 11, 1), date(2026, 11, 30), "downtown")
    by_shift = {r["shift"]: r for r in rows}
    evening = by_shift["evening"]
    assert (evening["mentions"], evening["complaints"], evening["rate"]) == (20, 12, 0.6)
    assert evening["ci_low"] < 0.6 < evening["ci_high"]
    assert evening["flagged"] and not by_shift["morning"]["flagged"]
    assert evening["top_topics"] == [["staff_attitude", 12.0]]
    assert evening["staff"] == {"Ana": 1, "Sam": 1} and by_shift["morning"]["staff"] == {"Lee": 1}
    assert "HIGH" in format_table(rows) and "Ana (1); Sam (1)" in format_csv(rows)
    grid = complaint_heatmap(db, config, date(2026, 11, 1), date(2026, 11, 30))["downtown"]
    assert grid[4][18] == 12 and grid[4][8] == 1  # Friday 18:00 and 08:00 local


def test_cli_shifts(setup, tmp_path):
    config, db = setup
    for i in range(3):
        add(db, "reviews", str(i), "cold coffee at 9pm", "complaint", f"2026-11-21T0{3 + i}:00:00+00:00",
            topics=["product_quality"], location="downtown")  # fmt: skip
    runner = CliRunner()
    base = ["--config", str(tmp_path / "config.toml"), "shifts", "--since", "2026-11-01", "--until", "2026-11-30"]
    result = runner.invoke(cli, [*base, "--format", "json", "--heatmap", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["location"], r["shift"]) for r in rows} >= {("downtown", "evening"), ("airport", "overnight")}
    assert (tmp_path / "h.png").read_bytes().startswith(b"\x89PNG")
    result = runner.invoke(cli, [*base, "--incidents", "--format", "json"])
    [incident] = json.loads(result.stdout)
    assert incident["complaints"] == 3 and incident["topic"] == "product_quality"
    assert "location" in runner.invoke(cli, [*base, "--format", "csv"]).stdout.splitlines()[0]
    result = runner.invoke(cli, [*base, "--location", "uptown"])
    assert result.exit_code == 2 and "no location 'uptown'" in result.output
    (tmp_path / "roster.csv").write_text("date,location,shift,staff\n2026-11-20,downtown,nite,Sam\n")
    result = runner.invoke(cli, base)
    assert result.exit_code == 2 and "shifts.roster: roster.csv line 2: unknown shift 'nite'" in result.output


def test_keywords_in_unspaced_scripts_match_inside_a_sentence():
    from monitor.shifts.stage import LocationResolver

    config = loads_config(CONFIG.replace('keywords = ["terminal 4"]', 'keywords = ["terminal 4", "机场"]'))
    resolve = LocationResolver(config)
    # Every neighbouring Han character is a word character: a word-boundary match would never fire here.
    assert resolve({"source": "reddit", "text": "昨晚在机场的Acme Coffee排了四十分钟"}) == "airport"
    assert resolve({"source": "reddit", "text": "Main Street's latte"}) == "downtown"
    assert resolve({"source": "reddit", "text": "main streets are busy"}) is None  # Latin keywords stay whole words
