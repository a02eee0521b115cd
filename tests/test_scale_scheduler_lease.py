"""One `monitor run` per database: the scheduler lease (monitor/lease.py), its takeover and its loss."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import scheduler as scheduler_module
from monitor.config import ConfigError, loads_config
from monitor.lease import acquire, describe_holder, lease_timing, release, renew
from monitor.store import open_db

REPO = Path(__file__).resolve().parents[1]
SHORT = {"MONITOR_SCHEDULER_LEASE": "3s", "MONITOR_SCHEDULER_RENEW": "1s"}

# A real run_daemon in its own process; its jobs are replaced by one that records (pid, time) five times a
# second, so the test sees which scheduler runs jobs, and when.
DRIVER = """
import logging, os, sys, time
from monitor import scheduler
from monitor.config import load_config
from monitor.store import open_db, write_transaction

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
config = load_config(sys.argv[1])

def beat(path):
    db = open_db(path)
    try:
        with write_transaction(db):
            db.execute("insert into beats (pid, at) values (?, ?)", [os.getpid(), time.time()])
    finally:
        db.conn.close()

original = scheduler.build_scheduler

def build(config, sched=None):
    sched = original(config, sched)
    sched.remove_all_jobs()
    sched.add_job(beat, "interval", seconds=0.2, args=[str(config.storage_path)], id="beat", max_instances=1)
    return sched

