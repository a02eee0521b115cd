"""Server mode end to end: a real redis-server, `monitor run` enqueueing, `monitor worker` subprocesses running.

Workers run the real `monitor worker` command; the driver below only swaps the sentiment model for a fake that
logs each text it is asked to classify (pid and text, one line each) and can be slowed down, so the tests see
who classified what and can kill a worker mid-batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.store import open_db, record_mentions
from tests.mockserver import MockServer

from .conftest import store_exists
from .redis_server import redis_server, redis_url  # noqa: F401

REPO = Path(__file__).resolve().parents[1]

DRIVER = """
import os, sys, time
from monitor.classify import stage
from monitor.classify.model import Prediction
from monitor.workers import actors

log_path, pause, chunk = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
stage.CHUNK = chunk

class Fake:
    def detect(self, text):
        return "en"

    def classify(self, texts, langs=None):
        with open(log_path, "a", encoding="utf-8") as log:
            log.writelines(f"{os.getpid()} {t}\\n" for t in texts)
        time.sleep(pause)
        probs = {"complaint": 0.1, "neutral": 0.8, "praise": 0.1}
        return [("en", Prediction("neutral", 0.8, probs), "fake") for _ in texts]

actors.classifier_for = lambda config: Fake()
from monitor.cli import main
sys.argv = ["monitor", *sys.argv[4:]]
main()
"""


def write_config(directory: Path, broker: str, body: str = "") -> Path:
    path = directory / "config.toml"
    path.write_text(
        f'[storage]\npath = "{directory / "m.db"}"\n\n[workers]\nbroker = "{broker}"\n\n'
        '[schedule]\nprocess_every = "1s"\n\n' + body,
        encoding="utf-8",
    )
    return path


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(REPO), "MONITOR_SCHEDULER_LEASE": "3s", "MONITOR_SCHEDULER_RENEW": "1s"}
    out.pop("MONITOR_CONFIG", None)
    return out


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        with log.open("ab") as out:
            proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def worker(start: Callable[..., subprocess.Popen], config: Path, log: Path, *, pause: float = 0.0, chunk: int = 512,
           extra: tuple[str, ...] = ()) -> subprocess.Popen:  # fmt: skip
    args = [sys.executable, "-c", DRIVER, str(log.with_suffix(".classified")), str(pause), str(chunk),
            "--config", str(config), "worker", "--threads", "1", *extra]  # fmt: skip
    return start(args, log)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: list[Path] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def count(db_path: Path, sql: str) -> int:
    db = open_db(db_path)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.conn.close()


def classified_lines(folder: Path) -> list[tuple[str, str]]:
    lines = []
    for path in folder.glob("*.classified"):
        lines += [tuple(line.split(" ", 1)) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_monitor_run_enqueues_and_two_workers_crawl_once_and_classify_once(processes, request, tmp_path) -> None:
    broker = request.getfixturevalue("redis_url")  # by name: ruff takes a same-named parameter for a redefinition
    with MockServer() as server:
        config = write_config(tmp_path, broker, f'[[sources]]\nname = "mock"\ntype = "schema_org"\nbrand = "Acme"\n'
                              f'every = "1h"\nurls = ["{server.base_url}/reviews?page=1"]\n')  # fmt: skip
        logs = [tmp_path / "run.log", tmp_path / "w1.log", tmp_path / "w2.log"]
        scheduler = processes([sys.executable, "-m", "monitor.cli", "--config", str(config), "run"], logs[0])
        workers = [worker(processes, config, logs[1]), worker(processes, config, logs[2])]
        db = tmp_path / "m.db"

        def done() -> bool:
            return (store_exists(db) and count(db, "select count(*) from crawl_runs where status != 'running'") == 1
                    and count(db, "select count(*) from mentions") > 0
                    and count(db, "select count(*) from mentions m left join classifications c on c.mention_id = m.id "
                                  "where c.mention_id is null") == 0)  # fmt: skip

        wait_for(done, 45, "the crawl and its classification", logs)
        time.sleep(1.5)  # a few more periodic passes: nothing is done again
        stop(scheduler)
        for proc in workers:
            stop(proc)
    mentions = count(db, "select count(*) from mentions")
    assert mentions == count(db, "select count(distinct external_id) from mentions") == 4
    assert count(db, "select count(*) from crawl_runs") == 1  # enqueued once, crawled once
    assert count(db, "select count(*) from classifications") == mentions
    texts = Counter(text for _pid, text in classified_lines(tmp_path))
    assert len(texts) == mentions and set(texts.values()) == {1}, texts  # each mention classified exactly once
    # The scheduler only enqueued; a worker crawled (a line in exactly one worker's log).
    crawled = [p.name for p in logs[1:] if "crawled mock: 4 new" in p.read_text(errors="replace")]
    assert len(crawled) == 1 and "crawled mock" not in logs[0].read_text(errors="replace")
    assert count(db, "select count(*) from classify_claims") == 0
    assert count(db, "select count(*) from leases where name like 'crawl:%' or name like 'workers:%'") == 0


def seed(config: Path, count_: int) -> list[str]:
    db = open_db(load_config(config).storage_target)
    try:
        texts = [f"mention {i}" for i in range(count_)]
        record_mentions(db, "s", [{"external_id": f"e{i}", "text": t} for i, t in enumerate(texts)])
    finally:
        db.conn.close()
    return texts


def test_two_worker_processes_classify_at_once_each_mention_exactly_once(processes, request, tmp_path) -> None:
    broker = request.getfixturevalue("redis_url")  # by name: ruff takes a same-named parameter for a redefinition
    from monitor.workers.enqueue import enqueue_classify

    config = write_config(tmp_path, broker)
    texts = seed(config, 120)
    log = tmp_path / "w.log"
    supervisor = worker(processes, config, log, pause=0.4, chunk=10, extra=("--processes", "2"))
    enqueue_classify(load_config(config))
    db = tmp_path / "m.db"
    wait_for(lambda: count(db, "select count(*) from classifications") == 120, 40, "120 classifications", [log])
    stop(supervisor)
    lines = classified_lines(tmp_path)
    assert sorted(text for _pid, text in lines) == sorted(texts)  # every mention once: none twice, none skipped
    pids = Counter(pid for pid, _text in lines)
    assert len(pids) == 2 and min(pids.values()) >= 10, pids  # both processes took batches
    assert count(db, "select count(*) from classify_claims") == 0


def test_a_worker_killed_mid_batch_loses_nothing_and_another_finishes(processes, request, tmp_path) -> None:
    broker = request.getfixturevalue("redis_url")  # by name: ruff takes a same-named parameter for a redefinition
    from monitor.workers.enqueue import enqueue_classify

    config = write_config(tmp_path, broker)
    texts = seed(config, 30)
    db = tmp_path / "m.db"
    slow_log, fast_log = tmp_path / "slow.log", tmp_path / "fast.log"
    slow = worker(processes, config, slow_log, pause=60, chunk=10)
    enqueue_classify(load_config(config))
    wait_for(lambda: slow_log.with_suffix(".classified").exists()
             and len(slow_log.with_suffix(".classified").read_text().splitlines()) >= 10, 20,
             "the slow worker to be mid-batch", [slow_log])  # fmt: skip
    assert count(db, "select count(*) from classify_claims") == 1
    slow.kill()  # kill -9: its claim stays behind, its message is never acknowledged
    slow.wait(10)
    fast = worker(processes, config, fast_log, chunk=10)
    enqueue_classify(load_config(config))  # the scheduler's next periodic pass
    wait_for(lambda: count(db, "select count(*) from classifications") == 30, 30, "30 classifications", [fast_log])
    stop(fast)
    fast_lines = [text for _pid, text in classified_lines(tmp_path) if _pid == str(fast.pid)]
    assert sorted(fast_lines) == sorted(texts)  # the killed batch was done again by the survivor, all of it once
    assert count(db, "select count(*) from classify_claims") == 0
    assert "taking over the batch claimed by" in fast_log.read_text(errors="replace")


def test_worker_needs_a_reachable_broker(tmp_path) -> None:
    runner = CliRunner()
    plain = tmp_path / "plain.toml"
    plain.write_text(f'[storage]\npath = "{tmp_path / "m.db"}"\n', encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(plain), "worker"])
    assert result.exit_code == 2 and "config error: workers.broker: not set" in result.output
    down = write_config(tmp_path, "redis://127.0.0.1:1/0")
    for command in (["worker"], ["run"]):
        result = runner.invoke(cli, ["--config", str(down), *command])
        assert result.exit_code == 2, result.output
        assert "config error: workers.broker: cannot reach the broker at redis://127.0.0.1:1/0" in result.output
    secret = tmp_path / "secret.toml"
    secret.write_text('[workers]\nbroker = "redis://:hunter2@127.0.0.1:6379/0"\n', encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(secret), "worker"])
    assert result.exit_code == 2 and "MONITOR_BROKER_PASSWORD" in result.output and "hunter2" not in result.output


def test_run_list_shows_the_same_jobs_with_a_broker(tmp_path) -> None:
    body = '[[sources]]\nname = "feed"\ntype = "feed"\nurls = ["https://acme.example/feed.xml"]\n'
    with_broker = write_config(tmp_path, "redis://127.0.0.1:1/0", body)
    plain = tmp_path / "plain.toml"
    plain.write_text(body, encoding="utf-8")
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["--config", str(p), "run", "--list"]).output for p in (with_broker, plain)]
    ids = [[line.split()[0] for line in out.splitlines()[1:] if line and not line.startswith(" ")] for out in outputs]
    assert ids[0] == ids[1] == ["crawl:feed", "process", "digest"]
