"""`monitor run`: the scheduler daemon (APScheduler 3) that drives every stage.

Jobs (module-level functions, so APScheduler can name them in its logs):

* ``crawl_job`` — one per enabled source, on the source's ``every`` / ``cron``
  (default ``[schedule] default_every``). Scrapy sources crawl in a child
  process (``monitor/crawl.py``), so the daemon can crawl again and again.
  New mentions are processed right after the crawl.
* ``process_job`` — every ``[schedule] process_every``: classify what is new,
  estimate shifts, refresh the queue (priorities follow the SLA clock, new
  activity reopens items, recoveries are recorded).
* ``digest_job`` — daily at ``[schedule] digest_at`` in ``[schedule] timezone``:
  the digest for the day before, written to ``[digest] output_dir`` and emailed
  to ``[digest] recipients`` when set.
* ``alerts_job`` — every ``[alerts] every`` when an alert channel is configured,
  and right after each processing pass: urgent items, incidents, spikes and SLA
  breaches, each delivered once per channel (``monitor/alerts/``).

With ``[workers] broker`` (server mode, ``monitor/workers/``) the schedule and the lease stay, but the crawl,
processing and alerts jobs only enqueue: ``enqueue_crawl_job`` sends one ``crawl_source`` message per source,
``enqueue_process_job`` a ``classify`` (which goes on to shifts, queue and alerts), ``enqueue_alerts_job`` an
``alerts``; `monitor worker` processes run them. The digest is still written (and claimed, and sent) here.

A failing job is logged with its id and the next runs go on; a source that
fails is recorded in ``crawl_runs`` like any crawl. One job of a kind runs at
a time (``max_instances=1``), missed runs are coalesced into one. Crawls run
in their own thread pool, so a slow crawl never delays processing or the
digest. Jobs read the config file each time they run (a source disabled or
removed is skipped); new schedules and sources take effect on restart.

One scheduler at a time per database: ``run_daemon`` takes the ``scheduler``
lease (``monitor/lease.py``) before it starts any job and renews it from its
main thread. A second ``monitor run`` waits and takes over when the lease
expires; a daemon that finds its lease taken pauses and starts no new job.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import Config, SourceConfig, load_config
from monitor.terminal import local_time

log = logging.getLogger("monitor.scheduler")

# Processing writes the whole pipeline's tables; two runs at once would only contend for the lock.
_PROCESS_LOCK = threading.Lock()
# The model takes seconds to load: keep one per config file and [model] settings.
_CLASSIFIERS: dict[str, Any] = {}
# Set when the daemon is stopping: crawls still waiting in the pool's queue do not start.
_STOPPING = threading.Event()
CRAWL_THREADS = 3
DIGEST_CATCH_UP_DAYS = 7
DIGEST_MARK = "schedule.last_digest_day"
# Alerts are read, sent and recorded under this lock, so a crawl's pass and the periodic one never
# both send the same alert.
_ALERTS_LOCK = threading.Lock()
# Until when this daemon holds the scheduler lease; None when no lease is in play (a job called directly).
# A job starts only before it: a daemon that stalled past it (SIGSTOP, a suspended VM) may have been
# replaced meanwhile, and must not start anything until a renewal says it was not.
_LEASE_UNTIL: datetime | None = None


def _may_start(job: str) -> bool:
    """Whether ``job`` may start now, as far as the scheduler lease goes."""
    until = _LEASE_UNTIL
    if until is not None and datetime.now(UTC) >= until:
        log.warning("%s not started: this scheduler does not hold the scheduler lease now", job)
        return False
    return True


def _classifier(config: Config):
    from monitor.classify.stage import classifier_from_config

    key = f"{config.path}|{config.model!r}"
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = classifier_from_config(config)
    return _CLASSIFIERS[key]


def process_new_mentions(config: Config) -> dict[str, Any]:
    """Classify → shifts → queue (``monitor.cycle.process_new_mentions``); returns counts for the log."""
    from monitor.cycle import process_new_mentions as process
    from monitor.store import open_db

    with _PROCESS_LOCK:
        db = open_db(config.storage_target)
        try:
            counts = process(db, config, _classifier(config))
        finally:
            db.close()
    return {"classified": counts.classified.classified, "queued": counts.queue.created,
            "reopened": counts.queue.reopened, "recoveries": counts.queue.recoveries}  # fmt: skip


def crawl_job(config_path: str, source_names: list[str]) -> dict[str, Any]:
    """Crawl the named sources now, then process what they brought."""
    from monitor.cycle import crawl_sources

    if _STOPPING.is_set() or not _may_start(f"crawl of {', '.join(source_names)}"):
        return {}
    config = load_config(config_path)
    # The file may have changed since start-up: a source disabled or removed since is not crawled.
    configured = {s.name: s for s in config.sources}
    names = [n for n in source_names if n in configured and configured[n].enabled]
    for name in sorted(set(source_names) - set(names)):
        log.warning("source %s is disabled or no longer configured; not crawled (restart to drop its job)", name)
    if not names:
        return {}
    results = crawl_sources(config, names)
    for name, result in results.items():
        log.info("crawled %s: %s new, %s updated, %s errors", name, result["new"], result["updated"],
                 result["errors"])  # fmt: skip
        for message in result["messages"]:
            log.warning("%s", message)
    if any(r["new"] or r["updated"] for r in results.values()):
        log.info("processed: %s", process_new_mentions(config))
        _alerts_after_processing(config)
    return results


def process_job(config_path: str) -> dict[str, Any] | None:
    """The periodic pass; skipped when a crawl is processing right now."""
    if _PROCESS_LOCK.locked() or not _may_start("processing"):
        return None
    config = load_config(config_path)
    counts = process_new_mentions(config)
    log.info("processed: %s", counts)
    _alerts_after_processing(config)
    return counts


def run_alerts_now(config: Config, wait: bool = True) -> dict[str, Any] | None:
    """One alerts pass for ``config``; None when no alert channel is configured, or (``wait=False``)
    when another pass is running — it, or the next periodic one, picks the new alerts up."""
    from monitor.alerts.run import run_alerts
    from monitor.store import open_db

    if not config.alerts.channels:
        return None
    if not _ALERTS_LOCK.acquire(blocking=wait):
        return None
    try:
        db = open_db(config.storage_target)
        try:
            run = run_alerts(config, db)
        finally:
            db.close()
    finally:
        _ALERTS_LOCK.release()
    summary = run.summary()
    if any(r["pending"] for r in summary.values() if isinstance(r, dict)):
        log.info("alerts: %s", summary)
    return summary


def alerts_job(config_path: str) -> dict[str, Any] | None:
    """Send what deserves an alert now (each alert once per channel); failed channels retry next run."""
    if not _may_start("alerts"):
        return None
    return run_alerts_now(load_config(config_path))


def _alerts_after_processing(config: Config) -> None:
    # New items and incidents should not wait for the next alerts interval; a failure here must not
    # fail the crawl or processing job that called it (the periodic alerts job tries again).
    try:
        run_alerts_now(config, wait=False)  # never queue a crawl thread behind a slow channel
    except Exception as exc:
        log.error("alerts after processing failed: %s: %s", type(exc).__name__, exc)


def digest_job(config_path: str, day: str | None = None) -> list[str]:
    """Write (and email, when ``[digest] recipients`` is set) the digest of ``day``, or of every day
    since the last one written up to yesterday in the schedule's time zone.

    Catching up from a mark in ``meta`` makes a late run, a restart across ``digest_at`` or a
    repeated hour at a DST change neither skip a day nor send one twice. A failed send is logged;
    the written file stays.
    """
    from monitor.store import open_db
    from monitor.store.meta import get_meta, set_meta

    if not _may_start("digest"):
        return []
    config = load_config(config_path)
    yesterday = datetime.now(ZoneInfo(config.schedule.timezone)).date() - timedelta(days=1)
    db = open_db(config.storage_target)
    try:
        if day:
            days = [date.fromisoformat(day)]
        else:
            mark = get_meta(db, DIGEST_MARK)
            last = date.fromisoformat(mark) if mark else yesterday - timedelta(days=1)
            first = max(last + timedelta(days=1), yesterday - timedelta(days=DIGEST_CATCH_UP_DAYS - 1))
            days = [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]
        paths = [_deliver_one(config, db, target) for target in days]
        if days and not day:
            set_meta(db, DIGEST_MARK, days[-1].isoformat())
    finally:
        db.close()
    return paths


def _deliver_one(config: Config, db, target: date) -> str:
    from monitor.config import ConfigError
    from monitor.digest.send import DigestSendError, deliver_digest

    try:
        # Claimed before sending: two schedulers (one taking over from the other) never send a day twice.
        path, sent_to = deliver_digest(config, db, target, once=True)
    except (DigestSendError, ConfigError) as exc:
        log.error("digest for %s written but not sent: %s", target, exc)
        return str(getattr(exc, "path", ""))
    log.info("digest for %s written to %s%s", target, path, f", emailed to {', '.join(sent_to)}" if sent_to else "")
    return str(path)


def enqueue_crawl_job(config_path: str, source_names: list[str]) -> int:
    """Server mode: enqueue the crawl of each named source (a worker crawls it, then classifies)."""
    from monitor.workers.enqueue import enqueue_crawl

    if _STOPPING.is_set() or not _may_start(f"crawl of {', '.join(source_names)}"):
        return 0
    config = load_config(config_path)
    configured = {s.name: s for s in config.sources}
    names = [n for n in source_names if n in configured and configured[n].enabled]
    for name in sorted(set(source_names) - set(names)):
        log.warning("source %s is disabled or no longer configured; not crawled (restart to drop its job)", name)
    sent = enqueue_crawl(config, names, together=True) if names else 0  # a group stays one crawl process
    log.debug("enqueued %d crawl(s): %s", sent, ", ".join(names))
    return sent


def enqueue_process_job(config_path: str) -> bool:
    """Server mode: the periodic pass -- enqueue a classify job that goes on to shifts, queue and alerts."""
    from monitor.workers.enqueue import enqueue_classify

    if not _may_start("processing"):
        return False
    enqueue_classify(load_config(config_path), process_after=True)
    return True


def enqueue_alerts_job(config_path: str) -> bool:
    """Server mode: enqueue an alerts pass."""
    from monitor.workers.enqueue import enqueue_alerts

    if not _may_start("alerts"):
        return False
    enqueue_alerts(load_config(config_path))
    return True


def source_trigger(source: SourceConfig, default_every: timedelta):
    if source.cron:
        return CronTrigger.from_crontab(source.cron, timezone=UTC)
    every = (source.every or default_every).total_seconds()
    # A little jitter keeps sources with the same interval from all crawling in the same second.
    return IntervalTrigger(seconds=every, timezone=UTC, jitter=min(every / 10, 60) if every >= 60 else None)


def crawl_groups(sources: list[SourceConfig], size: int) -> list[list[SourceConfig]]:
    """The crawl jobs: sources on the same ``cron`` / ``every`` in groups of at most ``size`` (config order), each
    crawled by one job in one crawl process; ``size`` 1 gives every source its own job."""
    by_schedule: dict[tuple[str | None, float | None], list[SourceConfig]] = {}
    for source in sources:
        key = (source.cron, None if source.cron else (source.every.total_seconds() if source.every else None))
        by_schedule.setdefault(key, []).append(source)
    groups = [members[i : i + size] for members in by_schedule.values() for i in range(0, len(members), size)]
    position = {id(source): i for i, source in enumerate(sources)}
    return sorted(groups, key=lambda group: position[id(group[0])])


def build_scheduler(config: Config, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """Add every job for ``config`` to ``scheduler`` (a BackgroundScheduler by default); does not start it."""
    scheduler = scheduler or BackgroundScheduler(timezone=UTC)
    _STOPPING.clear()  # a new scheduler is not stopping, whatever an earlier one in this process did
    # Crawls get their own pool: ten slow crawls must not hold up processing or the digest.
    scheduler.add_executor(ThreadPoolExecutor(CRAWL_THREADS), "crawl")
    path = str(config.path)
    plan = config.schedule
    now = datetime.now(UTC)
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    # Server mode: the same schedule, but the jobs only enqueue (workers run them).
    brokered = bool(config.workers.broker)
    crawl_fn, process_fn, alerts_fn = ((enqueue_crawl_job, enqueue_process_job, enqueue_alerts_job) if brokered
                                       else (crawl_job, process_job, alerts_job))  # fmt: skip
    for i, group in enumerate(crawl_groups([s for s in config.sources if s.enabled], plan.crawl_group)):
        names = [s.name for s in group]
        scheduler.add_job(
            crawl_fn, source_trigger(group[0], plan.default_every), args=[path, names],
            id=f"crawl:{','.join(names)}", name=f"crawl {', '.join(names)}", executor="crawl",
            next_run_time=now + timedelta(seconds=2 * i), **common,  # staggered first crawls
        )  # fmt: skip
    scheduler.add_job(
        process_fn, IntervalTrigger(seconds=plan.process_every.total_seconds(), timezone=UTC), args=[path],
        id="process", name="classify, shifts, queue", **common,
    )  # fmt: skip
    hour, minute = divmod(plan.digest_at, 60)
    zone = ZoneInfo(plan.timezone)
    local_now = now.astimezone(zone)
    # Started after today's digest time: catch up at once (digest_job skips days already written).
    catch_up = now + timedelta(seconds=30) if local_now.time() >= time(hour, minute) else None
    scheduler.add_job(
        digest_job, CronTrigger(hour=hour, minute=minute, timezone=zone), args=[path],
        id="digest", name="daily digest", next_run_time=catch_up, **common,
    )  # fmt: skip
    if config.alerts.channels:
        scheduler.add_job(
            alerts_fn, IntervalTrigger(seconds=config.alerts.every.total_seconds(), timezone=UTC), args=[path],
            id="alerts", name="alerts", next_run_time=now, **common,
        )  # fmt: skip
    scheduler.add_listener(_log_job_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
    return scheduler


def _log_job_event(event: JobExecutionEvent) -> None:
    if event.exception is not None:
        # The traceback goes to the log; the daemon and the other jobs go on.
        log.error("job %s failed: %s: %s", event.job_id, type(event.exception).__name__, event.exception)
    else:
        log.debug("job %s done", event.job_id)


def describe_schedule(scheduler: BaseScheduler) -> list[dict[str, str]]:
    """Each job's id, name, trigger and next run (for ``monitor run --list``)."""
    out = []
    for job in scheduler.get_jobs():
        next_run = getattr(job, "next_run_time", None) or job.trigger.get_next_fire_time(None, datetime.now(UTC))
        out.append({"id": job.id, "name": job.name, "trigger": str(job.trigger),
                    "next_run": next_run.isoformat() if next_run else ""})  # fmt: skip
    return out


