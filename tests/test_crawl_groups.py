"""`[schedule] crawl_group`: sources on the same schedule crawled by one job in one crawl process (each crawl's
start-up, ~0.7 CPU-seconds, paid once per group: bench/crawl_start.py), in both modes, each source still locked,
skipped and reported on its own."""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import UTC, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import ConfigError, loads_config
from monitor.lease import acquire, new_holder_id, release
from monitor.scheduler import build_scheduler, crawl_groups
from monitor.store import open_db
from monitor.workers import actors, enqueue
from tests.mockserver import MockServer

from .conftest import store_exists
from .redis_server import redis_server, redis_url  # noqa: F401
from .test_workers import count, processes, stop, wait_for, worker  # noqa: F401


def sources_config(tmp_path, group: int, extra: str = "") -> str:
    body = f'[storage]\npath = "{tmp_path / "g.db"}"\n[schedule]\ncrawl_group = {group}\n{extra}'
    for name, schedule in [
        ("a", 'every = "15m"'),
        ("b", 'every = "15m"'),
        ("c", 'cron = "0 * * * *"'),
        ("d", 'every = "15m"'),
        ("e", ""),
        ("f", 'every = "15m"'),
        ("g", 'cron = "0 * * * *"'),
    ]:
        body += f'[[sources]]\nname = "{name}"\ntype = "schema_org"\n{schedule}\nurls = ["http://127.0.0.1:9/r"]\n'
    return body  # fmt: skip


def test_sources_on_the_same_schedule_are_grouped_in_config_order(tmp_path) -> None:
    config = loads_config(sources_config(tmp_path, 2), tmp_path / "config.toml")
    groups = [[s.name for s in group] for group in crawl_groups(config.sources, config.schedule.crawl_group)]
    assert groups == [["a", "b"], ["c", "g"], ["d", "f"], ["e"]]
    singles = [[s.name for s in group] for group in crawl_groups(config.sources, 1)]
    assert singles == [[name] for name in "abcdefg"]  # the default: one job per source, as before


def test_the_scheduler_makes_one_job_per_group_on_its_schedule(tmp_path) -> None:
    config = loads_config(sources_config(tmp_path, 3), tmp_path / "config.toml")
    scheduler = build_scheduler(config, BackgroundScheduler(timezone=UTC))
    jobs = {job.id: job for job in scheduler.get_jobs() if job.id.startswith("crawl:")}
    assert set(jobs) == {"crawl:a,b,d", "crawl:f", "crawl:c,g", "crawl:e"}
    assert jobs["crawl:a,b,d"].args[1] == ["a", "b", "d"]
    assert jobs["crawl:a,b,d"].trigger.interval == timedelta(minutes=15)
    assert jobs["crawl:e"].trigger.interval == timedelta(hours=1)  # [schedule] default_every
    listing = CliRunner().invoke(cli, ["--config", str(_write(tmp_path, 3)), "run", "--list"])
    assert listing.exit_code == 0, listing.output
    line = next(row for row in listing.output.splitlines() if row.startswith("crawl:c,g"))
    assert "cron 0 * * * * (UTC)" in line


def _write(tmp_path, group: int):
    path = tmp_path / "config.toml"
    path.write_text(sources_config(tmp_path, group))
    return path


@pytest.mark.parametrize("value", ["0", "-2", '"ten"', "1.5"])
def test_a_bad_crawl_group_is_named(tmp_path, value: str) -> None:
    text = sources_config(tmp_path, 1).replace("crawl_group = 1", f"crawl_group = {value}")
    with pytest.raises(ConfigError, match="crawl_group"):
        loads_config(text, tmp_path / "config.toml")


