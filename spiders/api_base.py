"""Shared base for spiders that read a platform's JSON API (reviews, posts).

:class:`ApiSpider` gives a subclass the pieces every API source needs:

* ``self.source`` / ``self.options`` from the ``source`` argument, like ``SchemaOrgSpider``;
* :meth:`~ApiSpider.secret` — a credential from the environment; a missing variable becomes a
  crawl-run message naming the variable and the source, and the value is scrubbed from every message;
* :meth:`~ApiSpider.request` / :meth:`~ApiSpider.on_error` — requests whose failures (HTTP errors after
  retries, timeouts, refused connections) become crawl-run messages naming the source and URL;
* :meth:`~ApiSpider.load_json` — a response body as JSON, or a message when it is not JSON;
* incremental paging: :meth:`~ApiSpider.track_page` says when a newest-first listing has read
  ``overlap`` already-stored items and can stop; :meth:`~ApiSpider.end_stream` records whether the
  listing was read to its end, so a crawl that failed half-way is followed by one that reads deep again.

Module helpers :func:`utc_iso`, :func:`star_rating`, :func:`dig` and :func:`meta_of` are plain functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from monitor.config import SourceConfig
from spiders.source_spider import REDACTED, SourceSpider, describe, is_backfill, json_body  # noqa: F401

MAX_DETAIL_CHARS = 200
BACKFILL_KEY = "backfilled:"  # "1": the last crawl read the listing to its end without losing anything
CRAWLED_KEY = "crawled:"  # "1": some crawl did; until then every crawl is a first crawl (old items = backfill)


# ----------------------------------------------------------------- helpers


def meta_of(response: Response) -> dict[str, Any]:
    """The request meta of a response; empty for a saved response built in a test."""
    return response.meta if response.request is not None else {}


def dig(data: Any, *path: str | int) -> Any:
    """``data[path[0]][path[1]]...`` or None where any step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not -len(data) <= step < len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[step] if isinstance(step, int) else data.get(step)
    return data


def utc_iso(value: Any, assume: tzinfo = UTC) -> str | None:
    """An ISO 8601 / RFC 3339 time as UTC ISO 8601 to the second; a time without offset is read in ``assume``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        # RFC 3339 allows nanoseconds (Google sends 9 digits); fromisoformat reads at most 6.
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = head + tail[digits:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=assume)
        return moment.astimezone(UTC).replace(microsecond=0).isoformat()
    except (OverflowError, ValueError):
        return None  # year 9999 east of UTC, year 1 west of it: no usable time (the item is kept)


def star_rating(value: Any, best: float = 5.0) -> float | None:
    """A star rating (number or numeric string) on a 1..``best`` scale as a float on 1–5; None if unusable."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 1.0 <= number <= best:
        return None
    return round(1 + (number - 1) * 4 / (best - 1), 2) if best != 5.0 else number


def clean_text(value: Any) -> str | None:
    """Strip a text; None for non-strings and blanks (paragraph breaks are kept: reviews have them)."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def error_detail(body: bytes) -> str | None:
    """The message in an API's JSON error body (Google, Yelp, Trustpilot and common shapes), shortened."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    detail: Any = None
    error = dig(data, "error")
    if isinstance(error, dict):
        # Google: {"error": {"code": 404, "status": "NOT_FOUND", "message"}}; Yelp: {"error": {"code", "description"}}.
        label = error.get("status") or error.get("code")
        text = error.get("message") or error.get("description")
        detail = f"{label}: {text}" if isinstance(label, str) and text else text
    elif isinstance(error, str):
        detail = error
    # Trustpilot's gateway: {"fault": {"faultstring"}}; many APIs: {"message"}.
    detail = detail or dig(data, "fault", "faultstring") or dig(data, "message")
    if not isinstance(detail, str) or not detail.strip():
        return None
    return " ".join(detail.split())[:MAX_DETAIL_CHARS]


# ------------------------------------------------------------------ spider


