"""RSS 2.0 and Atom feeds (news alerts, blogs) → mentions, parsed with feedparser.

Each feed is fetched once per crawl with a conditional GET: the ``ETag`` and
``Last-Modified`` of the last clean crawl go out as ``If-None-Match`` /
``If-Modified-Since``, and a ``304 Not Modified`` is a normal crawl with nothing
new. Every entry of a changed feed is upserted, so an entry whose summary or
title changed becomes a revision. Unlike the API spiders, this one obeys
robots.txt: a feed lives on somebody's website.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import feedparser
import scrapy
from scrapy.http import Response

from monitor.config import SourceConfig
from spiders.incremental import IncrementalSpider, html_to_text, meta_of

_CHAR_REF = re.compile(rb"&#([xX][0-9a-fA-F]{1,8}|[0-9]{1,10});")


def _no_surrogate_refs(body: bytes) -> bytes:
    def fix(match: re.Match) -> bytes:
        ref = match.group(1)
        code = int(ref[1:], 16) if ref[:1] in (b"x", b"X") else int(ref)
        return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF else match.group(0)

    return _CHAR_REF.sub(fix, body)


def _struct_to_iso(value: Any) -> str | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC).isoformat()  # feedparser normalises to UTC
    except ValueError:
        return None


def jsonable(value: Any) -> Any:
    """A feedparser entry as plain JSON data (``*_parsed`` times become ISO strings)."""
    if isinstance(value, time.struct_time):
        return _struct_to_iso(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def unwrap_link(url: str | None) -> str | None:
    """The article behind a Google Alerts redirect (``google.com/url?url=…``); other links unchanged."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc.endswith("google.com") and parts.path == "/url":
        target = parse_qs(parts.query).get("url") or parse_qs(parts.query).get("q")
        if target and target[0].startswith(("http://", "https://")):
            return target[0]
    return url


def _text_and_lang(entry: dict[str, Any]) -> tuple[str, str | None]:
    """The entry's text (summary, else content) and the ``xml:lang`` of the element it came from.

    feedparser copies an Atom ``content`` into ``summary`` without its details, so the language is
    looked up on whichever element holds the text; None when that element has none.
    """
    summary = entry.get("summary") or ""
    detail = entry.get("summary_detail") or {}
    if summary and detail.get("value") == summary:
        return summary, detail.get("language") or None
    contents = [c for c in entry.get("content") or [] if isinstance(c, dict) and c.get("value")]
    chosen = next((c for c in contents if c.get("value") == summary), None) if summary else None
    chosen = chosen or (contents[0] if contents else None)
    if chosen is not None:
        return summary or chosen["value"], chosen.get("language") or None
    return summary, None


def entry_to_mention(
    entry: dict[str, Any],
    feed_url: str,
    feed_lang: str | None = None,
    source: SourceConfig | None = None,
    feed_author: str | None = None,
) -> dict[str, Any]:
    """Map one feedparser entry onto the stored mention shape.

    ``feed_lang`` is the feed's language, used when the text's element has none; ``feed_author``
    the feed's author, which an Atom entry without its own author inherits (RFC 4287, 4.2.1).
    """
    link = unwrap_link(entry.get("link"))
    title = html_to_text(entry.get("title"))
    summary, lang = _text_and_lang(entry)
    if not summary:
        lang = (entry.get("title_detail") or {}).get("language") or None  # a title-only entry
    posted = _struct_to_iso(entry.get("published_parsed")) or _struct_to_iso(entry.get("updated_parsed"))
    external_id = entry.get("id") or entry.get("link")
    if not external_id:
        # Neither guid nor link: what identifies the entry within this feed is its title and date.
        parts = json.dumps([feed_url, title or "", posted or ""], ensure_ascii=False).encode()
        external_id = "sha1:" + hashlib.sha1(parts).hexdigest()[:32]
    return {
        "external_id": str(external_id),
        "url": link or feed_url,
        "kind": "post",
        "author": entry.get("author") or feed_author or None,
        "author_reach": None,
        "title": title,
        "text": html_to_text(summary),
        "rating": None,
        "lang": lang or feed_lang or None,
        "posted_at": posted,
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": None,
        "raw": jsonable({k: v for k, v in entry.items() if not k.endswith("_parsed")}),
    }


class FeedSpider(IncrementalSpider):
    """Crawl one ``feed`` source: each RSS / Atom URL, conditionally."""

    name = "feed"
    # A feed is a page on a website: robots.txt applies (spiders.run sets it from the source).
    custom_settings: ClassVar[dict[str, Any]] = {}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.options["urls"]:
            stream = self.stream(f"feed:{url}", "the feed")
            headers = {}
            if etag := self.state(f"etag:{url}"):
                headers["If-None-Match"] = etag
            if modified := self.state(f"last_modified:{url}"):
                headers["If-Modified-Since"] = modified
            yield scrapy.Request(
                url,
                callback=self.parse,
                errback=self.on_error,
                headers=headers,
                meta={"stream": stream.key, "feed_url": url, "handle_httpstatus_list": [304]},
            )

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Mentions for every entry of the feed (none for a 304)."""
        meta = meta_of(response)
        feed_url = meta.get("feed_url", response.url)
        stream = self.stream(f"feed:{feed_url}", "the feed")
        if response.status == 304:
            self.logger.info("source %r: %s not modified since the last crawl", self.source.name, feed_url)
            return
        headers = {"content-type": response.headers.get(b"Content-Type", b"").decode("latin-1")}
        try:
            parsed = feedparser.parse(response.body, response_headers=headers)
        except (UnicodeError, ValueError):
            # A character reference to a surrogate (&#xD800;) makes feedparser's encoder raise; such a reference
            # is no character anyway, so it becomes U+FFFD and the rest of the feed is read.
            body = _no_surrogate_refs(response.body)
            try:
                parsed = feedparser.parse(body, response_headers=headers)
            except (UnicodeError, ValueError) as exc:
                self.fail(stream, f"unreadable feed at {response.url}: {exc}")
                return
        entries = parsed.get("entries") or []
        if not entries:
            if parsed.get("bozo"):
                reason = parsed.get("bozo_exception")
                self.fail(stream, f"malformed feed at {response.url}: {reason or 'unreadable XML'}")
                return
            if not parsed.get("version"):
                self.fail(stream, f"{response.url} is not an RSS or Atom feed")
                return
        elif parsed.get("bozo"):
            # feedparser recovered the entries; worth a log line, not a failed crawl.
            self.logger.info("source %r: %s has XML errors (%s)", self.source.name, feed_url, parsed.bozo_exception)
        feed = parsed.get("feed") or {}
        feed_lang = feed.get("language")
        # Atom entries inherit the feed's author; an RSS channel's editor is not the author of its items.
        feed_author = feed.get("author") if str(parsed.get("version", "")).startswith("atom") else None
        base = response.url
        mentions = self.map_page(
            entries, lambda entry: entry_to_mention(entry, base, feed_lang, self.source, feed_author), response, stream
        )
        fresh, _ = self.take(stream, mentions, response.url)
        yield from fresh
        # Saved on a clean close only, so a crash before the items are stored cannot turn them into a 304.
        for header, key in ((b"ETag", "etag"), (b"Last-Modified", "last_modified")):
            value = response.headers.get(header)
            if value:
                self.pending_state[f"{key}:{feed_url}"] = value.decode("latin-1")
