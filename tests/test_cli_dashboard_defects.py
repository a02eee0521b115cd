"""Issue 12's defects: inferred locations in metrics and the queue, one duration format, readable
`queue list` / `queue show`, `run --list` in local time with JSON, `alerts --dry-run` without a
channel, the heatmap's fonts and colour scale, and fixtures that live in the repository."""

from __future__ import annotations

import json
import logging
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli, shorten, terminal_safe
from monitor.config import QueueConfig, load_config
from monitor.queue.items import mark_replied, refresh_queue
from monitor.queue.listing import InboxFilter, list_items
from monitor.queue.metrics import human_minutes, response_metrics
from monitor.shifts import png
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import open_db

from .conftest import REPO, write_config
from .helpers import add_classified

CONFIG = """
[storage]
path = "m.db"
[schedule]
timezone = "Asia/Tokyo"
digest_at = "08:00"
[[locations]]
id = "downtown"
name = "Café Zürich"
timezone = "Europe/Zurich"
keywords = ["main street"]
contact = "downtown@acme.example"
[[locations]]
id = "airport"
name = "北京三里屯店"
timezone = "Asia/Shanghai"
keywords = ["terminal 4"]
[[sources]]
name = "reddit-acme"
type = "reddit"
search = ["acme"]
every = "15m"
[[sources]]
name = "reviews"
type = "schema_org"
urls = ["http://127.0.0.1:9/reviews"]
location = "downtown"
"""
RUDE = "The barista at terminal 4 was incredibly rude to my kid and we waited forty minutes for a cold latte"


@pytest.fixture
def config(tmp_path):
    return load_config(write_config(tmp_path, CONFIG))


@pytest.fixture
def db(config):
    db = open_db(config.storage_path)
    yield db
    db.conn.close()


