"""The jobs `monitor worker` runs, the units the single-process daemon's jobs are made of (monitor/scheduler.py).

* ``crawl_source(name)`` — crawl one source now, exactly as `monitor crawl NAME` does (a Scrapy crawl in a child
  process of the worker; Reddit through PRAW in the worker). One crawl per source at a time (a lock); when it
  brought something new or updated, ``classify`` is enqueued.
* ``crawl_sources(names)`` — the same for several sources in one Scrapy child process (``[schedule] crawl_group``:
  a crawl's process start-up, ~0.7 CPU-seconds, paid once for the group). Each source keeps its own lock; one
  crawling elsewhere right now is skipped and the rest crawled.
* ``classify(process_after)`` — classify what is new, batch by batch, each batch claimed first
  (monitor/classify/stage.py), so any number of workers classify at once without doing a mention twice. The
  first batch enqueues one more ``classify``, so idle workers join a large backlog. Then ``process``.
* ``process()`` — shifts → queue → platform replies over what is classified (one at a time: a lock; a worker
  that finds it taken sends itself again in a few seconds, so nothing classified meanwhile waits for the next
  periodic pass). Then ``alerts`` when an alert channel is configured.
* ``alerts()`` — one alerts pass; each alert is claimed in the ledger before it is sent.

Messages carry no config path: each worker reads its own ``--config`` (every machine reads the same file).
Failed jobs are not retried by the broker: a failure is logged (and a failed crawl recorded in ``crawl_runs``)
and the schedule runs the job again, as in the single-process daemon.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from monitor.config import Config, load_config

log = logging.getLogger("monitor.workers")

QUEUE = "monitor"
# A source whose crawl runs longer than the crawl timeout is stopped by monitor/crawl.py; the lock outlives it.
CRAWL_LOCK = timedelta(hours=1, minutes=15)
PROCESS_LOCK = timedelta(minutes=30)
PROCESS_RETRY_MS = 5_000
_MS = {"crawl_source": 80 * 60_000, "crawl_sources": 80 * 60_000, "classify": 120 * 60_000,
       "process": 60 * 60_000, "alerts": 15 * 60_000}  # fmt: skip

# Set by the worker process (monitor/workers/run.py) to its --config.
CONFIG_PATH: str | None = None
# The model takes seconds to load: one per worker process and config.
_CLASSIFIERS: dict[str, Any] = {}
_CLASSIFIER_LOCK = threading.Lock()


def _config() -> Config:
    if CONFIG_PATH is None:
        raise RuntimeError("monitor.workers.actors.CONFIG_PATH is not set (run jobs through `monitor worker`)")
    # Read each time, as the daemon's jobs do: a source disabled since is skipped.
    return load_config(CONFIG_PATH)


def classifier_for(config: Config) -> Any:
    """The classifier for ``config``, loaded once per process (threads of one worker share it)."""
    from monitor.classify.stage import classifier_from_config

    key = f"{config.path}|{config.model!r}"
    with _CLASSIFIER_LOCK:
        if key not in _CLASSIFIERS:
            _CLASSIFIERS[key] = classifier_from_config(config)
        return _CLASSIFIERS[key]


def crawl_source(name: str) -> dict[str, Any]:
    """Crawl one source (skipped when disabled, gone, or crawling elsewhere right now)."""
    return _crawl(_config(), [name])


def crawl_sources(names: list[str]) -> dict[str, Any]:
    """Crawl several sources in one crawl process; each is skipped on its own when disabled, gone, or crawling
    elsewhere right now."""
    return _crawl(_config(), list(names))


def _crawl(config: Config, names: list[str]) -> dict[str, Any]:
    from contextlib import ExitStack

    from monitor.cycle import crawl_sources as crawl_now
    from monitor.workers.enqueue import enqueue_classify
    from monitor.workers.locks import exclusive

    configured = {s.name: s for s in config.sources}
    wanted = []
    for name in dict.fromkeys(names):
        if name not in configured or not configured[name].enabled:
            log.warning("source %s is disabled or no longer configured; not crawled", name)
        else:
            wanted.append(name)
    with ExitStack() as locks:
        held = []
        for name in wanted:
            if locks.enter_context(exclusive(config.storage_target, f"crawl:{name}", CRAWL_LOCK)) is None:
                log.info("source %s is being crawled by another worker; this crawl is skipped", name)
            else:
                held.append(name)
        results = crawl_now(config, held) if held else {}
    for crawled, result in results.items():
        log.info("crawled %s: %s new, %s updated, %s errors", crawled, result["new"], result["updated"],
                 result["errors"])  # fmt: skip
        for message in result["messages"]:
            log.warning("%s", message)
    if any(r["new"] or r["updated"] for r in results.values()):
        enqueue_classify(config, process_after=True)
    return results


def classify(process_after: bool = True) -> int:
    """Classify until nothing unclaimed is left; then enqueue ``process`` (always when ``process_after``)."""
    from monitor.classify.stage import classify_pending
    from monitor.store import open_db
    from monitor.workers.enqueue import enqueue_classify, enqueue_process

    config = _config()
    classifier = classifier_for(config)
    invited = False

    def invite_another(_batch: int) -> None:
        # One more classify job per job that found work: a backlog draws in idle workers, a trickle costs one no-op.
        nonlocal invited
        if not invited:
            invited = True
            enqueue_classify(config, process_after=False)

    db = open_db(config.storage_target)
    try:
        counts = classify_pending(db, classifier, on_claim=invite_another)
    finally:
        db.close()
    if counts.classified:
        log.info("classified %d mention(s): %s", counts.classified, counts.by_label)
    if counts.classified or process_after:
        enqueue_process(config)
    return counts.classified


def process() -> dict[str, Any] | None:
    """Shifts → queue → platform replies, one worker at a time; then alerts."""
    from monitor.cycle import process_new_mentions
    from monitor.store import open_db
    from monitor.workers.enqueue import enqueue_alerts, enqueue_process
    from monitor.workers.locks import exclusive

    config = _config()
    with exclusive(config.storage_target, "workers:process", PROCESS_LOCK) as held:
        if held is None:
            # The running pass may have read before our classifications committed: come back when it is done.
            enqueue_process(config, delay_ms=PROCESS_RETRY_MS)
            return None
        db = open_db(config.storage_target)
        try:
            # Classifies leftovers too (claimed batches, like the classify jobs), then shifts and queue.
            counts = process_new_mentions(db, config, classifier_for(config))
        finally:
            db.close()
    summary = {"classified": counts.classified.classified, "queued": counts.queue.created,
               "reopened": counts.queue.reopened, "recoveries": counts.queue.recoveries}  # fmt: skip
    log.info("processed: %s", summary)
    if config.alerts.channels:
        enqueue_alerts(config)
    return summary


def alerts() -> dict[str, Any] | None:
    """One alerts pass (each alert claimed per channel before it is sent: monitor/alerts/ledger.py)."""
    from monitor.scheduler import run_alerts_now

    return run_alerts_now(_config())


def declare_actors(broker: Any) -> dict[str, Any]:
    """Declare the jobs on ``broker``: no broker retries (the schedule retries), generous time limits."""
    import dramatiq

    actors = {}
    for fn in (crawl_source, crawl_sources, classify, process, alerts):
        actors[fn.__name__] = dramatiq.Actor(
            fn, broker=broker, actor_name=fn.__name__, queue_name=QUEUE, priority=0,
            options={"max_retries": 0, "time_limit": _MS[fn.__name__]},
        )  # fmt: skip
    return actors