class ApiSpider(SourceSpider):
    """Base class for one source read from a JSON API. Subclasses set ``name`` and implement ``start``."""

    name = "api"

    def __init__(self, source: SourceConfig | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self._seen: dict[str, int] = {}  # stream -> already-stored items in a row
        self._streams: dict[str, str] = {}  # stream -> "open" | "done" | "failed"
        self._before: dict[str, tuple[bool, bool]] = {}  # stream -> (backfilled, crawled) before this crawl

    # ----------------------------------------------------------- requests

    def request(
        self,
        url: str,
        callback: Any,
        *,
        stream: str | None = None,
        headers: dict[str, str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> scrapy.Request:
        """A GET whose failure is reported; ``stream`` names the listing it belongs to (for incremental paging)."""
        if stream is not None:
            self._streams.setdefault(stream, "open")
            self.open_stream(stream)
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.on_error,
            headers=headers,
            meta={**(meta or {}), "stream": stream},
        )

    def on_error(self, failure: Failure) -> None:
        request = failure.request
        if failure.check(HttpError):
            response = failure.value.response
            retries = request.meta.get("retry_times", 0)
            message = f"HTTP {response.status} from {request.url}" + (f" (after {retries} retries)" if retries else "")
            detail = error_detail(response.body)
            self.report(message + (f": {detail}" if detail else ""))
        else:
            self.report(f"could not fetch {request.url}: {failure.type.__name__}: {failure.getErrorMessage()}")
        if request.meta.get("stream"):
            self.end_stream(request.meta["stream"], ok=False)

    def load_json(self, response: Response) -> Any | None:
        """The body as JSON; None (and a message naming the URL) when it is not."""
        try:
            return json_body(response.body)
        except ValueError as exc:
            self.report(f"malformed JSON from {response.url}: {exc}")
        except RecursionError:
            self.report(f"malformed JSON from {response.url}: nested too deep to read")
        stream = meta_of(response).get("stream")
        if stream:
            self.end_stream(stream, ok=False)
        return None

    def page_failed(self, stream: str | None) -> None:
        for key in [stream] if stream else list(self._streams):
            self.end_stream(key, ok=False)

    def map_page(
        self, items: Iterable[Any], mapper: Any, response: Response, stream: str | None
    ) -> list[dict[str, Any]]:
        """:meth:`map_each`, and a listing that lost an item is not clean (no state moves past it)."""
        mentions, bad = self.map_each(items, mapper, response.url)
        if bad and stream:
            self.end_stream(stream, ok=False)
        return mentions

    # -------------------------------------------------------- incremental

    def open_stream(self, stream: str) -> None:
        """First sight of a listing in this crawl: remember its state, then mark it not backfilled.

        Marked before anything is fetched, so a crawl killed half-way is followed by one that reads
        deep again instead of stopping at the overlap of what the killed crawl stored.
        """
        if stream in self._before:
            return
        if self.db is None:
            self._before[stream] = (False, True)  # no store (a saved-response test): no history to judge by
            return
        from monitor.store import get_source_state, set_source_state

        before = get_source_state(self.db, self.source.name, BACKFILL_KEY + stream) == "1"
        crawled = before or get_source_state(self.db, self.source.name, CRAWLED_KEY + stream) == "1"
        self._before[stream] = (before, crawled)
        if before:
            set_source_state(self.db, self.source.name, BACKFILL_KEY + stream, "0")

    def backfilled(self, stream: str) -> bool:
        """Whether the previous crawl read this listing to its end (only then may overlap stop paging)."""
        self.open_stream(stream)
        return self._before[stream][0]

    def first_crawl(self, stream: str) -> bool:
        """No crawl has read this listing cleanly yet: what it finds may be history (docs/time-trust.md)."""
        self.open_stream(stream)
        return not self._before[stream][1]

    def fresh(self, mentions: Iterable[dict[str, Any]], stream: str | None = None) -> list[dict[str, Any]]:
        """Drop mentions already yielded in this crawl (a listing shifts while it is paged).

        With ``stream``, old items found by that listing's first crawl are marked ``backfill``.
        """
        first = self.first_crawl(stream) if stream else False
        out = []
        for mention in mentions:
            if mention["external_id"] not in self._yielded:
                self._yielded.add(mention["external_id"])
                if first and is_backfill(mention.get("posted_at"), first, self.started):
                    mention["backfill"] = True
                out.append(mention)
        return out

    def track_page(self, stream: str, external_ids: Iterable[str]) -> bool:
        """Count a newest-first page's already-stored items; True when paging this listing should stop.

        Stops once ``overlap`` stored items in a row have been re-read (at least one), so an edit
        to a recent item is still seen; never before a crawl has read the listing to its end once.
        """
        ids = [str(i) for i in external_ids]
        if self.db is None or not ids:
            return False
        from monitor.store import known_external_ids

        known = known_external_ids(self.db, self.source.name, ids)
        streak = self._seen.get(stream, 0)
        for external_id in ids:
            # In a row, newest first: a new item between stored ones (an edit moved up) restarts the count.
            streak = streak + 1 if external_id in known else 0
        self._seen[stream] = streak
        return streak > 0 and streak >= int(self.options.get("overlap", 0)) and self.backfilled(stream)

    def end_stream(self, stream: str, ok: bool = True) -> None:
        """A listing is finished: read to its end / stopped by overlap (ok), or cut short by an error."""
        if self._streams.get(stream) != "failed":
            self._streams[stream] = "done" if ok else "failed"

    def closed(self, reason: str) -> None:
        # Runs after the pipeline has flushed, so "backfilled" is only set once the items are stored.
        db = self._db
        if db is None:
            return
        from monitor.store import set_source_state

        try:
            for stream, state in self._streams.items():
                # A listing still "open" was cut short (shutdown, a crash in a callback); one whose item
                # could not be stored is not backfilled either.
                clean = state == "done" and reason == "finished" and not self.storage_failed
                set_source_state(db, self.source.name, BACKFILL_KEY + stream, "1" if clean else "0")
                if clean:
                    set_source_state(db, self.source.name, CRAWLED_KEY + stream, "1")
        finally:
            db.conn.close()
            self._db = None
