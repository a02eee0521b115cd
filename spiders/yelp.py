"""Yelp reviews from the Fusion API → mentions.

``GET {base_url}/v3/businesses/{id}/reviews?limit=50&sort_by=newest[&locale=xx_YY]`` with
``Authorization: Bearer KEY``. On the standard plan Yelp returns 3 review *excerpts* (about
160 characters, ending in "...") per business whatever ``limit`` asks; paid plans return up
to ``limit``. There is no paging cursor worth following for 3 excerpts, so every crawl
re-reads the newest ones and the store upserts them (an edited excerpt becomes a revision).

``time_created`` ("2016-08-29 00:41:13") is the business's local wall time with no offset:
it is read in the source's ``timezone`` option, or by default in the time zone of the
business's location (:func:`business_zone`), and stored in UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from monitor.config import Location, SourceConfig
from spiders.api_base import ApiSpider, clean_text, dig, meta_of, star_rating, utc_iso

REQUEST_LIMIT = 50  # Yelp's maximum; the standard plan still answers with 3


def reviews_url(base_url: str, business_id: str, locale: str = "") -> str:
    query = {"limit": REQUEST_LIMIT, "sort_by": "newest", **({"locale": locale} if locale else {})}
    return f"{base_url.rstrip('/')}/v3/businesses/{quote(business_id, safe='')}/reviews?{urlencode(query)}"


def business_zone(source: SourceConfig, business_id: str, locations: Sequence[Location] = ()) -> tzinfo:
    """The time zone Yelp's local review times of ``business_id`` are read in.

    The source's ``timezone`` when set. Otherwise the zone of the ``[[locations]]``
    entry that lists this business in its ``business_ids`` (one source may cover
    businesses in several cities), else of the source's own location (its
    ``location`` key, or a location listing the source); UTC when none applies.
    """
    name = source.options.get("timezone", "")
    if not name:
        match = (
            next((loc for loc in locations if business_id in loc.business_ids), None)
            or next((loc for loc in locations if source.location and loc.id == source.location), None)
            or next((loc for loc in locations if source.name in loc.sources), None)
        )
        name = match.timezone if match else ""
    return ZoneInfo(name) if name else UTC


def review_to_mention(
    review: dict[str, Any],
    business_id: str,
    zone: tzinfo = UTC,
    locale: str = "",
    brand: str = "",
    location: str = "",
) -> dict[str, Any]:
    """One Fusion review as a mention (``text`` is Yelp's excerpt, not the full review)."""
    url = review.get("url")
    return {
        "external_id": str(review["id"]),
        "url": url if isinstance(url, str) and url.startswith("http")
        else f"https://www.yelp.com/biz/{quote(business_id, safe='')}",
        "kind": "review",
        "author": clean_text(dig(review, "user", "name")),
        "author_reach": None,  # the API gives no follower or review count for users
        "title": None,
        "text": clean_text(review.get("text")),
        "rating": star_rating(review.get("rating")),
        "lang": locale.split("_")[0].lower() or None,  # "en_US" -> "en"; no locale: the classifier detects it
        "posted_at": utc_iso(review.get("time_created"), assume=zone),
        "experienced_at": None,
        "location": location,
        "brand": brand,
        "parent_id": None,
        "raw": review,
    }  # fmt: skip


class YelpSpider(ApiSpider):
    """Crawl one ``yelp`` source: the newest review excerpts of each configured business."""

    name = "yelp"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        key = self.secret("api_key_env")
        if key is None:
            return
        base_url = self.options.get("base_url", "https://api.yelp.com")
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        for business_id in self.options.get("business_ids", []):
            url = reviews_url(base_url, business_id, self.options.get("locale", ""))
            yield self.request(url, self.parse, stream=business_id, headers=headers, meta={"business_id": business_id})

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        business_id = meta_of(response).get("business_id") or response.url.split("/businesses/")[-1].split("/")[0]
        data = self.load_json(response)
        if data is None:
            return
        reviews = dig(data, "reviews")
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: no reviews list")
            self.end_stream(business_id, ok=False)
            return
        zone, locale = business_zone(self.source, business_id, self.locations), self.options.get("locale", "")
        brand = brand_for(self.source, business_id)
        usable = [review for review in reviews if isinstance(review, dict) and review.get("id")]
        mentions = self.map_page(
            usable,
            lambda r: review_to_mention(r, business_id, zone, locale, brand, self.source.location),
            response,
            business_id,
        )
        yield from self.fresh(mentions, business_id)
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without an id in {response.url}; skipped")
        self.end_stream(business_id)
