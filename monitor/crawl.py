"""Run Scrapy crawls from the application, each in a fresh subprocess.

Why a subprocess: Scrapy runs on Twisted, whose reactor can be started only
once per process. The scheduler daemon (``monitor run``) must crawl again and
again, and the CLI may crawl from a process that already did other work, so
each crawl runs ``python -m spiders.run`` in a child process with one
``CrawlerProcess`` for all requested sources. The child writes mentions and one
``crawl_runs`` row per source to the database; this side only reads those rows
back. A child that crashes, hangs or is killed cannot take the caller with it:
every source it should have crawled gets an error entry naming it, and what
the child already stored stays stored.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config import Config, SourceConfig
from monitor.processes import pid_alive
from monitor.store import UpsertCounts, crawl_runs, finish_crawl_run, open_db, start_crawl_run

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_TIMEOUT = 3600.0
# Crawl children now running, so a daemon that must stop at once can stop them too.
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
STDERR_TAIL = 800


# A run without a pid (written by an older version, or between its insert and claim_crawl_run) is
# only judged interrupted once it is older than any crawl may take.
UNCLAIMED_RUN_GRACE_S = DEFAULT_TIMEOUT + 600


def claim_crawl_run(db: Any, run_id: int) -> None:
    """Record this process as the one running ``run_id``, so a later start can tell if it was killed."""
    crawl_runs.claim_run(db, run_id, os.getpid(), socket.gethostname())


def close_interrupted_runs(db: Any, now: datetime | None = None) -> int:
    """Mark ``running`` crawl runs whose process is gone as failed; return how many.

    A crawl killed outright (``kill -9``, power loss) never finishes its ``crawl_runs`` row,
    and source health would show it running forever. Called before each crawl starts.
    """
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(seconds=UNCLAIMED_RUN_GRACE_S)).replace(microsecond=0).isoformat()
    stale = []
    this_host = socket.gethostname()
    for run_id, pid, host, started_at, messages in crawl_runs.running_runs(db):
        # A pid is only meaningful on its own machine; a run from another host (a worker elsewhere), like one not
        # yet claimed, is stale only once it is older than any crawl may run.
        here = pid is not None and (host is None or host == this_host)
        if (here and not pid_alive(int(pid))) or (not here and (started_at or "") < cutoff):
            stale.append((run_id, pid, messages))
    for run_id, pid, messages in stale:
        try:
            earlier = json.loads(messages or "[]")
        except ValueError:
            earlier = []
        who = f"process {pid}" if pid is not None else "its process"
        note = f"crawl interrupted: {who} ended without finishing the run; the next crawl reads deep again"
        crawl_runs.fail_running_run(db, run_id, [*earlier, note])
    return len(stale)


def _summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "new": row["new"] or 0,
        "updated": row["updated"] or 0,
        "unchanged": row["unchanged"] or 0,
        "errors": row["errors"] or 0,
        "messages": json.loads(row["messages"] or "[]"),
        "status": row["status"],
    }


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text[-STDERR_TAIL:]


def crawl_command(config: Config, names: Sequence[str], settings: Mapping[str, Any] | None = None) -> list[str]:
    """The child process's command line (``sys.executable``, so the same virtualenv)."""
    command = [sys.executable, "-m", "spiders.run", "--config", str(Path(config.path).resolve())]
    for key, value in (settings or {}).items():
        command += ["--setting", f"{key}={value}"]
    return [*command, "--", *names]


def crawl_scrapy_sources(
    config: Config,
    sources: Sequence[SourceConfig],
    *,
    settings: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """Crawl ``sources`` in one child process; return per-source counts and messages.

    Each value is ``{"new", "updated", "unchanged", "errors", "messages", "status"}``,
    read from the newest ``crawl_runs`` row the child wrote for that source.
    ``settings`` are Scrapy setting overrides (tests use them to drop delays).
    """
    names = list(dict.fromkeys(source.name for source in sources))
    if not names:
        return {}
    db = open_db(config.storage_target)
    try:
        close_interrupted_runs(db)
        before = crawl_runs.last_run_id(db)
    finally:
        db.close()

    env = dict(os.environ)
    # The child must import monitor/ and spiders/ whatever the caller's working directory is.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    failure = ""
    try:
        proc = subprocess.Popen(
            crawl_command(config, names, settings),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        failure = f"could not start the crawl process: {exc}"
    else:
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            _stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failure = f"crawl process did not finish within {timeout:g} s and was stopped"
        else:
            # Exit code 1 only means some named source could not start; run.py records those itself.
            # Any code is worth reporting for a source that ends up without a finished run.
            if proc.returncode != 0:
                failure = f"crawl process exited with code {proc.returncode}: {_tail(stderr)}"
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)

    return _collect(config, names, before, failure)


def stop_running_crawls() -> int:
    """Ask every running crawl child to stop (SIGTERM: Scrapy closes its spiders and stores what it has)."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        proc.terminate()
    return len(procs)


def _collect(config: Config, names: list[str], before: int, failure: str) -> dict[str, dict[str, Any]]:
    db = open_db(config.storage_target)
    try:
        # Rows come oldest first, so the last one per source wins.
        newest = {row["source"]: row for row in crawl_runs.runs_after(db, before, names)}
        results: dict[str, dict[str, Any]] = {}
        for name in names:
            row = newest.get(name)
            if row is not None and row["status"] != "running":
                results[name] = _summary(row)
                continue
            message = f"source {name!r}: " + (failure or "crawl process ended without recording a result")
            # Close the run the child left open (or record one), so source health shows the failure.
            run_id = row["id"] if row is not None else start_crawl_run(db, name)
            finish_crawl_run(db, run_id, UpsertCounts(), [message])
            results[name] = {
                "new": 0,
                "updated": 0,
                "unchanged": 0,
                "errors": 1,
                "messages": [message],
                "status": "failed",
            }
        return results
    finally:
        db.close()
