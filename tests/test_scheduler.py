"""`monitor run`: jobs and triggers from config, and a real scheduler crawling a loopback site on time."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import loads_config
from monitor.demo.review_site import start_review_site
from monitor.scheduler import build_scheduler, describe_schedule, digest_job, process_job
from monitor.store import open_db

from .conftest import distinct_values
from .helpers import add_classified

CONFIG = """
[storage]
path = "{db}"
[model]
default = "{model}"
multilingual = "{model}"
[schedule]
default_every = "{every}"
process_every = "10m"
digest_at = "07:30"
timezone = "Europe/London"
[[sources]]
name = "reviews"
type = "schema_org"
urls = ["{url}/reviews?page=1&location=downtown"]
[[sources]]
name = "hourly"
type = "schema_org"
cron = "0 * * * *"
urls = ["{url}/reviews?page=1&location=airport"]
[[sources]]
name = "off"
type = "schema_org"
enabled = false
urls = ["{url}/reviews"]
"""


def make_config(tmp_path, tiny_model_dir, url="http://127.0.0.1:9", every="1h", broken_hourly=False):
    text = CONFIG.format(db=tmp_path / "s.db", model=tiny_model_dir, url=url, every=every)
    if broken_hourly:
        # A source pointing at a closed port fails every time; the others keep crawling.
        text = text.replace('cron = "0 * * * *"', 'every = "3s"').replace(
            f"{url}/reviews?page=1&location=airport", "http://127.0.0.1:9/reviews"
        )
    path = tmp_path / "config.toml"
    path.write_text(text)
    return loads_config(text, path)


def test_jobs_and_triggers_follow_the_config(tmp_path, tiny_model_dir):
    scheduler = build_scheduler(make_config(tmp_path, tiny_model_dir), BackgroundScheduler(timezone=UTC))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"crawl:reviews", "crawl:hourly", "process", "digest"}  # disabled sources get none
    assert isinstance(jobs["crawl:reviews"].trigger, IntervalTrigger)
    assert jobs["crawl:reviews"].trigger.interval == timedelta(hours=1)
    assert isinstance(jobs["crawl:hourly"].trigger, CronTrigger)
    assert jobs["process"].trigger.interval == timedelta(minutes=10)
    digest = jobs["digest"].trigger
    fire = digest.get_next_fire_time(None, datetime(2026, 7, 1, 12, tzinfo=UTC))
    assert (fire.hour, fire.minute, str(fire.tzinfo)) == (7, 30, "Europe/London")  # local time, DST-aware
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())
    listed = {row["id"]: row for row in describe_schedule(scheduler)}
    assert listed["digest"]["next_run"] and "cron" in listed["digest"]["trigger"]


def test_process_and_digest_jobs(tmp_path, tiny_model_dir):
    config = make_config(tmp_path, tiny_model_dir)
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "cold coffee", "complaint", rating=1, hours_ago=20)
    posted = datetime.fromisoformat(db.execute("select posted_at from mentions").fetchone()[0])
    db.conn.close()
    counts = process_job(str(config.path))
    assert counts["queued"] == 1
    # The digest's day is the config's (London) day of the post, not its UTC day: they differ in summer evenings.
    day = posted.astimezone(ZoneInfo("Europe/London")).date().isoformat()
    [path] = digest_job(str(config.path), day)
    assert path.endswith(f"digest-{day}.html") and "cold coffee" in Path(path).read_text(encoding="utf-8")


def test_the_scheduler_crawls_on_time_and_survives_a_failing_source(tmp_path, tiny_model_dir):
    server, url = start_review_site()
    config = make_config(tmp_path, tiny_model_dir, url=url, every="3s", broken_hourly=True)
    scheduler = build_scheduler(config, BackgroundScheduler(timezone=UTC))
    scheduler.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            db = open_db(config.storage_path)
            runs = db.execute("select count(*) from crawl_runs where source = 'reviews'").fetchone()[0]
            db.conn.close()
            if runs >= 2:
                break
            time.sleep(0.5)
    finally:
        scheduler.shutdown(wait=True)
        server.shutdown()
    db = open_db(config.storage_path)
    statuses = distinct_values(db, "crawl_runs", "status")
    assert runs >= 2, statuses  # crawled again on its interval
    assert statuses["reviews"] == "ok" and "hourly" in statuses and statuses["hourly"] != "ok"
    assert db["classifications"].count == db["mentions"].count > 0  # processed after the crawl


def test_monitor_run_list_prints_the_jobs(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from monitor.cli import cli

    config = make_config(tmp_path, tiny_model_dir)
    result = CliRunner().invoke(cli, ["--config", str(config.path), "run", "--list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("job") and "(times in Europe/London)" in lines[0]
    jobs = [line for line in lines[1:] if not line.lstrip().startswith("↳")]
    assert [line.split()[0] for line in jobs] == ["crawl:reviews", "crawl:hourly", "process", "digest"]
    assert "every 1 h" in jobs[0] and "cron 0 * * * * (UTC)" in jobs[1] and "daily at 07:30 Europe/London" in jobs[3]
    assert all(re.search(r" \d\d:\d\d (GMT|BST) ", line) for line in jobs)


def test_digest_job_keeps_the_file_when_sending_fails(tmp_path, tiny_model_dir, caplog, monkeypatch):
    import monitor.digest.send as send

    monkeypatch.setattr(send.time, "sleep", lambda _s: None, raising=False)
    config = make_config(tmp_path, tiny_model_dir)
    text = config.path.read_text().replace(
        "[schedule]",
        '[digest]\nrecipients = ["manager@acme.example"]\nsender = "monitor@acme.example"\n'
        'smtp_host = "127.0.0.1"\nsmtp_port = 9\nsmtp_security = "none"\n\n[schedule]',
    )
    config.path.write_text(text)
    [path] = digest_job(str(config.path), "2026-11-20")
    assert path.endswith("digest-2026-11-20.html") and Path(path).exists()
    assert "written but not sent" in caplog.text and "127.0.0.1:9" in caplog.text


def test_digest_job_catches_up_missed_days_once(tmp_path, tiny_model_dir):
    config = make_config(tmp_path, tiny_model_dir)
    db = open_db(config.storage_path)
    yesterday = datetime.now(ZoneInfo("Europe/London")).date() - timedelta(days=1)
    three_ago = (yesterday - timedelta(days=3)).isoformat()
    db["meta"].upsert({"key": "schedule.last_digest_day", "value": three_ago}, pk="key")
    db.conn.close()
    paths = digest_job(str(config.path))
    assert [Path(p).name for p in paths] == [
        f"digest-{yesterday - timedelta(days=d)}.html" for d in (2, 1, 0)
    ]  # the daemon was down for two digests: both written, then yesterday's
    assert digest_job(str(config.path)) == []  # a second run the same day (DST's repeated hour) sends nothing


def test_a_source_disabled_while_running_is_not_crawled(tmp_path, tiny_model_dir, caplog):
    from monitor.scheduler import crawl_job

    config = make_config(tmp_path, tiny_model_dir)
    config.path.write_text(config.path.read_text().replace('name = "reviews"\n', 'name = "reviews"\nenabled = false\n'))
    assert crawl_job(str(config.path), ["reviews", "gone"]) == {}
    assert "reviews is disabled or no longer configured" in caplog.text and "gone is disabled" in caplog.text


def test_the_daemon_stops_cleanly(tmp_path, tiny_model_dir):
    import threading

    from monitor.scheduler import _STOPPING, run_daemon

    config = make_config(tmp_path, tiny_model_dir)
    stop = threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(config, stop))
    daemon.start()
    time.sleep(1.5)
    stop.set()
    daemon.join(timeout=60)
    assert not daemon.is_alive() and _STOPPING.is_set()


def test_running_crawls_can_be_stopped(tmp_path, tiny_model_dir, monkeypatch):
    import threading

    from monitor import crawl

    config = make_config(tmp_path, tiny_model_dir)
    open_db(config.storage_path).conn.close()
    results = {}
    # A crawl that would sit for a minute: the child sleeps instead of crawling.
    monkeypatch.setattr(crawl, "crawl_command", lambda *a, **k: ["python3", "-c", "import time; time.sleep(60)"])
    worker = threading.Thread(target=lambda: results.update(
        crawl.crawl_scrapy_sources(config, [config.source("reviews")])))  # fmt: skip
    worker.start()
    deadline = time.monotonic() + 10
    while not crawl._RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert crawl.stop_running_crawls() == 1
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert results["reviews"]["status"] == "failed" and "exited with code" in results["reviews"]["messages"][0]
