"""Shared machinery of the social/news API spiders (hackernews, mastodon, bluesky, feed).

Each spider reads one or more *streams* (a search query, a hashtag, a feed URL)
newest first. Incremental crawling is the same for all of them:

* a per-stream watermark (the newest ``posted_at`` seen) kept in the store's
  ``source_state`` table; APIs that can filter by time get ``watermark - edit
  window`` as their lower bound, and older items count as already seen;
* :func:`monitor.store.known_external_ids` tells which items on a page are
  stored already; once ``overlap`` already-seen items in a row have been read,
  paging stops (the overlap re-reads recent items, so edits become revisions),
  but only if the stream's previous crawl was clean: after a failed page the
  next crawl reads as deep as ``max_pages`` again;
* a stream is marked incomplete (``complete:<stream>`` = 0) before anything is
  fetched, so a crawl killed half-way is followed by one that reads deep again
  rather than stopping at the overlap of what the killed crawl stored;
* state is written only when the spider closes normally, after the store
  pipeline flushed its last batch, and only for streams that had no errors (an
  HTTP error, an unreadable page, an item that could not be parsed or stored), so
  a crash or a failed page never moves a watermark past items that were not stored;
* on a stream's first crawl (no watermark yet) items posted more than 48 hours
  earlier are marked ``backfill`` (docs/time-trust.md).

Problems go to the crawl run through :data:`spiders.pipelines.crawl_problem`,
like :class:`spiders.schema_org.SchemaOrgSpider`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure
from w3lib.html import remove_tags

from monitor.brands import brand_for
from monitor.config import SourceConfig
from monitor.store import get_source_state, known_external_ids, set_source_state
from spiders.api_base import REDACTED, meta_of, utc_iso  # noqa: F401 - re-exported for the spiders
from spiders.source_spider import SourceSpider, is_backfill, json_body

# HN separates paragraphs with a bare <p>; Mastodon wraps them in <p>…</p> and breaks lines with <br />.
ERROR_TEXT_CHARS = 200
_BLOCK_BREAK = re.compile(r"(?i)<\s*(?:br\s*/?|/?p(?:\s[^>]*)?|/div|/li|/blockquote|/h[1-6])\s*>")


def html_to_text(html: str | None) -> str | None:
    """Plain text from an HTML fragment; paragraphs and line breaks survive as line breaks."""
    if not html:
        return None
    text = _BLOCK_BREAK.sub("\n", html)
    if "<" in text:
        text = remove_tags(text)
    if "&" in text:
        # The stdlib's HTML5 rules (as browsers decode), and ~2.5x faster than w3lib's replace_entities
        # on comment-heavy pages; an unknown "&name;" stays as written instead of vanishing.
        text = unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    text = "\n".join(line for line in lines if line)
    return text or None


def plain_text(value: object) -> str | None:
    """A plain-text field (HN titles, Mastodon content warnings) with whitespace tidied; never read as HTML."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def api_error_text(body: bytes) -> str:
    """The reason an API gave in its JSON error body, shortened; '' if none.

    Algolia sends ``{"message", "status"}``, Mastodon ``{"error"}``, XRPC (Bluesky)
    ``{"error": "Name", "message": "…"}``.
    """
    try:
        data = json_body(body)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [data[key].strip() for key in ("error", "message") if isinstance(data.get(key), str) and data[key].strip()]
    return " ".join(": ".join(dict.fromkeys(parts)).split())[:ERROR_TEXT_CHARS]


@dataclass
class Stream:
    """One query / tag / feed of a source, read newest first during one crawl."""

    key: str  # e.g. "search:acme coffee"; names the stream in state keys
    label: str  # for messages, e.g. "query 'acme coffee'"
    brand: str = ""  # the brand of the stream's query or tag (the source's `brands` table, else its brand)
    watermark: str | None = None  # newest posted_at stored by the last clean crawl
    complete: bool = False  # the last crawl of this stream ended without errors
    pages: int = 0
    known_streak: int = 0  # already-seen items in a row, newest first
    newest: str | None = None
    failed: bool = False


