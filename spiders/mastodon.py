"""Mastodon: public hashtag timelines and full-text status search on one instance.

Tag timelines (``/api/v1/timelines/tag/{tag}``) page through the ``Link: <…>;
rel="next"`` header; search (``/api/v2/search?type=statuses``) pages with
``max_id``. Both are newest first, 40 statuses a page. Mastodon has no time
filter, so incremental crawls rely on the overlap rule of
:class:`spiders.incremental.IncrementalSpider`; an edited status (``edited_at``,
new ``content``) re-read inside the overlap becomes a revision in the store.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import scrapy
from scrapy.http import Response

from monitor.config import SourceConfig
from spiders.incremental import IncrementalSpider, Stream, html_to_text, meta_of, plain_text, utc_iso

PAGE_SIZE = 40  # the API's maximum
_LINK = re.compile(r"<([^>]+)>\s*;\s*([^,]*)")


def next_link(header: bytes | str | None) -> str | None:
    """The ``rel="next"`` URL of an RFC 8288 ``Link`` header, or None."""
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    for url, params in _LINK.findall(text):
        if re.search(r'rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?', params):
            return url.strip()
    return None


def status_to_mention(status: dict[str, Any], source: SourceConfig | None = None) -> dict[str, Any] | None:
    """Map one Mastodon status onto the stored mention shape (None for boosts and id-less entries)."""
    if not status.get("id") or status.get("reblog"):
        return None  # a boost repeats someone else's post; the original turns up on its own
    account = status.get("account") or {}
    reply_to = status.get("in_reply_to_id")
    followers = account.get("followers_count")
    return {
        "external_id": str(status["id"]),
        "url": status.get("url") or status.get("uri"),
        "kind": "comment" if reply_to else "post",
        "author": account.get("acct") or account.get("username"),
        "author_reach": followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
        # A content warning is the closest thing a status has to a subject line.
        "title": plain_text(status.get("spoiler_text")),
        "text": html_to_text(status.get("content")),
        "rating": None,
        "lang": status.get("language") or None,
        "posted_at": utc_iso(status.get("created_at")),
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": str(reply_to) if reply_to else None,
        "raw": status,
    }


class MastodonSpider(IncrementalSpider):
    """Crawl one ``mastodon`` source: every tag timeline and search query, newest first."""

    name = "mastodon"
    # Statuses can be edited at any time; older ones only count as seen when the store has them.
    edit_window = timedelta(days=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token: str | None = None

    @property
    def base_url(self) -> str:
        return self.options["base_url"].rstrip("/")

    def request(self, url: str, stream: Stream) -> scrapy.Request:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return scrapy.Request(
            url, callback=self.parse, errback=self.on_error, headers=headers, meta={"stream": stream.key}
        )

    def tag_url(self, tag: str) -> str:
        return f"{self.base_url}/api/v1/timelines/tag/{quote(tag.lstrip('#'), safe='')}?limit={PAGE_SIZE}"

    def search_url(self, query: str, max_id: str | None = None) -> str:
        params = {"q": query, "type": "statuses", "resolve": "false", "limit": PAGE_SIZE}
        if max_id:
            params["max_id"] = max_id
        return f"{self.base_url}/api/v2/search?{urlencode(params)}"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        self.token = self.secret("access_token_env", required=False)
        for tag in self.options.get("tags", []):
            yield self.request(self.tag_url(tag), self.stream(f"tag:{tag.lstrip('#')}", f"tag #{tag.lstrip('#')}"))
        queries = self.options.get("search", [])
        if queries and not self.token:
            env = self.options["access_token_env"]
            self.report(
                f"{self.source.key}.access_token_env: environment variable {env} is not set "
                f"(source {self.source.name!r}); Mastodon search needs an access token, so "
                f"{len(queries)} search quer{'y was' if len(queries) == 1 else 'ies were'} skipped"
            )
            return
        for query in queries:
            yield self.request(self.search_url(query), self.stream(f"search:{query}", f"query {query!r}"))

    def error_hint(self, status: int, request: scrapy.Request) -> str:
        env = self.options["access_token_env"]
        if status == 401 and not self.token:
            return f"this instance does not show this timeline to anonymous readers; set {env} to an access token"
        if status in (401, 403) and self.token:
            return f"the instance refused the access token in {env}; check it and its read scope"
        if status == 429:
            return "rate limited by the instance (Mastodon allows about 300 requests per 5 minutes)"
        return ""

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """Mentions for every status on the page, then the next page's request when paging goes on."""
        stream = self.stream(meta_of(response).get("stream", "tag:?"))
        data = self.read_json(response, stream)
        if data is None:
            return
        is_search = stream.key.startswith("search:")
        statuses = data.get("statuses") if is_search and isinstance(data, dict) else data
        if not isinstance(statuses, list):
            self.fail(stream, f"unexpected response from {response.url}: expected a list of statuses")
            return
        items = [s for s in statuses if isinstance(s, dict)]
        mentions = self.map_page(items, lambda s: status_to_mention(s, self.source), response, stream)
        fresh, more = self.take(stream, mentions, response.url)
        if more and statuses:
            # Asked for before the items go out, so the download overlaps storing this page.
            yield from self.next_page(response, stream, statuses)
        yield from fresh

    def next_page(self, response: Response, stream: Stream, statuses: list[Any]) -> Iterator[scrapy.Request]:
        if stream.key.startswith("search:"):
            last_id = statuses[-1].get("id") if isinstance(statuses[-1], dict) else None
            if last_id:
                yield self.request(self.search_url(stream.key.removeprefix("search:"), str(last_id)), stream)
            return
        url = next_link(response.headers.get(b"Link"))
        # Only page on the instance we were pointed at; a Link elsewhere is not ours to follow.
        if url and urlsplit(url).netloc == urlsplit(response.url).netloc:
            yield self.request(url, stream)
