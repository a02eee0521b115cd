"""The base every API spider shares: one configured source, its secrets, its problems, the store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from twisted.python.failure import Failure

from monitor.config import ConfigError, Location, SourceConfig, secret_from_env
from monitor.store import open_db
from spiders.backfill import describe, is_backfill  # noqa: F401 - re-exported for the spiders
from spiders.pipelines import crawl_problem

REDACTED = "[redacted]"


def json_body(body: bytes) -> Any:
    """A response body as JSON; an invalid UTF-8 byte becomes U+FFFD instead of costing the page.

    Raises ValueError for a body that is not JSON and RecursionError for one nested too deep.
    """
    encoding = json.detect_encoding(body)
    return json.loads(body.decode(encoding, "replace"))


class SourceSpider(scrapy.Spider):
    """A spider for one ``[[sources]]`` table: reports problems to the crawl run and never leaks a secret."""

    # Official APIs are governed by their terms and keys, not robots.txt, and fetching robots.txt
    # from an API host costs a request of the quota for nothing (page crawlers turn it back on).
    custom_settings: ClassVar[dict[str, Any]] = {"ROBOTSTXT_OBEY": False}

    def __init__(
        self,
        source: SourceConfig | None = None,
        db: Any = None,
        locations: Sequence[Location] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(source, SourceConfig):
            raise TypeError(f"{type(self).__name__} needs source=SourceConfig(...) (one {self.name} source)")
        self.source = source
        self.locations = list(locations)  # the config's [[locations]], for defaults such as a time zone
        self.problems: list[str] = []
        self._secrets: list[str] = []
        self._yielded: set[str] = set()
        self._db = db  # tests pass an open database; crawls open MONITOR_DB_PATH on first use
        self.started = datetime.now(UTC)
        self.storage_failed = False  # set by the store pipeline when an item could not be stored

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.callback_failed, signal=signals.spider_error)
        return spider

    def callback_failed(self, failure: Failure, response: Any, spider: Any) -> None:
        """An exception escaped a callback: the rest of that page is lost, so its stream is not clean.

        The store pipeline records the message; this only keeps the stream's watermark where it was.
        """
        if spider is self:
            meta = response.meta if getattr(response, "request", None) is not None else {}
            self.page_failed(meta.get("stream"))

    def page_failed(self, stream: str | None) -> None:
        """Mark ``stream`` (every stream when None) as cut short; spiders with streams override this."""

    def map_each(
        self, items: Iterable[Any], mapper: Callable[[Any], dict[str, Any] | None], url: str
    ) -> tuple[list[dict[str, Any]], int]:
        """Map each raw item of a page; one that raises costs only itself (reported, counted as bad).

        Returns the mentions (None results dropped) and the number of items that raised.
        """
        mentions: list[dict[str, Any]] = []
        bad = 0
        for item in items:
            try:
                mention = mapper(item)
            except Exception as exc:  # noqa: BLE001 - RecursionError, TypeError…: hostile payloads
                bad += 1
                self.report(f"skipped an item on {url}: {describe(exc)}")
                continue
            if mention:
                mentions.append(mention)
        return mentions, bad

    @property
    def options(self) -> dict[str, Any]:
        return self.source.options

    @property
    def db(self) -> Any:
        """The store, opened on first use; None outside a crawl (saved-response tests)."""
        if self._db is None:
            crawler = getattr(self, "crawler", None)
            path = crawler.settings.get("MONITOR_DB_PATH") if crawler is not None else None
            if path:
                self._db = open_db(path)
        return self._db

    @db.setter
    def db(self, value: Any) -> None:
        self._db = value

    def secret(self, option: str, required: bool = True) -> str | None:
        """The credential named by ``options[option]``; None (with a message if required) when unset."""
        try:
            value = secret_from_env(self.source, option)
        except ConfigError as exc:
            if required:
                self.report(str(exc))
            return None
        self._secrets.append(value)
        return value

    def report(self, message: str) -> None:
        """Log a problem naming the source and hand it to the pipeline as a crawl-run message."""
        for secret in self._secrets:  # an API may echo what it was sent
            message = message.replace(secret, REDACTED)
        self.logger.warning("source %r: %s", self.source.name, message)
        self.problems.append(message)
        crawler = getattr(self, "crawler", None)
        if crawler is not None:
            crawler.signals.send_catch_log(signal=crawl_problem, message=message, spider=self)
