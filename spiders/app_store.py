"""Apple App Store customer reviews from the public RSS feed (JSON flavour) → mentions.

``GET {base_url}/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json``
serves 50 reviews a page, newest (last edited) first, pages 1–10: about the 500 most recent
reviews per app and storefront. No key is needed. The feed is an XML-to-JSON conversion, so
every value is wrapped as ``{"label": ...}`` and a single entry arrives as an object, not a list.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from spiders.api_base import ApiSpider, clean_text, dig, meta_of, star_rating, utc_iso

APPLE_MAX_PAGES = 10


def feed_url(base_url: str, country: str, app_id: str, page: int) -> str:
    return (
        f"{base_url.rstrip('/')}/{quote(country.lower())}/rss/customerreviews/page={page}"
        f"/id={quote(app_id)}/sortby=mostrecent/json"
    )


def _label(entry: dict[str, Any], *path: str) -> str | None:
    return clean_text(dig(entry, *path, "label"))


def feed_entries(data: Any) -> list[dict[str, Any]] | None:
    """The feed's entries (a lone entry comes as an object); None when the document is not a feed."""
    feed = dig(data, "feed")
    if not isinstance(feed, dict):
        return None
    entries = feed.get("entry", [])
    if isinstance(entries, dict):
        entries = [entries]
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else None


def last_page(data: Any) -> int | None:
    """The page number in the feed's ``rel="last"`` link, when it has one."""
    links = dig(data, "feed", "link")
    for link in links if isinstance(links, list) else [links]:
        if dig(link, "attributes", "rel") == "last":
            match = re.search(r"/page=(\d+)/", str(dig(link, "attributes", "href")))
            if match:
                return int(match.group(1))
    return None


def entry_to_mention(
    entry: dict[str, Any], app_id: str, country: str, brand: str = "", location: str = ""
) -> dict[str, Any] | None:
    """One review entry as a mention; None for the app-metadata entry (it has no ``im:rating``)."""
    rating = star_rating(_label(entry, "im:rating"))
    review_id = _label(entry, "id")
    if rating is None or not review_id:
        return None
    link = dig(entry, "link", "attributes", "href")
    if isinstance(dig(entry, "link"), list):
        link = next((dig(item, "attributes", "href") for item in entry["link"]), None)
    return {
        "external_id": review_id,
        "url": link if isinstance(link, str) and link.startswith("http") else
        f"https://apps.apple.com/{country}/app/id{app_id}?see-all=reviews",
        "kind": "review",
        "author": _label(entry, "author", "name"),
        "author_reach": None,
        "title": _label(entry, "title"),
        "text": _label(entry, "content"),
        "rating": rating,
        "lang": None,  # a storefront is not a language (Canada, Switzerland); the classifier detects it
        "posted_at": utc_iso(_label(entry, "updated")),
        "experienced_at": None,
        "location": location,
        "brand": brand,
        "parent_id": None,
        "raw": entry,
    }  # fmt: skip


class AppStoreSpider(ApiSpider):
    """Crawl one ``app_store`` source: every app id × storefront, newest reviews first."""

    name = "app_store"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for app_id in self.options.get("app_ids", []):
            for country in self.options.get("countries", ["us"]):
                yield self.page_request(app_id, country, 1)

    def page_request(self, app_id: str, country: str, page: int) -> scrapy.Request:
        url = feed_url(self.options.get("base_url", "https://itunes.apple.com"), country, app_id, page)
        meta = {"app_id": app_id, "country": country, "page": page}
        return self.request(url, self.parse, stream=f"{app_id}/{country}", meta=meta)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """The page's reviews, then the next page unless the listing is exhausted or already known."""
        meta = meta_of(response)
        app_id, country, page = meta.get("app_id", ""), meta.get("country", "us"), meta.get("page", 1)
        stream = f"{app_id}/{country}"
        data = self.load_json(response)
        if data is None:
            return
        entries = feed_entries(data)
        if entries is None:
            self.report(f"unexpected document from {response.url}: no feed object")
            self.end_stream(stream, ok=False)
            return
        brand = brand_for(self.source, app_id)
        mentions = self.map_page(
            entries, lambda e: entry_to_mention(e, app_id, country, brand, self.source.location), response, stream
        )
        if not mentions:
            if page == 1:
                # Apple answers an unknown app id or an empty storefront with an empty feed, not an error.
                self.report(f"no reviews for app {app_id} in storefront {country!r} ({response.url})")
            self.end_stream(stream)
            return
        yield from self.fresh(mentions, stream)
        stop = self.track_page(stream, [m["external_id"] for m in mentions])
        limit = min(int(self.options.get("max_pages", APPLE_MAX_PAGES)), APPLE_MAX_PAGES, last_page(data) or 99)
        # No short-page shortcut: Apple's page sizes are not documented, an empty page is cheap.
        if stop or page >= limit:
            self.end_stream(stream)
            return
        yield self.page_request(app_id, country, page + 1)