class IncrementalSpider(SourceSpider):
    """Base class: source handling, problem reports, error callbacks, stored state and the stop rule."""

    # How far before the watermark items are read again, to catch edits and late-indexed posts.
    edit_window = timedelta(hours=2)

    def __init__(self, source: SourceConfig | None = None, db: Any = None, **kwargs: Any) -> None:
        super().__init__(source, db, **kwargs)
        if source.type != self.name:
            raise TypeError(f"{type(self).__name__} needs source=SourceConfig(...) (one {self.name} source)")
        self.streams: dict[str, Stream] = {}
        self.pending_state: dict[str, str] = {}  # written on a clean close, e.g. a feed's ETag
        self.horizon = (self.started + timedelta(days=1)).replace(microsecond=0).isoformat()  # later: never a watermark

    def state(self, key: str) -> str | None:
        return get_source_state(self.db, self.source.name, key) if self.db is not None else None

    def known(self, external_ids: list[str]) -> set[str]:
        return known_external_ids(self.db, self.source.name, external_ids) if self.db is not None else set()

    def closed(self, reason: str) -> None:
        """Save watermarks and pending state; Scrapy calls this after the store pipeline's last flush."""
        db = self._db
        if db is None:
            return
        try:
            for stream in self.streams.values():
                clean = reason == "finished" and not stream.failed and not self.storage_failed
                set_source_state(db, self.source.name, f"complete:{stream.key}", "1" if clean else "0")
                if clean and stream.newest and (not stream.watermark or stream.newest > stream.watermark):
                    set_source_state(db, self.source.name, f"newest:{stream.key}", stream.newest)
            if reason == "finished":
                for key, value in self.pending_state.items():
                    set_source_state(db, self.source.name, key, value)
        finally:
            if getattr(self, "crawler", None) is not None:  # a test's own database stays open
                db.conn.close()
                self._db = None

    # ------------------------------------------------------------- streams

    def stream(self, key: str, label: str = "") -> Stream:
        """The stream for ``key``, with its watermark loaded from the store."""
        if key not in self.streams:
            self.streams[key] = Stream(
                key,
                label or key,
                brand=brand_for(self.source, key.partition(":")[2]),
                watermark=self.state(f"newest:{key}"),
                complete=self.state(f"complete:{key}") == "1",
            )
            if self.streams[key].complete and self.db is not None:
                # Until this crawl closes cleanly, the stream is not complete: a kill now must not let the
                # next crawl stop at the overlap of what this one stored (the items below it would be lost).
                set_source_state(self.db, self.source.name, f"complete:{key}", "0")
        return self.streams[key]

    def since(self, stream: Stream) -> datetime | None:
        """Lower time bound for this crawl: the watermark minus the edit window (None on a first crawl)."""
        if not stream.watermark:
            return None
        try:
            return datetime.fromisoformat(stream.watermark) - self.edit_window
        except (OverflowError, ValueError):
            return None  # a watermark at the calendar's edge filters nothing

    def take(self, stream: Stream, mentions: list[dict[str, Any]], url: str) -> tuple[list[dict[str, Any]], bool]:
        """Account for one newest-first page: the mentions to yield, and whether to read the next page.

        Paging stops after ``max_pages``, or once ``overlap`` already-seen items
        in a row (at least one) have been read, provided the stream's previous
        crawl was clean (after a failed one, a crawl reads deep again). An item
        counts as seen when it is stored already or older than :meth:`since`.
        """
        stream.pages += 1
        if not mentions and stream.pages == 1 and not stream.watermark:
            # Empty on a first crawl usually means a wrong query or feed; later it just means nothing new.
            self.report(f"no results for {stream.label} at {url}")
        known = self.known([m["external_id"] for m in mentions])
        since = self.since(stream)
        fresh: list[dict[str, Any]] = []
        rebrand = stream.brand != self.source.brand  # a competitor's query or tag on this source
        # Undated items are marked by the store pipeline; here only old ones found by a first crawl.
        first = not stream.watermark and self.db is not None
        for mention in mentions:
            if rebrand:
                mention["brand"] = stream.brand
            if first and is_backfill(mention.get("posted_at"), first, self.started):
                mention["backfill"] = True
            posted = mention.get("posted_at")
            # A post dated in the future (a skewed or hostile clock) must not become the watermark: the
            # API's time filter would then hide every real post until that date.
            if posted and posted <= self.horizon and (stream.newest is None or posted > stream.newest):
                stream.newest = posted
            old = bool(since and posted and datetime.fromisoformat(posted) < since)
            stream.known_streak = stream.known_streak + 1 if mention["external_id"] in known or old else 0
            # The same item can turn up in two queries, or twice while a listing shifts under paging
            # (the first query to find it gives it its brand).
            if mention["external_id"] not in self._yielded:
                self._yielded.add(mention["external_id"])
                fresh.append(mention)
        more = stream.pages < int(self.options.get("max_pages", 5))
        overlap = int(self.options.get("overlap", 0))
        if stream.complete and stream.known_streak and stream.known_streak >= overlap:
            more = False
        return fresh, more

    # ------------------------------------------------------------ problems

    def fail(self, stream: Stream | None, message: str) -> None:
        if stream is not None:
            stream.failed = True
        self.report(message)

    def page_failed(self, stream: str | None) -> None:
        for key in [stream] if stream in self.streams else list(self.streams):
            self.streams[key].failed = True

    def map_page(self, items: list[Any], mapper: Any, response: Response, stream: Stream) -> list[dict[str, Any]]:
        """Map each item on its own (:meth:`map_each`); a stream that lost an item is not clean."""
        mentions, bad = self.map_each(items, mapper, response.url)
        if bad:
            stream.failed = True
        return mentions

    def read_json(self, response: Response, stream: Stream | None) -> Any:
        """The response's JSON, or None after reporting why it could not be read."""
        try:
            return json_body(response.body)
        except ValueError as exc:
            self.fail(stream, f"malformed JSON from {response.url}: {exc}")
        except RecursionError:
            self.fail(stream, f"malformed JSON from {response.url}: nested too deep to read")
        return None

    def error_hint(self, status: int, request: scrapy.Request) -> str:
        """What the person running the crawl should do about ``status`` (spiders override)."""
        return ""

    def on_error(self, failure: Failure) -> None:
        """Errback: an HTTP error after retries, or a network failure, becomes a crawl-run message."""
        request = failure.request
        stream = self.streams.get(request.meta.get("stream", ""))
        if failure.check(HttpError):
            response = failure.value.response
            retries = request.meta.get("retry_times", 0)
            message = f"HTTP {response.status} from {request.url}" + (f" (after {retries} retries)" if retries else "")
            detail = api_error_text(response.body)
            hint = self.error_hint(response.status, request)
            self.fail(stream, message + (f": {detail}" if detail else "") + (f"; {hint}" if hint else ""))
        elif "robots.txt" in str(failure.value):
            self.fail(stream, f"{request.url} is disallowed by robots.txt; not fetched")
        else:
            self.fail(stream, f"could not fetch {request.url}: {failure.type.__name__}: {failure.getErrorMessage()}")
