"""Downloader middlewares shared by every crawler."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.utils.defer import deferred_to_future, maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import task
from twisted.internet.defer import Deferred

log = logging.getLogger(__name__)
RATE_LIMIT_CODES = {429, 503}


def _http_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return (value.decode("latin-1") if isinstance(value, bytes) else value).strip() or None


def parse_retry_after(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    text = _text(value)
    if text is None:
        return None
    if text.isdigit():
        return float(text)
    when = _http_date(text)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_rate_limit_reset(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an ``X-RateLimit-Reset`` header; None if absent or unreadable.

    Mastodon sends the time its window resets as ISO 8601 (``2026-11-23T10:05:00.000Z``);
    GitHub-style APIs send Unix seconds. A small number (below 10^9, i.e. before 2001
    as a timestamp) is read as seconds to wait, as a few APIs send.
    """
    text = _text(value)
    if text is None:
        return None
    now = now or datetime.now(UTC)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            return None
        if number < 1e9:
            return number
        return max(0.0, number - now.timestamp())
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def rate_limit_wait(headers: Any) -> tuple[float, str] | None:
    """How long a 429/503 asks us to wait, and the header that said so; None when no header does.

    ``Retry-After`` wins when both are sent. A reset time is read against the
    response's ``Date`` when it has one: it comes from the same clock, so a
    skewed local clock neither shortens nor stretches the wait.
    """
    wait = parse_retry_after(headers.get(b"Retry-After"))
    if wait is not None:
        return wait, "Retry-After"
    server_now = _http_date(_text(headers.get(b"Date")) or "")
    wait = parse_rate_limit_reset(headers.get(b"X-RateLimit-Reset"), server_now)
    if wait is not None:
        return wait, "X-RateLimit-Reset"
    return None


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retries, plus: a 429/503 that says how long to wait is waited out.

    Stock Scrapy retries a 429 at once, which a rate-limited API answers with
    another 429. Here the source's whole crawl pauses (one crawler per source,
    so other sources keep going) for the requested time, then the request is
    retried. The time comes from ``Retry-After`` or, as Mastodon sends it,
    ``X-RateLimit-Reset``. A wait longer than ``MONITOR_MAX_RETRY_AFTER`` gives
    up on that request; the spider's errback records it against the source.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.max_wait = settings.getfloat("MONITOR_MAX_RETRY_AFTER", 300.0)

    async def process_response(self, request, response, spider=None):  # type: ignore[override]
        asked = rate_limit_wait(response.headers) if response.status in RATE_LIMIT_CODES else None
        if asked is None or request.meta.get("dont_retry", False):
            return super().process_response(request, response)
        wait, header = asked
        if wait > self.max_wait:
            log.warning("%s asked to wait %.0fs (over MONITOR_MAX_RETRY_AFTER); giving up for now", request.url, wait)
            return response
        retry = self._retry(request, f"{response.status} with {header} {wait:.0f}s")
        if retry is None:
            return response
        log.info("rate limited on %s: waiting %.1fs as %s asks", request.url, wait, header)
        # Imported here: importing the reactor at module level would install the wrong one.
        from twisted.internet import reactor

        engine = self.crawler.engine
        engine.pause()
        try:
            await deferred_to_future(task.deferLater(reactor, wait, lambda: None))
        finally:
            engine.unpause()
        return retry


# Header names that carry credentials: the ones our spiders send (Authorization: Bearer for Yelp, Mastodon,
# Bluesky; X-Goog-Api-Key for Google Places; apikey for Trustpilot), and any name that looks like one.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-goog-api-key", "apikey"})
_CREDENTIAL_MARKERS = ("auth", "key", "token", "secret", "password", "session", "cookie")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_credential_header(name: bytes | str) -> bool:
    """Whether a request header named ``name`` may carry a secret (see ``CREDENTIAL_HEADERS``)."""
    text = (name.decode("latin-1") if isinstance(name, bytes) else name).strip().lower()
    return text in CREDENTIAL_HEADERS or any(marker in text for marker in _CREDENTIAL_MARKERS)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in from the scheme when left out."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a malformed port is no known origin
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(parts.scheme.lower())


class CredentialRedirectMiddleware:
    """Drops credential headers from a request that a redirect sent to another origin.

    Scrapy (2.19) removes ``Authorization`` and ``Cookie`` on a cross-origin redirect but keeps every
    other header, so an API key sent as ``X-Goog-Api-Key`` or ``apikey`` would go to whatever host the
    API (or a compromised ``base_url``) redirects to. A redirected request carries the URLs it came from
    in ``meta["redirect_urls"]``; when the last one's origin (scheme, host, port) differs from the
    request's, the credential headers go. They stay gone for every later hop, back home included.
    """

    def process_request(self, request: Any, spider: Any = None) -> None:
        came_from = request.meta.get("redirect_urls")
        if not came_from or origin(came_from[-1]) == origin(request.url):
            return None
        dropped = [name for name in list(request.headers.keys()) if is_credential_header(name)]
        for name in dropped:
            del request.headers[name]
        if dropped:
            log.info("redirected to another origin (%s): credential headers dropped", origin(request.url)[1])
        return None


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