def test_a_worker_crawls_a_group_in_one_process_and_skips_a_source_crawling_elsewhere(tmp_path, monkeypatch) -> None:
    path = _write(tmp_path, 3)
    monkeypatch.setattr(actors, "CONFIG_PATH", str(path))
    calls: list[list[str]] = []

    def crawl_now(config, names):
        calls.append(list(names))
        return {name: {"new": 0, "updated": 0, "errors": 0, "messages": [], "status": "ok"} for name in names}

    monkeypatch.setattr("monitor.cycle.crawl_sources", crawl_now)
    db = open_db(tmp_path / "g.db")
    elsewhere = new_holder_id()  # this process's own id: a live holder, not one whose process is gone
    assert acquire(db, elsewhere, timedelta(minutes=5), name="crawl:b").held
    try:
        results = actors.crawl_sources(["a", "b", "d", "gone"])
    finally:
        release(db, elsewhere, name="crawl:b")
    assert calls == [["a", "d"]]  # one crawl process for the group; b is crawling elsewhere, gone is not configured
    assert set(results) == {"a", "d"}
    assert db.execute("select count(*) from leases where name like 'crawl:%'").fetchone()[0] == 0  # given back
    db.close()


def test_enqueueing_a_group_sends_one_message(monkeypatch, tmp_path) -> None:
    sent: list[tuple[str, tuple]] = []

    class Actor:
        def __init__(self, name: str) -> None:
            self.name = name

        def send(self, *args) -> None:
            sent.append((self.name, args))

    monkeypatch.setattr(enqueue, "_actor", lambda config, name: Actor(name))
    config = loads_config(sources_config(tmp_path, 3), tmp_path / "config.toml")
    assert enqueue.enqueue_crawl(config, ["a", "b"], together=True) == 1
    assert enqueue.enqueue_crawl(config, ["a", "b"]) == 2
    assert enqueue.enqueue_crawl(config, ["e"], together=True) == 1
    assert sent == [("crawl_sources", (["a", "b"],)), ("crawl_source", ("a",)), ("crawl_source", ("b",)),
                    ("crawl_source", ("e",))]  # fmt: skip


def test_monitor_run_and_a_worker_crawl_a_group_in_one_crawl_process(request, tmp_path) -> None:
    broker = request.getfixturevalue("redis_url")  # by name: ruff takes a same-named parameter for a redefinition
    start = request.getfixturevalue("processes")
    with MockServer() as server:
        path = tmp_path / "config.toml"
        body = (f'[storage]\npath = "{tmp_path / "m.db"}"\n\n[workers]\nbroker = "{broker}"\n\n'
                '[schedule]\nprocess_every = "1s"\ncrawl_group = 5\n')  # fmt: skip
        for name in ("mock-a", "mock-b"):
            body += (f'\n[[sources]]\nname = "{name}"\ntype = "schema_org"\nbrand = "Acme"\nevery = "1h"\n'
                     f'urls = ["{server.base_url}/reviews?page=1"]\n')  # fmt: skip
        path.write_text(body, encoding="utf-8")
        logs = [tmp_path / "run.log", tmp_path / "w1.log"]
        scheduler = start([sys.executable, "-m", "monitor.cli", "--config", str(path), "run"], logs[0])
        one = worker(start, path, logs[1])
        db = tmp_path / "m.db"

        def done() -> bool:
            return store_exists(db) and count(db, "select count(*) from crawl_runs where status = 'ok'") == 2

        wait_for(done, 45, "the group's crawl", logs)
        time.sleep(0.5)
        stop(scheduler)
        stop(one)
    log = logs[1].read_text(errors="replace")
    assert "crawled mock-a: 4 new" in log and "crawl of mock-a" not in log
    assert "crawled mock-b: 4 new" in log
    store = open_db(db)
    pids = Counter(row[0] for row in store.execute("select pid from crawl_runs").fetchall())
    store.close()
    assert len(pids) == 1 and sum(pids.values()) == 2  # both runs recorded by one crawl process
    assert "crawled mock" not in logs[0].read_text(errors="replace")  # the worker crawled, not the scheduler
