"""Store pipeline: scraped mentions go to SQLite in batches, with one crawl run per source.

Every crawler in a :mod:`spiders.run` process crawls one source and gets its own
pipeline instance. Problems from anywhere in the crawl (HTTP errors after
retries, pages without reviews, exceptions in callbacks or in this pipeline)
arrive as signals and end up as messages in the source's ``crawl_runs`` row.
Batches are written as they fill, so a failure late in a crawl never loses
what was already stored.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from twisted.python.failure import Failure

from monitor.config import SourceConfig
from monitor.crawl import claim_crawl_run, close_interrupted_runs
from monitor.keywords import passes_keyword_rules
from monitor.store import UpsertCounts, finish_crawl_run, open_db, start_crawl_run
from spiders.store_writer import WriterProcess, store_batch

logger = logging.getLogger(__name__)

# Sent by spiders with ``message=...`` for a problem that is not an exception
# (a page without reviews, an unparseable JSON-LD block, an HTTP error).
crawl_problem = object()

MAX_MESSAGE_CHARS = 500


def source_name_of(spider: Any) -> str:
    """The config source a spider crawls (spiders carry it; fall back to the spider name)."""
    source = getattr(spider, "source", None)
    return getattr(source, "name", None) or spider.name


class StorePipeline:
    """Buffer items and write them with :func:`monitor.store.record_mentions`."""

    def __init__(self, crawler: Crawler, db_path: str, batch_size: int = 200) -> None:
        self.crawler = crawler
        self.db_path = db_path
        self.batch_size = batch_size
        self.db: Any = None
        self.run_id: int | None = None
        self.source = ""
        self.buffer: list[dict[str, Any]] = []
        self.counts = UpsertCounts()
        self.errors: list[str] = []
        self._finished = False
        self.filtered = 0  # dropped by the source's exclude / require rules
        self.writer: WriterProcess | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        db_path = crawler.settings.get("MONITOR_DB_PATH")
        if not db_path:
            raise RuntimeError("MONITOR_DB_PATH is not set; run crawls through spiders.run or monitor.crawl")
        pipeline = cls(crawler, str(db_path), crawler.settings.getint("MONITOR_BATCH_SIZE", 200))
        crawler.signals.connect(pipeline.spider_error, signal=signals.spider_error)
        crawler.signals.connect(pipeline.item_error, signal=signals.item_error)
        crawler.signals.connect(pipeline.problem, signal=crawl_problem)
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    # ------------------------------------------------------------ lifecycle

    def open_spider(self) -> None:
        self.source = source_name_of(self.crawler.spider)
        self.db = open_db(self.db_path)
        close_interrupted_runs(self.db)  # a crawl started without monitor.crawl (spiders.run by hand) too
        self.run_id = start_crawl_run(self.db, self.source)
        claim_crawl_run(self.db, self.run_id)

    def process_item(self, item: Any) -> Any:
        mention = dict(item)
        if not mention.get("external_id"):
            raise DropItem(f"source {self.source!r}: item without external_id from {mention.get('url')}")
        if not mention.get("posted_at"):
            mention["backfill"] = True  # no date from the platform: no trustworthy time (docs/time-trust.md)
        source = getattr(self.crawler.spider, "source", None)
        if isinstance(source, SourceConfig) and not passes_keyword_rules(source, mention):
            self.filtered += 1
            return item
        self.buffer.append(mention)
        if len(self.buffer) >= self.batch_size:
            self.flush()
        return item

    def close_spider(self) -> None:
        # Drain the writer before the spider's own close handlers record watermarks.
        self.flush()
        self.drain()

    def spider_closed(self, spider: Any, reason: str) -> None:
        # Finished here rather than in close_spider: only the signal knows why the spider closed.
        if reason != "finished":
            self.add_error(f"crawl ended early ({reason})")
        self.finish()

    # --------------------------------------------------------------- errors

    def add_error(self, message: str, log: bool = True) -> None:
        message = " ".join(str(message).split())[:MAX_MESSAGE_CHARS]
        if log:
            logger.warning("source %r: %s", self.source, message)
        self.errors.append(message)

    def problem(self, message: str, spider: Any = None) -> None:
        self.add_error(message, log=False)  # the spider has logged it already

    def spider_error(self, failure: Failure, response: Any, spider: Any) -> None:
        url = getattr(response, "url", "?")
        self.add_error(f"error while parsing {url}: {failure.type.__name__}: {failure.getErrorMessage()}")

    def item_error(self, item: Any, response: Any, spider: Any, failure: Failure) -> None:
        url = getattr(response, "url", "?")
        self.add_error(f"could not store an item from {url}: {failure.getErrorMessage()}")
        self.lost()

    def lost(self) -> None:
        """An item was read but not stored: the spider must not move watermarks or completion flags."""
        spider = getattr(self.crawler, "spider", None)
        if spider is not None:
            spider.storage_failed = True

    # -------------------------------------------------------------- storage

    def flush(self) -> None:
        """Hand the buffered items over for storing.

        Full batches go to a writer process (:mod:`spiders.store_writer`), started
        with the first one, so storing runs on another core while this process
        downloads and parses; it keeps the batches in order. A source that never
        fills a batch (most review APIs: 3-5 reviews a business) is stored right
        here when the spider closes, without starting a process.
        """
        if not self.buffer or self.db is None:
            return
        batch, self.buffer = self.buffer, []
        if self.writer is None and len(batch) >= self.batch_size:
            try:
                self.writer = WriterProcess(self.db_path, self.source)
            except OSError as exc:
                logger.warning(
                    "source %r: no store writer process (%s); storing in the crawl process", self.source, exc
                )
        if self.writer is not None:
            self.writer.submit(batch)
        else:
            self.absorb(*store_batch(self.db, self.source, batch))

    def absorb(self, counts: UpsertCounts, errors: list[str], lost: bool | None = None) -> None:
        """Fold in a batch's counts and errors; ``lost`` (default: any error) means an item was not stored."""
        self.counts.add(counts)
        for message in errors:
            self.add_error(message)
        if errors if lost is None else lost:
            self.lost()

    def drain(self) -> None:
        """Wait until every handed-off batch is stored, and fold in the writer's counts and errors."""
        writer, self.writer = self.writer, None
        if writer is not None:
            counts, errors = writer.close(self.db)
            self.absorb(counts, errors, writer.lost)

    def finish(self) -> None:
        if self._finished or self.db is None or self.run_id is None:
            return
        self._finished = True
        self.flush()
        self.drain()
        try:
            finish_crawl_run(self.db, self.run_id, self.counts, self.errors)
        finally:
            self.db.conn.close()
        logger.info(
            "source %r: %d new, %d updated, %d unchanged, %d errors",
            self.source,
            self.counts.new,
            self.counts.updated,
            self.counts.unchanged,
            len(self.errors),
        )