def _every(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def schedule_listing(config: Config, scheduler, now: datetime) -> list[dict[str, str]]:
    """Each job of a (not started) scheduler: its schedule in words and next run in ``[schedule] timezone``,
    and why it runs early when it does (the digest's catch-up run, first crawls at start)."""
    from apscheduler.triggers.interval import IntervalTrigger

    tz = config.schedule.timezone
    crons = {s.name: s.cron for s in config.sources if s.cron}
    digest_at = "{:02d}:{:02d}".format(*divmod(config.schedule.digest_at, 60))
    rows = []
    for job in scheduler.get_jobs():
        natural = job.trigger.get_next_fire_time(None, now)
        next_run = getattr(job, "next_run_time", None) or natural
        if isinstance(job.trigger, IntervalTrigger):
            schedule = f"every {_every(job.trigger.interval)}"
        elif job.id == "digest":
            schedule = f"daily at {digest_at} {tz}"
        else:
            first = job.args[1][0] if job.id.startswith("crawl:") else None  # a crawl job's (first) source
            schedule = f"cron {crons.get(first, str(job.trigger))} (UTC)"
        note = ""
        if next_run and natural and next_run < natural:
            if job.id == "digest":
                yesterday = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
                note = (f"catch-up run: started after today's {digest_at} digest time, so the digest for {yesterday} "
                        "(and any missed day before it) is written now, unless it already was")  # fmt: skip
            else:
                note = "first run at start, then on schedule"
        rows.append({"id": job.id, "name": job.name, "schedule": schedule, "trigger": str(job.trigger),
                     "next_run": next_run.astimezone(ZoneInfo(tz)).isoformat() if next_run else None,
                     "next_run_local": local_time(next_run, tz), "timezone": tz, "note": note})  # fmt: skip
    return rows


def close_interrupted_crawls(config: Config) -> int:
    """Mark crawl runs left ``running`` by a killed daemon or crawler as failed; return how many.

    Each crawl also does this before it starts, but only for its own turn: until then source health
    would show a source crawled by a process that died as still crawling. A failure here is logged and
    the daemon starts anyway -- every crawl checks again.
    """
    from monitor.crawl import close_interrupted_runs
    from monitor.db import describe
    from monitor.store import open_db

    try:
        db = open_db(config.storage_target)
        try:
            closed = close_interrupted_runs(db)
        finally:
            db.close()
    except Exception:
        log.exception("could not close interrupted crawl runs in %s", describe(config.storage_target))
        return 0
    if closed:
        log.warning("%d crawl run(s) interrupted before this start marked failed", closed)
    return closed


def install_stop_signals(stop_event: threading.Event) -> None:
    """SIGTERM / SIGINT: finish the running jobs, then stop; a second signal stops the crawls and exits at once.
    (Only the main thread may install handlers: a daemon started in a thread, as tests do, keeps Python's.)"""

    def stop(signum: int, _frame: Any) -> None:
        if stop_event.is_set():
            from monitor.crawl import stop_running_crawls

            log.warning("signal %s again: stopping %d crawl(s) and exiting now", signum, stop_running_crawls())
            os._exit(128 + signum)
        log.info("signal %s: stopping after running jobs finish", signum)
        stop_event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def run_daemon(config: Config, stop_event: threading.Event | None = None) -> None:
    """Run until SIGINT / SIGTERM (or ``stop_event``); running jobs finish, queued crawls do not start.

    Jobs start only while this daemon holds the scheduler lease (module docstring); until then it
    waits. A second signal while jobs are finishing exits at once.
    """
    global _LEASE_UNTIL
    from monitor.lease import LeaseKeeper, lease_timing

    duration, renew_every = lease_timing()  # a bad value stops here, naming the variable
    if config.workers.broker:
        from monitor.workers.broker import check_broker

        check_broker(config.workers.broker)  # unreachable: one clear line now, not a failed job per run
    stop_event = stop_event or threading.Event()
    install_stop_signals(stop_event)
    lease = LeaseKeeper(config.storage_target, duration, renew_every)
    try:
        if not lease.wait_until_held(stop_event):
            return  # stopped while another scheduler held the lease: nothing was started
        _LEASE_UNTIL = lease.until
        # Built once the lease is held: the first crawls and a catch-up digest are due from now, not from
        # when this daemon started waiting.
        scheduler = build_scheduler(config)
        _STOPPING.clear()
        close_interrupted_crawls(config)
        scheduler.start()
        log.info("scheduler started with %d jobs", len(scheduler.get_jobs()))
        try:
            _run_holding_lease(scheduler, lease, stop_event, min(1.0, renew_every.total_seconds()))
        finally:
            _STOPPING.set()
            scheduler.shutdown(wait=True)
            log.info("scheduler stopped")
    finally:
        _LEASE_UNTIL = None
        lease.close()  # given back only now: no job of this daemon is still running


def _run_holding_lease(scheduler: BaseScheduler, lease: Any, stop_event: threading.Event, tick: float) -> None:
    """The daemon's heartbeat: renew the lease; when it is lost, start no new job until it is held again."""
    global _LEASE_UNTIL
    while not stop_event.wait(tick):
        if lease.heartbeat():
            _LEASE_UNTIL = lease.until
            continue
        # Another scheduler runs the jobs now. Running ones finish (they cannot be stopped halfway safely);
        # nothing new starts here until this daemon takes the lease back.
        _LEASE_UNTIL = datetime.min.replace(tzinfo=UTC)
        scheduler.pause()
        if not lease.wait_until_held(stop_event):
            return
        log.info("took the scheduler lease back; scheduling again")  # logged first: jobs start right after
        _LEASE_UNTIL = lease.until
        scheduler.resume()
