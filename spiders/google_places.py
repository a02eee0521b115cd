"""Google reviews from the Places API (New) place details → mentions.

``GET {base_url}/v1/places/{place_id}`` with ``X-Goog-Api-Key`` and a field mask that asks only
for the reviews (and a few fields to name the place). Google returns at most 5 reviews per
place, chosen by relevance, and offers no paging or "newest" order in the new API, so every
crawl simply re-reads those 5; the store upserts them and records edits as revisions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from spiders.api_base import ApiSpider, clean_text, dig, meta_of, star_rating, utc_iso

FIELD_MASK = "id,displayName,rating,userRatingCount,reviews"
MAX_REVIEWS = 5


def details_url(base_url: str, place_id: str, language: str = "") -> str:
    # Accept the resource name ("places/ChIJ...") as well as the bare id.
    url = f"{base_url.rstrip('/')}/v1/places/{quote(place_id.removeprefix('places/'), safe='')}"
    return f"{url}?{urlencode({'languageCode': language})}" if language else url


def visit_date(value: Any) -> str | None:
    """``visitDate`` ({year, month, day}) as ``YYYY-MM-DD``, or ``YYYY-MM`` when Google gives no day."""
    year, month, day = (dig(value, key) for key in ("year", "month", "day"))
    if not isinstance(year, int) or not isinstance(month, int) or not 1 <= month <= 12 or year < 1:
        return None
    if isinstance(day, int) and 1 <= day <= 31:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return f"{year:04d}-{month:02d}"


def review_to_mention(review: dict[str, Any], place_id: str, brand: str = "", location: str = "") -> dict[str, Any]:
    """One Places API (New) review as a mention; ``name`` (places/{id}/reviews/{rid}) is its id."""
    # "text" is in the requested languageCode (a translation if needed); "originalText" is as written.
    text = clean_text(dig(review, "text", "text")) or clean_text(dig(review, "originalText", "text"))
    lang = dig(review, "text", "languageCode") if clean_text(dig(review, "text", "text")) else None
    lang = lang or dig(review, "originalText", "languageCode")
    url = dig(review, "googleMapsUri")
    return {
        "external_id": review.get("name"),
        "url": url if isinstance(url, str) and url.startswith("http")
        else f"https://www.google.com/maps/place/?q=place_id:{quote(place_id, safe='')}",
        "kind": "review",
        "author": clean_text(dig(review, "authorAttribution", "displayName")),
        "author_reach": None,
        "title": None,
        "text": text,
        "rating": star_rating(review.get("rating")),
        "lang": lang if isinstance(lang, str) and lang else None,
        "posted_at": utc_iso(review.get("publishTime")),
        "experienced_at": visit_date(review.get("visitDate")),
        "location": location,
        "brand": brand,
        "parent_id": None,
        "raw": review,
    }  # fmt: skip


class GooglePlacesSpider(ApiSpider):
    """Crawl one ``google_places`` source: the reviews of each configured place."""

    name = "google_places"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        key = self.secret("api_key_env")
        if key is None:
            return
        base_url = self.options.get("base_url", "https://places.googleapis.com")
        headers = {"X-Goog-Api-Key": key, "X-Goog-FieldMask": FIELD_MASK}
        for place_id in self.options.get("place_ids", []):
            url = details_url(base_url, place_id, self.options.get("language", ""))
            yield self.request(url, self.parse, stream=place_id, headers=headers, meta={"place_id": place_id})

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        place_id = meta_of(response).get("place_id") or response.url.rsplit("/", 1)[-1].split("?")[0]
        data = self.load_json(response)
        if data is None:
            return
        if not isinstance(data, dict) or not data.get("id"):
            self.report(f"unexpected response from {response.url}: no place object")
            self.end_stream(place_id, ok=False)
            return
        reviews = data.get("reviews", [])
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: reviews is not a list")
            self.end_stream(place_id, ok=False)
            return
        if not reviews:
            # Google leaves the field out for a place without reviews: not an error.
            self.logger.info("source %r: no reviews for place %s", self.source.name, place_id)
        usable = [review for review in reviews if isinstance(review, dict) and review.get("name")]
        brand = brand_for(self.source, place_id)
        mentions = self.map_page(
            usable, lambda r: review_to_mention(r, place_id, brand, self.source.location), response, place_id
        )
        yield from self.fresh(mentions, place_id)
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without a name (id) in {response.url}; skipped")
        self.end_stream(place_id)