def invoke(config, *args: str):
    result = CliRunner().invoke(cli, ["--config", str(config.path), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def placed_reddit_post(db, config) -> int:
    """A Reddit post with no location of its own, which the shifts stage places at the airport by keyword."""
    mention_id = add_classified(db, "reddit-acme", "t3_1", RUDE, "complaint", kind="post", hours_ago=3)
    refresh_queue(db, QueueConfig())
    estimate_and_attribute(db, config)
    assert db.execute("select location from mentions where id = ?", [mention_id]).fetchone()[0] is None
    assert db.execute("select location from incident_estimates where mention_id = ?", [mention_id]).fetchone() == (
        "airport",
    )
    return db.execute("select id from queue_items where mention_id = ?", [mention_id]).fetchone()[0]


# ------------------------------------------------------------------ locations the shifts stage inferred


def test_metrics_by_location_count_a_mention_the_shifts_stage_placed(config, db):
    item = placed_reddit_post(db, config)
    mark_replied(db, item, "Sorry about that", actor="dana")
    now = datetime.now(UTC)
    _overall, groups = response_metrics(db, now - timedelta(days=1), now + timedelta(seconds=1), "location", now)
    assert set(groups) == {"airport"} and groups["airport"].replied == 1
    output = invoke(config, "queue", "metrics", "--by", "location")
    assert re.search(r"^airport\s+1\s+1\s+100%", output, re.M), output


def test_a_configured_location_wins_over_an_inferred_one(config, db):
    mention_id = add_classified(db, "reviews", "r1", RUDE, "complaint", rating=1)
    db.execute("update mentions set location = 'downtown' where id = ?", [mention_id])
    refresh_queue(db, QueueConfig())
    db["incident_estimates"].insert({"mention_id": mention_id, "location": "airport", "basis": "test"}, replace=True)
    now = datetime.now(UTC)
    _overall, groups = response_metrics(db, now - timedelta(days=1), now + timedelta(seconds=1), "location", now)
    assert set(groups) == {"downtown"}


def test_queue_show_names_the_inferred_location(config, db):
    item = placed_reddit_post(db, config)
    assert "reddit-acme · airport · post" in invoke(config, "queue", "show", str(item))


def test_queue_list_location_filter_finds_a_placed_reddit_post(config, db):
    item = placed_reddit_post(db, config)
    [row] = list_items(db, filters=InboxFilter(location="airport"))
    assert row["id"] == item and row["location"] == "airport"


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("minutes", "words"),
    [(None, "–"), (0.2, "< 1 min"), (45, "45 min"), (59.4, "59 min"), (59.6, "1.0 h"), (210, "3.5 h"),
     (23.9 * 60, "23.9 h"), (3024, "2.1 d"), (12441, "8.6 d")],
)  # fmt: skip
def test_one_duration_format_for_people(minutes, words):
    assert human_minutes(minutes) == words


def test_queue_metrics_prints_durations_for_people(config, db):
    add_classified(db, "reviews", "r1", "cold coffee", "complaint", rating=1, hours_ago=207.4)
    refresh_queue(db, QueueConfig())
    mark_replied(db, 1, "Sorry", actor="dana")
    output = invoke(config, "queue", "metrics", "--days", "30")
    assert "8.6 d" in output and not re.search(r"\d+m\b", output), output


# ------------------------------------------------------------------ queue list and show


def test_shorten_cuts_at_a_word_boundary_and_counts_terminal_columns():
    assert shorten(RUDE, 20) == "The barista at…"
    assert shorten("short text", 20) == "short text"
    assert shorten("exactly twenty chars", 20) == "exactly twenty chars"
    assert shorten("twenty-one chars here", 20) == "twenty-one chars…"  # the cut falls on a space: kept whole
    url = "https://example.com/" + "a" * 40
    assert shorten(url, 20) == url[:19] + "…"  # one long word: cut where it must
    chinese = "排队等了四十分钟咖啡是冷的服务员态度很差再也不来了"
    assert shorten(chinese, 20) == chinese[:9] + "…"  # two columns a character
    assert shorten("a\x1b[31m red \u202e text\n\nnext", 40) == "a[31m red text next"


def test_terminal_safe_drops_escapes_and_bidi_overrides_keeps_lines():
    assert terminal_safe("one\x1b]0;owned\x07\ntwo\u202e\u2066") == "one]0;owned\ntwo"


def test_queue_list_has_a_header_and_cuts_text_at_words(config, db):
    add_classified(db, "reviews", "r1", RUDE + " " + "and more words " * 5, "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    header, row = invoke(config, "queue", "list").splitlines()
    assert header.split() == ["id", "priority", "state", "source", "location", "SLA", "text"]
    assert row.startswith("#1 ") and "due in " in row
    text = row[header.index("text") :]
    assert text.endswith("…") and RUDE.startswith(text.removesuffix("…")) and RUDE[len(text) - 1] == " "


def test_a_damaged_due_time_costs_only_its_own_column(config, db):
    add_classified(db, "reviews", "r1", "cold coffee", "complaint", rating=1)
    add_classified(db, "reviews", "r2", "warm welcome, cold coffee", "complaint", rating=2)
    refresh_queue(db, QueueConfig())
    db.execute("update queue_items set sla_due_at = 'not a date' where id = 1")
    db.conn.commit()
    rows = invoke(config, "queue", "list").splitlines()[1:]
    assert len(rows) == 2 and any(" ? " in row for row in rows) and any("due in" in row for row in rows)
    assert "not a date" in invoke(config, "queue", "show", "1")


def test_queue_show_without_an_sla_clock_says_why(config, db):
    add_classified(db, "reviews", "r1", "cold coffee", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.execute("update queue_items set sla_due_at = null")  # what refresh_queue leaves on a backfill item
    db.conn.commit()
    output = invoke(config, "queue", "show", "1")
    assert "no SLA clock (no trustworthy post time)" in output and "None" not in output
    assert "no clock" in invoke(config, "queue", "list")


def test_queue_show_prints_local_times_and_keeps_escape_sequences_out(config, db):
    add_classified(db, "reviews", "r1", "cold \x1b[2J\x1b]8;;http://evil\x07coffee", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    output = invoke(config, "queue", "show", "1")
    assert "\x1b" not in output and "\x07" not in output
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d JST \(due in ", output), output


# ------------------------------------------------------------------ run --list


class _Clock(datetime):
    """datetime whose now() is a fixed moment, for the scheduler and the CLI."""

    moment = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo: after the 08:00 digest

    @classmethod
    def now(cls, tz=None):
        return cls.moment.astimezone(tz) if tz else cls.moment.replace(tzinfo=None)


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr("monitor.scheduler.datetime", _Clock)
    monkeypatch.setattr("monitor.cli.datetime", _Clock)
    return _Clock


def test_run_list_prints_local_times_with_the_zone_and_explains_the_catch_up(config, clock):
    output = invoke(config, "run", "--list")
    assert "times in Asia/Tokyo" in output.splitlines()[0]
    digest = next(line for line in output.splitlines() if line.startswith("digest"))
    assert "2026-11-26 21:00 JST" in digest and "daily at 08:00 Asia/Tokyo" in digest
    assert "catch-up run: started after today's 08:00 digest time, so the digest for 2026-11-25" in output
    # (APScheduler dates interval triggers from the real clock: only the format is checked.)
    assert re.search(r"^process\s+\d{4}-\d\d-\d\d \d\d:\d\d JST\s+every 5 min$", output, re.M), output


def test_run_list_as_json(config, clock):
    payload = json.loads(invoke(config, "run", "--list", "--format", "json"))
    assert payload["timezone"] == "Asia/Tokyo"
    jobs = {job["id"]: job for job in payload["jobs"]}
    assert set(jobs) == {"crawl:reddit-acme", "crawl:reviews", "process", "digest"}
    assert jobs["digest"]["next_run"] == "2026-11-26T21:00:30+09:00" and "catch-up" in jobs["digest"]["note"]
    assert jobs["process"]["schedule"] == "every 5 min" and jobs["process"]["note"] == ""


def test_run_list_before_the_digest_time_has_no_catch_up(config, clock, monkeypatch):
    monkeypatch.setattr(clock, "moment", datetime(2026, 11, 26, 20, 0, tzinfo=UTC))  # 05:00 in Tokyo
    jobs = {job["id"]: job for job in json.loads(invoke(config, "run", "--list", "--format", "json"))["jobs"]}
    assert jobs["digest"]["next_run"] == "2026-11-27T08:00:00+09:00" and jobs["digest"]["note"] == ""


def test_run_format_json_needs_list(config):
    result = CliRunner().invoke(cli, ["--config", str(config.path), "run", "--format", "json"])
    assert result.exit_code == 2 and "--list" in result.output


# ------------------------------------------------------------------ alerts without a channel


def test_alerts_dry_run_without_a_channel_lists_what_would_go(config, db):
    add_classified(db, "reviews", "r1", "Food poisoning after lunch", "complaint", rating=1, hours_ago=0.5,
                   urgency=("safety_health",))  # fmt: skip
    refresh_queue(db, QueueConfig())
    output = invoke(config, "alerts", "--dry-run")
    assert re.search(r"^urgent_item\s+would send \(no channel\)\s+Safety / health", output, re.M), output
    assert "1 alert(s) would be sent, but no alert channel is configured" in output
    payload = json.loads(invoke(config, "alerts", "--dry-run", "--format", "json"))
    assert len(payload["alerts"]) == 1 and "no alert channel is configured" in payload["no_channel"]
    assert "nothing sent: no alert channel is configured" in invoke(config, "alerts")


def test_alerts_dry_run_with_nothing_to_send_says_so(config, db):
    output = invoke(config, "alerts", "--dry-run")
    assert "nothing would be sent now" in output and "no alert channel is configured" in output


# ------------------------------------------------------------------ heatmap


NAMES = {"downtown": "Café Zürich — Bahnhofstraße", "airport": "北京三里屯店"}


def _grid(scale: float) -> list[list[float]]:
    return [[(day * 24 + hour) % 7 * scale for hour in range(24)] for day in range(7)]


def test_heatmap_has_a_panel_per_location_and_a_colour_scale(tmp_path):
    grids = {"downtown": _grid(0.5), "airport": _grid(2.0)}
    with png.chart_fonts():
        fig = png.heatmap_figure(grids, "Complaints", names=NAMES, zones={"airport": "Asia/Shanghai"})
    *panels, scale = fig.axes
    assert [ax.get_title(loc="left").split(" · ")[0] for ax in panels] == [
        "Café Zürich — Bahnhofstraße (downtown)", "北京三里屯店 (airport)",
    ]  # fmt: skip
    assert "complaints" in scale.get_ylabel() and scale.get_ylim()[1] == pytest.approx(12.0)  # the busiest cell
    assert panels[1].get_xlabel() == "local hour (Asia/Shanghai)"
    path = png.write_heatmap_png(grids, tmp_path / "h.png", names=NAMES)
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert data.startswith(b"\x89PNG") and width > 800 and height > 400


def test_the_chart_font_has_chinese_and_accented_glyphs():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    family = png.cjk_font_family()
    if family is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei; .ci/run does)")
    cjk = FT2Font(font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False))
    latin = FT2Font(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")))
    assert all(cjk.get_char_index(ord(ch)) for ch in "北京三里屯店")
    assert all(latin.get_char_index(ord(ch)) for ch in "éüßÉ")


def test_heatmap_without_a_cjk_font_warns_once_and_still_draws(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(png, "CJK_FAMILIES", ("No Such Font CJK",))
    monkeypatch.setattr(png, "_CJK_FILES", ("nosuchfontfile",))
    png.cjk_font_family.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="monitor.shifts.png"):
            png.write_heatmap_png({"airport": _grid(1.0)}, tmp_path / "a.png", names=NAMES)
            png.write_heatmap_png({"airport": _grid(1.0)}, tmp_path / "b.png", names=NAMES)
    finally:
        png.cjk_font_family.cache_clear()
    warnings = [r for r in caplog.records if "no font with Chinese glyphs" in r.getMessage()]
    assert len(warnings) == 1 and "fonts-wqy-zenhei" in warnings[0].getMessage()
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------------ fixtures on a plain clone


def test_recorded_fixtures_live_in_the_repository():
    from tests import reddit_replay, test_schema_org

    for folder in (reddit_replay.CASSETTE_DIR, test_schema_org.FIXTURES):
        assert folder.is_relative_to(REPO / "tests" / "fixtures"), folder
    used = set()
    for test_file in ("test_reddit.py", "test_web_reddit.py"):
        used |= set(re.findall(r"\"(Test\w+\.test_\w+)\"", (REPO / "tests" / test_file).read_text()))
    assert used and all((reddit_replay.CASSETTE_DIR / f"{name}.json").is_file() for name in used)
    readme = (REPO / "tests" / "fixtures" / "README.md").read_text()
    assert "BSD-2-Clause" in readme and "BSD-3-Clause" in readme
    assert all(Path(p).name in readme for p in (reddit_replay.CASSETTE_DIR / f"{n}.json" for n in used))
