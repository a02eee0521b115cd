"""Downloader middlewares shared by every crawler."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.utils.defer import deferred_to_future, maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import task
from twisted.internet.defer import Deferred

log = logging.getLogger(__name__)
RATE_LIMIT_CODES = {429, 503}


def parse_retry_after(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retries, plus: a 429/503 with Retry-After waits as long as the server asked.

    Stock Scrapy retries a 429 at once, which a rate-limited API answers with
    another 429. Here the source's whole crawl pauses (one crawler per source,
    so other sources keep going) for the requested time, then the request is
    retried. A wait longer than ``MONITOR_MAX_RETRY_AFTER`` gives up on that
    request; the spider's errback records it against the source.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.max_wait = settings.getfloat("MONITOR_MAX_RETRY_AFTER", 300.0)

    async def process_response(self, request, response, spider=None):  # type: ignore[override]
        wait = parse_retry_after(response.headers.get(b"Retry-After"))
        if response.status not in RATE_LIMIT_CODES or wait is None or request.meta.get("dont_retry", False):
            return super().process_response(request, response)
        if wait > self.max_wait:
            log.warning("%s asked to wait %.0fs (over MONITOR_MAX_RETRY_AFTER); giving up for now", request.url, wait)
            return response
        retry = self._retry(request, f"{response.status} with Retry-After {wait:.0f}s")
        if retry is None:
            return response
        log.info("rate limited on %s: waiting %.1fs as Retry-After asks", request.url, wait)
        # Imported here: importing the reactor at module level would install the wrong one.
        from twisted.internet import reactor

        engine = self.crawler.engine
        engine.pause()
        try:
            await deferred_to_future(task.deferLater(reactor, wait, lambda: None))
        finally:
            engine.unpause()
        return retry


class SharedRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt check, safe for many requests waiting on one robots.txt download.

    In Scrapy 2.19 every waiter awaits the same Deferred; the first one's
    callback consumes the parser, so from the third concurrent request on the
    check silently passes (tests/test_social_feed.py shows it). Each waiter
    here gets its own Deferred relayed from the shared one.
    """

    async def robot_parser(self, request):  # type: ignore[override]
        pending = self._parsers.get(urlparse_cached(request).netloc)
        if isinstance(pending, Deferred):
            mine: Deferred = Deferred()

            def relay(result: Any) -> Any:
                mine.callback(result)
                return result

            pending.addCallback(relay)
            return await maybe_deferred_to_future(mine)
        return await super().robot_parser(request)
