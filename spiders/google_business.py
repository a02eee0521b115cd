"""Google Business Profile reviews of the business's own locations (owner API) → mentions, and the reply channel.

``GET {base_url}/v4/accounts/{account}/locations/{location}/reviews?pageSize=50&orderBy=updateTime desc``
with an OAuth 2 access token (scope ``business.manage``) from the refresh token in the environment. Unlike
the Places API (5 reviews) this lists **every** review, with the owner's reply (``reviewReply``). Pages
follow ``nextPageToken``. Newest update first: paging stops at the first review not updated since the last
clean crawl (a watermark per location, moved only once everything above it was stored), so an edited
rating or text comes back as a revision of the stored review (the recovery tracker reads those).

Replies: ``PUT …/reviews/{id}/reply`` ``{"comment"}`` (at most 4,096 characters; a PUT replaces the one
reply, so a repeat cannot post twice), ``DELETE …/reviews/{id}/reply``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from monitor.config import SourceConfig
from monitor.queue.channels import ChannelError, PostedReply, register
from spiders.api_base import clean_text, dig, meta_of, utc_iso
from spiders.google_owner import BUSINESS_SCOPE, GoogleApi, GoogleOwnerSpider, oauth_credentials

BASE_URL = "https://mybusiness.googleapis.com"
MAX_PAGE_SIZE = 50
MAX_REPLY_CHARS = 4096
STARS = {"ONE": 1.0, "TWO": 2.0, "THREE": 3.0, "FOUR": 4.0, "FIVE": 5.0}
WATERMARK_KEY = "updated:"  # newest updateTime stored by a clean crawl, per location
REVIEWS_PAGE = "https://business.google.com/reviews"
_REVIEW_NAME = re.compile(r"^accounts/[^/?#]+/locations/[^/?#]+/reviews/[^/?#]+$")


def _id(value: str, prefix: str) -> str:
    """An account or location id as configured: bare (``123``) or as a resource name (``accounts/123``)."""
    return str(value).strip().removeprefix(prefix).strip("/")


def reviews_url(base_url: str, account: str, location: str, page_size: int, page_token: str | None = None) -> str:
    query = {"pageSize": min(page_size, MAX_PAGE_SIZE), "orderBy": "updateTime desc"}
    if page_token:
        query["pageToken"] = page_token
    return (f"{base_url.rstrip('/')}/v4/accounts/{quote(_id(account, 'accounts/'), safe='')}"
            f"/locations/{quote(_id(location, 'locations/'), safe='')}/reviews?{urlencode(query)}")  # fmt: skip


def reply_id_for(review_id: str) -> str:
    """The id we store for the owner's reply to a review: Business Profile has one reply per review, no id."""
    return f"{review_id}:reply"


def review_to_mention(review: dict[str, Any], account: str, location: str, brand: str = "",
                      our_location: str = "") -> dict[str, Any]:  # fmt: skip
    """One Business Profile review as a mention (``raw`` keeps the review and its ``name`` for replies)."""
    review_id = str(review["reviewId"])
    raw = dict(review)
    if not isinstance(raw.get("name"), str):
        account_id, location_id = _id(account, "accounts/"), _id(location, "locations/")
        raw["name"] = f"accounts/{account_id}/locations/{location_id}/reviews/{review_id}"
    return {
        "external_id": review_id,
        "url": REVIEWS_PAGE,
        "kind": "review",
        "author": clean_text(dig(review, "reviewer", "displayName")),
        "author_reach": None,
        "title": None,
        "text": clean_text(review.get("comment")),
        "rating": STARS.get(review.get("starRating")),  # STAR_RATING_UNSPECIFIED: no rating
        "lang": None,
        "posted_at": utc_iso(review.get("createTime")),
        "experienced_at": None,
        "location": our_location,
        "brand": brand,
        "parent_id": None,
        "raw": raw,
    }


