"""One pass through the pipeline: crawl → store → classify → shifts → queue → digest.

Each stage is also its own CLI command; this module only strings them
together in data-flow order. A failing source is reported, never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.classify.stage import Classifier, ClassifyCounts, classifier_from_config, classify_pending
from monitor.config import Config, ConfigError, SourceConfig
from monitor.digest.build import write_digest
from monitor.queue.items import QueueCounts, refresh_queue
from monitor.queue.replying import apply_pending_platform_replies
from monitor.shifts.stage import ShiftsCounts, estimate_and_attribute
from monitor.store import UpsertCounts, finish_crawl_run, open_db, start_crawl_run
from spiders.registry import SCRAPY_TYPES

log = logging.getLogger(__name__)


def select_sources(config: Config, names: list[str] | None = None) -> list[SourceConfig]:
    """The named sources (enabled or not), or every enabled source."""
    if names:
        return [config.source(name) for name in names]
    return [s for s in config.sources if s.enabled]


def _failed(message: str) -> dict[str, Any]:
    return {"new": 0, "updated": 0, "unchanged": 0, "errors": 1, "messages": [message], "status": "failed"}


def crawl_sources(config: Config, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Crawl sources now; return per-source counts ``{name: {new, updated, unchanged, errors, messages, status}}``."""
    sources = select_sources(config, names)
    results: dict[str, dict[str, Any]] = {}
    scrapy_sources = [s for s in sources if s.type in SCRAPY_TYPES]
    if scrapy_sources:
        from monitor.crawl import crawl_scrapy_sources

        try:
            results.update(crawl_scrapy_sources(config, scrapy_sources))
        except Exception as exc:  # a crawler crash must not stop the other sources
            log.exception("scrapy crawl failed")
            for source in scrapy_sources:
                results[source.name] = _failed(f"source {source.name!r}: crawler failed: {exc}")
    for source in sources:
        if source.type != "reddit":
            continue
        from spiders.reddit import run_reddit_source

        db = open_db(config.storage_target)
        try:
            results[source.name] = run_reddit_source(db, source)
        except ConfigError as exc:
            run_id = start_crawl_run(db, source.name)
            finish_crawl_run(db, run_id, UpsertCounts(), [str(exc)])
            results[source.name] = _failed(str(exc))
        except Exception as exc:
            log.exception("reddit source %s failed", source.name)
            run_id = start_crawl_run(db, source.name)
            finish_crawl_run(db, run_id, UpsertCounts(), [f"source {source.name!r}: {type(exc).__name__}: {exc}"])
            results[source.name] = _failed(f"source {source.name!r}: {type(exc).__name__}: {exc}")
        finally:
            db.close()
    return {s.name: results[s.name] for s in sources if s.name in results}


@dataclass
class CycleReport:
    crawl: dict[str, dict[str, Any]] = field(default_factory=dict)
    classified: ClassifyCounts | None = None
    queue: QueueCounts | None = None
    shifts: ShiftsCounts | None = None
    digest_path: Path | None = None


@dataclass
class ProcessCounts:
    classified: ClassifyCounts
    shifts: ShiftsCounts
    queue: QueueCounts


def process_new_mentions(db, config: Config, classifier: Classifier) -> ProcessCounts:
    """Classify → shifts → queue over what is new, in data-flow order (the queue's auto-assignment
    uses the location the shift stage infers).

    A stage that fails does not stop the ones after it (they work on what is stored: mentions
    classified in an earlier pass still get queued); its error is raised once all have run.
    """
    errors: list[Exception] = []

    def run(name: str, stage, empty):
        try:
            return stage()
        except Exception as exc:  # re-raised below, once the other stages ran
            log.exception("processing: the %s stage failed", name)
            errors.append(exc)
            return empty

    classified = run("classify", lambda: classify_pending(db, classifier), ClassifyCounts())
    shifts = run("shifts", lambda: estimate_and_attribute(db, config), ShiftsCounts())
    queue = run("queue", lambda: refresh_queue(db, config.queue), QueueCounts())
    # Owner replies a crawl saw before their review was queued (made on the platform directly) land now.
    run("platform replies", lambda: apply_pending_platform_replies(db), 0)
    if errors:
        raise errors[0]
    return ProcessCounts(classified, shifts, queue)


def default_digest_path(config: Config, day) -> Path:
    return config.resolve(config.digest.output_dir) / f"digest-{day.isoformat()}.html"


def run_cycle(config: Config, classifier: Classifier | None = None, names: list[str] | None = None) -> CycleReport:
    report = CycleReport()
    open_db(config.storage_target).close()  # create / migrate before the crawler subprocess writes
    report.crawl = crawl_sources(config, names)
    db = open_db(config.storage_target)
    try:
        processed = process_new_mentions(db, config, classifier or classifier_from_config(config))
        report.classified, report.shifts, report.queue = processed.classified, processed.shifts, processed.queue
        day = datetime.now(ZoneInfo(config.schedule.timezone)).date()  # the digest's days are local
        report.digest_path = write_digest(db, default_digest_path(config, day), day, config.digest.brand, config)
    finally:
        db.close()
    return report
