"""`monitor worker`: run the jobs `monitor run` enqueues, until SIGINT / SIGTERM.

One process runs ``threads`` jobs at once (a crawl mostly waits on its Scrapy child, so a second thread keeps
classifying meanwhile). ``processes > 1`` forks that many worker processes and restarts one that dies; a signal
to the parent stops them all. Stopping lets running jobs finish (a second signal stops running crawls and exits
at once); a job cut short by ``kill -9`` leaves claims and locks that are taken over (monitor/workers/locks.py,
the classify claims), and its message goes back on the queue when the broker notices the worker is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from monitor.config import Config, ConfigError

log = logging.getLogger("monitor.workers")

RESTART_PAUSE_S = 1.0
STOP_TIMEOUT_MS = 3_600_000  # running jobs (a long crawl) may finish before the worker exits


def run_worker(
    config: Config, *, processes: int = 1, threads: int = 2, stop_event: threading.Event | None = None
) -> int:
    """Run worker process(es) for ``config``; returns the exit code. Raises ConfigError without a broker and
    :class:`~monitor.workers.broker.BrokerError` when it cannot be reached."""
    from monitor.store import open_db
    from monitor.workers.broker import check_broker

    if not config.workers.broker:
        raise ConfigError("workers.broker", "not set: `monitor worker` runs jobs that `monitor run` enqueues on a "
                          'broker; set it, e.g. broker = "redis://127.0.0.1:6379/0"')  # fmt: skip
    check_broker(config.workers.broker)
    open_db(config.storage_target).close()  # create / migrate before the first job
    if processes <= 1:
        return _run_one(str(config.path), threads, stop_event)
    return _supervise(str(config.path), processes, threads, stop_event)


def _run_one(config_path: str, threads: int, stop_event: threading.Event | None) -> int:
    from dramatiq import Worker

    from monitor.config import load_config
    from monitor.scheduler import install_stop_signals
    from monitor.workers import actors
    from monitor.workers.broker import get_broker

    stop_event = stop_event or threading.Event()
    install_stop_signals(stop_event)
    config = load_config(config_path)
    actors.CONFIG_PATH = str(Path(config_path).resolve())
    broker = get_broker(config.workers.broker)
    worker = Worker(broker, queues={actors.QUEUE}, worker_threads=threads, worker_timeout=1000)
    # Hold no more messages than threads can run: a long crawl must not sit behind this worker's busy threads
    # while another worker is idle.
    worker.queue_prefetch = threads
    worker.start()
    log.info("worker %d running %d thread(s) on %s", os.getpid(), threads, config.workers.broker)
    try:
        stop_event.wait()
    finally:
        worker.stop(timeout=STOP_TIMEOUT_MS)
        broker.close()
        log.info("worker %d stopped", os.getpid())
    return 0


def _child(config_path: str, threads: int) -> None:
    # A fresh process image for the broker's connections: nothing opened in the parent is shared.
    raise SystemExit(_run_one(config_path, threads, None))


def _supervise(config_path: str, processes: int, threads: int, stop_event: threading.Event | None) -> int:
    stop_event = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    # fork: children start at once and inherit the parent's imports (and a test's patches); the parent has
    # opened no broker connection and runs no thread yet.
    context = multiprocessing.get_context("fork")
    children: list[Any] = [None] * processes

    def start(i: int) -> None:
        child = context.Process(target=_child, args=(config_path, threads), name=f"monitor-worker-{i}")
        child.start()
        children[i] = child

    for i in range(processes):
        start(i)
    log.info("supervising %d worker processes", processes)
    while not stop_event.wait(0.5):
        for i, child in enumerate(children):
            if not child.is_alive():
                log.error("worker process %d exited with code %s; starting another", child.pid, child.exitcode)
                time.sleep(RESTART_PAUSE_S)
                start(i)
    for child in children:
        if child.is_alive():
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join()
    return 0
