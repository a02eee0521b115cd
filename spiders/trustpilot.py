"""Trustpilot reviews from the official business-unit reviews API → mentions.

``GET {base_url}/v1/business-units/{id}/reviews?perPage=100&page=N&orderBy=createdat.desc``,
authenticated with the ``apikey`` header (Trustpilot also accepts ``?apikey=``, but Scrapy
logs request URLs, and a key must never reach a log). Pages continue while the response
has a ``rel: "next-page"`` link; the next URL is built here rather than taken from that
link, so the key header is only ever sent to the configured host.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from spiders.api_base import ApiSpider, clean_text, dig, meta_of, star_rating, utc_iso

PER_PAGE = 100
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def reviews_url(base_url: str, business_unit_id: str, page: int) -> str:
    query = urlencode({"perPage": PER_PAGE, "page": page, "orderBy": "createdat.desc"})
    return f"{base_url.rstrip('/')}/v1/business-units/{quote(business_unit_id, safe='')}/reviews?{query}"


def has_next_page(data: Any) -> bool:
    links = dig(data, "links")
    return isinstance(links, list) and any(dig(link, "rel") == "next-page" for link in links)


def experience_date(review: dict[str, Any]) -> str | None:
    """The date of experience as ``YYYY-MM-DD``.

    Reviewers pick a calendar date; the API sends it as midnight UTC, which read as an
    instant would put every visit on the night shift. A bare date is a whole local day.
    """
    value = review.get("experiencedAt") or review.get("dateOfExperience")
    match = _DATE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def review_to_mention(review: dict[str, Any], brand: str = "", location: str = "") -> dict[str, Any]:
    """One Trustpilot review as a mention."""
    review_id = str(review["id"])
    return {
        "external_id": review_id,
        "url": f"https://www.trustpilot.com/reviews/{quote(review_id, safe='')}",
        "kind": "review",
        "author": clean_text(dig(review, "consumer", "displayName")),
        # consumer.numberOfReviews counts the reviewer's reviews, not an audience: not reach.
        "author_reach": None,
        "title": clean_text(review.get("title")),
        "text": clean_text(review.get("text")),
        "rating": star_rating(review.get("stars")),
        "lang": clean_text(review.get("language")),
        "posted_at": utc_iso(review.get("createdAt")),
        "experienced_at": experience_date(review),
        "location": location,
        "brand": brand,
        "parent_id": None,
        "raw": review,
    }


class TrustpilotSpider(ApiSpider):
    """Crawl one ``trustpilot`` source: each business unit's reviews, newest first."""

    name = "trustpilot"
    api_headers: dict[str, str] | None = None  # set by start() once the key is read

    async def start(self) -> AsyncIterator[scrapy.Request]:
        key = self.secret("api_key_env")
        if key is None:
            return
        self.api_headers = {"apikey": key, "Accept": "application/json"}
        for unit_id in self.options.get("business_unit_ids", []):
            yield self.page_request(unit_id, 1)

    def page_request(self, unit_id: str, page: int) -> scrapy.Request:
        url = reviews_url(self.options.get("base_url", "https://api.trustpilot.com"), unit_id, page)
        meta = {"unit_id": unit_id, "page": page}
        return self.request(url, self.parse, stream=unit_id, headers=self.api_headers, meta=meta)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """The page's reviews, then the next page unless the listing is exhausted or already known."""
        meta = meta_of(response)
        unit_id, page = meta.get("unit_id", ""), meta.get("page", 1)
        data = self.load_json(response)
        if data is None:
            return
        reviews = dig(data, "reviews")
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: no reviews list")
            self.end_stream(unit_id, ok=False)
            return
        brand = brand_for(self.source, unit_id)
        usable = [review for review in reviews if isinstance(review, dict) and review.get("id")]
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without an id in {response.url}; skipped")
        mentions = self.map_page(usable, lambda r: review_to_mention(r, brand, self.source.location), response,
                                 unit_id)  # fmt: skip
        yield from self.fresh(mentions, unit_id)
        stop = self.track_page(unit_id, [m["external_id"] for m in mentions])
        if stop or not mentions or not has_next_page(data) or page >= int(self.options.get("max_pages", 20)):
            self.end_stream(unit_id)
            return
        yield self.page_request(unit_id, page + 1)