class GoogleBusinessSpider(GoogleOwnerSpider):
    """Crawl one ``google_business`` source: every review of each configured location, newest update first."""

    name = "google_business"

    def make_credentials(self) -> tuple[Any, list[str]]:
        return oauth_credentials(self.source, BUSINESS_SCOPE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.newest: dict[str, str] = {}  # location -> newest updateTime read in this crawl
        self.watermarks: dict[str, str | None] = {}

    def first_requests(self) -> Iterator[scrapy.Request]:
        for location in self.options.get("location_ids", []):
            yield self.page_request(location, 1)

    def page_request(self, location: str, page: int, token: str | None = None) -> scrapy.Request:
        url = reviews_url(self.options.get("base_url", BASE_URL), self.options.get("account", ""), location,
                          int(self.options.get("page_size", MAX_PAGE_SIZE)), token)  # fmt: skip
        return self.api_request(url, self.parse, stream=location, meta={"location": location, "page": page})

    def watermark(self, location: str) -> str | None:
        if location not in self.watermarks:
            from monitor.store import get_source_state

            db = self.db
            self.watermarks[location] = get_source_state(db, self.source.name, WATERMARK_KEY + location) if db else None
        return self.watermarks[location]

    def parse_page(self, response: Response) -> Iterator[dict[str, Any] | scrapy.Request]:
        meta = meta_of(response)
        location, page = meta.get("location", ""), meta.get("page", 1)
        data = self.load_json(response)
        if data is None:
            return
        reviews = dig(data, "reviews") if isinstance(data, dict) else None
        if reviews is None and isinstance(data, dict) and ("totalReviewCount" in data or "averageRating" in data):
            reviews = []  # Google leaves the list out when a location has no reviews
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: no reviews list")
            self.end_stream(location, ok=False)
            return
        usable = [r for r in reviews if isinstance(r, dict) and isinstance(r.get("reviewId"), str) and r["reviewId"]]
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without a reviewId in {response.url}; skipped")
            self.end_stream(location, ok=False)  # a review we could not read: the watermark stays
        brand = brand_for(self.source, location)
        account = self.options.get("account", "")
        mentions = self.map_page(usable, lambda r: review_to_mention(r, account, location, brand, self.source.location),
                                 response, location)  # fmt: skip
        yield from self.fresh(mentions, location)
        watermark, reached = self.watermark(location), False
        for review in usable:
            updated = utc_iso(review.get("updateTime")) or utc_iso(review.get("createTime"))
            if updated and updated > self.newest.get(location, ""):
                self.newest[location] = updated
            if watermark and updated and updated <= watermark:
                reached = True  # older than the last clean crawl's newest: everything below is stored
            reply = review.get("reviewReply")
            if isinstance(reply, dict):
                self.saw_owner_reply(review["reviewId"], reply.get("comment"), reply_id_for(review["reviewId"]),
                                     utc_iso(reply.get("updateTime")))  # fmt: skip
        token = dig(data, "nextPageToken")
        if reached or not isinstance(token, str) or not token:
            self.end_stream(location)
            return
        if page >= int(self.options.get("max_pages", 100)):
            self.report(f"location {location}: stopped after max_pages = {page} pages; older reviews wait for a "
                        "crawl with a larger max_pages")  # fmt: skip
            self.end_stream(location, ok=False)  # not read to the watermark: it must not move
            return
        yield self.page_request(location, page + 1, token)

    def before_close(self, db: Any, reason: str) -> None:
        from monitor.store import set_source_state

        for location, newest in self.newest.items():
            clean = self._streams.get(location) == "done" and reason == "finished" and not self.storage_failed
            if clean and newest > (self.watermark(location) or ""):
                set_source_state(db, self.source.name, WATERMARK_KEY + location, newest)


# ------------------------------------------------------------------ replies


def _review_name(source: SourceConfig, mention: dict[str, Any]) -> str:
    name = dig(mention, "raw", "name")
    if not isinstance(name, str) or not _REVIEW_NAME.match(name):
        raise ChannelError(f"source {source.name!r}: review {mention.get('external_id')!r} has no Business "
                           "Profile resource name; crawl the source again")  # fmt: skip
    return "/".join(quote(part, safe="") for part in name.split("/"))


class GoogleBusinessChannel:
    name = "google_business"
    platform = "Google"
    max_length = MAX_REPLY_CHARS
    can_edit = True
    can_delete = True

    def length(self, text: str) -> int:
        return len(text)

    def _api(self, source: SourceConfig) -> GoogleApi:
        credentials, secrets = oauth_credentials(source, BUSINESS_SCOPE)
        return GoogleApi(source, "Google Business Profile", credentials, secrets)

    def _url(self, source: SourceConfig, mention: dict[str, Any]) -> str:
        return f"{source.options.get('base_url', BASE_URL).rstrip('/')}/v4/{_review_name(source, mention)}/reply"

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        # No idempotency key in this API, and none needed: a PUT sets the review's one reply.
        url = self._url(source, mention)
        answer = self._api(source).call("PUT", url, {"comment": text})
        return PostedReply(external_id=reply_id_for(str(mention["external_id"])),
                           posted_at=utc_iso(dig(answer, "updateTime")), url=REVIEWS_PAGE)  # fmt: skip

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        return self.post(source, mention, text, "")

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        self._api(source).call("DELETE", self._url(source, mention))


@register("google_business")
def google_business_channel() -> GoogleBusinessChannel:
    return GoogleBusinessChannel()