scheduler.build_scheduler = build
scheduler.run_daemon(config)
"""


def make_config(tmp_path: Path) -> Any:
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\npath = "{tmp_path / "m.db"}"\n', encoding="utf-8")
    db = open_db(tmp_path / "m.db")
    db.execute("create table if not exists beats (pid integer, at double precision)")
    db.conn.commit()
    db.conn.close()
    return loads_config(path.read_text(), path)


def beats(db_path: Path) -> list[tuple[int, float]]:
    db = open_db(db_path)
    try:
        return [(row[0], row[1]) for row in db.execute("select pid, at from beats order by at").fetchall()]
    finally:
        db.conn.close()


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def start_scheduler(config: Any, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, **SHORT, "PYTHONPATH": str(REPO)}
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(config.path)], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


# ------------------------------------------------------------------ the lease itself


def test_lease_is_compare_and_set(tmp_path: Path) -> None:
    db = open_db(tmp_path / "m.db")
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    minute = timedelta(seconds=60)
    assert acquire(db, "a:1:x", minute, now=now).held
    taken = acquire(db, "b:2:y", minute, now=now + timedelta(seconds=30))
    assert (taken.held, taken.holder, taken.expires_at) == (False, "a:1:x", now + minute)
    assert renew(db, "a:1:x", minute, now=now + timedelta(seconds=40)) == now + timedelta(seconds=100)
    assert not acquire(db, "b:2:y", minute, now=now + timedelta(seconds=99)).held
    # Not renewed in time: the other takes it over, and the old holder's renewal says it lost it.
    assert acquire(db, "b:2:y", minute, now=now + timedelta(seconds=101)).held
    assert renew(db, "a:1:x", minute, now=now + timedelta(seconds=102)) is None
    assert not release(db, "a:1:x")
    assert release(db, "b:2:y") and acquire(db, "a:1:x", minute, now=now + timedelta(seconds=103)).held
    assert describe_holder("host.example:4242:ab12cd34") == "host.example:4242"


def test_lease_timing_comes_from_the_environment() -> None:
    assert lease_timing({}) == (timedelta(seconds=60), timedelta(seconds=20))
    assert lease_timing(SHORT) == (timedelta(seconds=3), timedelta(seconds=1))
    with pytest.raises(ConfigError, match="^MONITOR_SCHEDULER_LEASE: expected a duration"):
        lease_timing({"MONITOR_SCHEDULER_LEASE": "soon"})
    with pytest.raises(ConfigError, match="^MONITOR_SCHEDULER_RENEW: renewing every 60s must be more often"):
        lease_timing({"MONITOR_SCHEDULER_LEASE": "1m", "MONITOR_SCHEDULER_RENEW": "60s"})


# ------------------------------------------------------------------ two daemons


def test_second_scheduler_waits_then_takes_over_from_a_killed_one(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    first = start_scheduler(config, tmp_path / "first.log")
    second = None
    try:
        assert wait_for(lambda: any(pid == first.pid for pid, _ in beats(config.storage_path)), 30)
        second = start_scheduler(config, tmp_path / "second.log")
        assert wait_for(lambda: "waiting" in (tmp_path / "second.log").read_text(), 30)
        time.sleep(3.5)  # longer than the lease: the first renews it, so the second keeps waiting
        seen = beats(config.storage_path)
        assert {pid for pid, _ in seen} == {first.pid}  # only one scheduler runs jobs
        waiting = [line for line in (tmp_path / "second.log").read_text().splitlines() if "waiting" in line]
        assert len(waiting) == 1, waiting  # said once, not at every poll
        assert f"another scheduler ({os.uname().nodename}:{first.pid}) holds the lease until " in waiting[0]

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.time()
        assert wait_for(lambda: any(pid == second.pid for pid, _ in beats(config.storage_path)), 15)
        seen = beats(config.storage_path)
        took_over = min(at for pid, at in seen if pid == second.pid)
        # Within the lease (3 s), one poll, the first beat and a connection: 3 s of slack for a loaded machine.
        assert took_over - killed_at < 3 + 3
        assert max(at for pid, at in seen if pid == first.pid) < took_over  # never both at once
        assert "holding the scheduler lease" in (tmp_path / "second.log").read_text()

        second.send_signal(signal.SIGTERM)  # a clean stop gives the lease back
        assert second.wait(timeout=30) == 0
        db = open_db(config.storage_path)
        assert db.execute("select count(*) from leases").fetchone()[0] == 0
        db.conn.close()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_scheduler_that_loses_its_lease_starts_no_new_jobs(tmp_path, monkeypatch, caplog) -> None:
    for key, value in SHORT.items():
        monkeypatch.setenv(key, value)
    config = make_config(tmp_path)
    ran: list[float] = []
    original = scheduler_module.build_scheduler

    def build(cfg, sched=None):
        sched = original(cfg, sched)
        sched.remove_all_jobs()
        sched.add_job(lambda: scheduler_module._may_start("beat") and ran.append(time.monotonic()), "interval",
                      seconds=0.2, id="beat")  # fmt: skip
        return sched

    monkeypatch.setattr(scheduler_module, "build_scheduler", build)
    caplog.set_level(logging.INFO, logger="monitor.scheduler")
    stop = threading.Event()
    daemon = threading.Thread(target=scheduler_module.run_daemon, args=(config, stop))
    daemon.start()
    db = open_db(config.storage_path)
    try:
        assert wait_for(lambda: len(ran) >= 3, 30)
        # Another scheduler takes the lease (as after this one stalled past its expiry).
        far = (datetime.now(UTC) + timedelta(seconds=30)).isoformat(timespec="microseconds")
        with db.atomic():
            db.execute("update leases set holder = 'elsewhere:99:abcd', expires_at = ? where name = 'scheduler'", [far])
        assert wait_for(lambda: "lost the scheduler lease (now held by elsewhere:99)" in caplog.text, 10)
        time.sleep(0.5)
        count = len(ran)
        time.sleep(1.5)
        assert len(ran) == count  # no job started since
        assert "another scheduler (elsewhere:99) holds the lease until" in caplog.text
        with db.atomic():
            db.execute("delete from leases")  # the other one stopped cleanly
        assert wait_for(lambda: len(ran) > count, 10)  # this one took it back and schedules again
        assert wait_for(lambda: "took the scheduler lease back" in caplog.text, 5)
    finally:
        stop.set()
        daemon.join(timeout=30)
        db.conn.close()
    assert not daemon.is_alive() and scheduler_module._LEASE_UNTIL is None
