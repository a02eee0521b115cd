"""Hacker News stories and comments through the Algolia search API (``search_by_date``).

One stream per search query, newest first, 100 hits a page. Incremental: the
request carries ``numericFilters=created_at_i>T`` with T the last clean crawl's
newest item minus HN's two-hour edit window, and paging stops at the overlap
rule of :class:`spiders.incremental.IncrementalSpider`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from monitor.config import SourceConfig
from spiders.incremental import IncrementalSpider, Stream, html_to_text, meta_of, plain_text, utc_iso

HITS_PER_PAGE = 100
ITEM_URL = "https://news.ycombinator.com/item?id={}"


def _posted_at(hit: dict[str, Any]) -> str | None:
    seconds = hit.get("created_at_i")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        try:
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass  # a time no calendar holds (1e30, year 10001): try the text form
    return utc_iso(hit.get("created_at"))


def _count(value: Any, default: int) -> int:
    """A page number or count from the response; ``default`` when it is not a whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def hit_to_mention(hit: dict[str, Any], source: SourceConfig | None = None) -> dict[str, Any] | None:
    """Map one Algolia hit onto the stored mention shape (None for a hit without an id)."""
    object_id = hit.get("objectID")
    if not object_id:
        return None
    tags = hit.get("_tags") or []
    is_comment = "comment" in tags or (hit.get("comment_text") is not None and not hit.get("title"))
    parent = hit.get("parent_id")
    return {
        "external_id": f"hn:{object_id}",
        "url": ITEM_URL.format(object_id),
        "kind": "comment" if is_comment else "post",
        "author": hit.get("author"),
        "author_reach": None,  # karma is not in search hits; one user request per author is not worth it
        "title": None if is_comment else plain_text(hit.get("title")),  # titles are plain text, not HTML
        "text": html_to_text(hit.get("comment_text") if is_comment else hit.get("story_text")),
        "rating": None,
        "lang": None,
        "posted_at": _posted_at(hit),
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": f"hn:{parent}" if is_comment and parent else None,
        "raw": hit,
    }


class HackerNewsSpider(IncrementalSpider):
    """Crawl one ``hackernews`` source: every search query, newest first."""

    name = "hackernews"
    edit_window = timedelta(hours=2)  # HN lets authors edit for two hours

    def search_url(self, stream: Stream, page: int) -> str:
        params: dict[str, Any] = {
            "query": stream.key.removeprefix("search:"),
            "tags": "(story,comment)",
            "hitsPerPage": HITS_PER_PAGE,
            "page": page,
        }
        since = self.since(stream)
        if since is not None:
            params["numericFilters"] = f"created_at_i>{int(since.timestamp())}"
        return f"{self.options['base_url']}/api/v1/search_by_date?{urlencode(params)}"

    def request(self, stream: Stream, page: int) -> scrapy.Request:
        return scrapy.Request(
            self.search_url(stream, page),
            callback=self.parse,
            errback=self.on_error,
            meta={"stream": stream.key, "page": page},
        )

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for query in self.options["search"]:
            yield self.request(self.stream(f"search:{query}", f"query {query!r}"), 0)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """Mentions for every hit on the page, then the next page's request when paging goes on."""
        meta = meta_of(response)
        stream = self.stream(meta.get("stream", "search:?"), "query")
        data = self.read_json(response, stream)
        if data is None:
            return
        hits = data.get("hits") if isinstance(data, dict) else None
        if not isinstance(hits, list):
            self.fail(stream, f"unexpected response from {response.url}: no 'hits' list")
            return
        items = [h for h in hits if isinstance(h, dict)]
        mentions = self.map_page(items, lambda h: hit_to_mention(h, self.source), response, stream)
        without_id = sum(1 for h in items if not h.get("objectID"))
        if without_id:
            self.report(f"skipped {without_id} hits without objectID on {response.url}")
        fresh, more = self.take(stream, mentions, response.url)
        page = _count(data.get("page"), _count(meta.get("page"), 0))
        if more and hits and page + 1 < _count(data.get("nbPages"), 0):
            # Asked for before the items go out, so the download overlaps storing this page.
            yield self.request(stream, page + 1)
        yield from fresh
