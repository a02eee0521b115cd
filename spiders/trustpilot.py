"""Trustpilot reviews from the official business-unit reviews API → mentions.

``GET {base_url}/v1/business-units/{id}/reviews?perPage=100&page=N&orderBy=createdat.desc``,
authenticated with the ``apikey`` header (Trustpilot also accepts ``?apikey=``, but Scrapy
logs request URLs, and a key must never reach a log). Pages continue while the response
has a ``rel: "next-page"`` link; the next URL is built here rather than taken from that
link, so the key header is only ever sent to the configured host.

Owner mode (``owner = true``): the business's own reviews through the private API,
``GET {base_url}/v1/private/business-units/{id}/reviews`` (same paging), with an OAuth bearer token from
the client-credentials grant (``spiders.trustpilot_reply``: API key and secret from the environment). A 401
gets a new token and the page once more. In both modes a review's ``companyReply`` is kept in ``raw``, and a
company reply the tool did not post is handed to the reply queue when the crawl ends (the item shows as
replied, with the text used).
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


def reviews_url(base_url: str, business_unit_id: str, page: int, owner: bool = False) -> str:
    query = urlencode({"perPage": PER_PAGE, "page": page, "orderBy": "createdat.desc"})
    api = "/v1/private/business-units" if owner else "/v1/business-units"
    return f"{base_url.rstrip('/')}{api}/{quote(business_unit_id, safe='')}/reviews?{query}"


def company_reply(review: dict[str, Any]) -> tuple[str, str | None] | None:
    """The company's reply to a review as ``(text, when)``, or None."""
    reply = review.get("companyReply")
    if not isinstance(reply, dict) or not isinstance(reply.get("text"), str) or not reply["text"].strip():
        return None
    return reply["text"].strip(), utc_iso(reply.get("updatedAt")) or utc_iso(reply.get("createdAt"))


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
    api_headers: dict[str, str] | None = None  # set by start() once the key (owner mode: the token) is read

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replies_seen: list[tuple[str, str, str | None]] = []  # (review id, reply text, when)
        self.credentials: tuple[str, str] | None = None  # owner mode: API key and secret

    @property
    def owner(self) -> bool:
        return bool(self.options.get("owner"))

    async def start(self) -> AsyncIterator[scrapy.Request]:
        key = self.secret("api_key_env")
        if key is None:
            return
        if self.owner:
            secret = self.secret("api_secret_env")
            if secret is None:
                return
            self.credentials = (key, secret)
            yield self.token_request([(unit_id, 1) for unit_id in self.options.get("business_unit_ids", [])])
            return
        self.api_headers = {"apikey": key, "Accept": "application/json"}
        for unit_id in self.options.get("business_unit_ids", []):
            yield self.page_request(unit_id, 1)

    def token_request(self, pages: list[tuple[str, int]], retry: bool = False) -> scrapy.Request:
        """Ask for a bearer token, then for ``pages`` (owner mode)."""
        from spiders.trustpilot_reply import token_request

        assert self.credentials is not None
        url, headers, form = token_request(self.source, *self.credentials)
        for unit_id, _page in pages:  # a listing waiting on the token is not finished
            self._streams.setdefault(unit_id, "open")
            self.open_stream(unit_id)
        return scrapy.FormRequest(url, formdata=form, headers=headers, callback=self.after_token,
                                  errback=self.token_failed, dont_filter=True,
                                  meta={"pages": pages, "auth_retried": retry})  # fmt: skip

    def token_failed(self, failure: Any) -> None:
        self.on_error(failure)
        names = f"{self.options['api_key_env']} / {self.options['api_secret_env']}"
        self.report(f"no Trustpilot access token: check {names} (owner mode uses the private API)")
        for unit_id, _page in failure.request.meta.get("pages", []):
            self.end_stream(unit_id, ok=False)

    def after_token(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request]:
        from spiders.trustpilot_reply import read_token

        meta = meta_of(response)
        token = read_token(self.load_json(response))
        if token is None:
            self.report(f"no access_token in the answer from {response.url}")
            for unit_id, _page in meta.get("pages", []):
                self.end_stream(unit_id, ok=False)
            return
        self._secrets.append(token[0])
        self.api_headers = {"Authorization": f"Bearer {token[0]}", "Accept": "application/json"}
        for unit_id, page in meta.get("pages", []):
            yield self.page_request(unit_id, page, retried=meta.get("auth_retried", False))

    def page_request(self, unit_id: str, page: int, retried: bool = False) -> scrapy.Request:
        url = reviews_url(self.options.get("base_url", "https://api.trustpilot.com"), unit_id, page, self.owner)
        meta = {"unit_id": unit_id, "page": page, "auth_retried": retried}
        request = self.request(url, self.parse, stream=unit_id, headers=self.api_headers, meta=meta)
        return request.replace(dont_filter=True) if retried else request

    def on_error(self, failure: Any) -> Any:
        """Owner mode: a 401 on a page (the token expired) gets a new token and the page once more."""
        from scrapy.spidermiddlewares.httperror import HttpError

        request = failure.request
        meta = request.meta
        if (self.owner and failure.check(HttpError) and failure.value.response.status == 401
                and "unit_id" in meta and not meta.get("auth_retried")):  # fmt: skip
            # Not a problem yet: only a second 401 is reported.
            self.logger.info("source %r: HTTP 401, asked for a new token and tried again", self.source.name)
            return self.token_request([(meta["unit_id"], meta.get("page", 1))], retry=True)
        return super().on_error(failure)

    def closed(self, reason: str) -> None:
        # The pipeline has stored this crawl's items by now: the queue can find their mentions.
        try:
            self.record_replies()
        finally:
            super().closed(reason)

    def record_replies(self) -> None:
        if not self.replies_seen or self.db is None:
            return
        from monitor.queue.replying import record_platform_reply

        for review_id, text, when in self.replies_seen:
            try:
                # Trustpilot keeps one reply per review: the review id is the reply's id (as the channel stores it).
                record_platform_reply(self.db, self.source.name, review_id, text, review_id, when)
            except Exception as exc:  # noqa: BLE001 - one review's reply state costs only that review
                self.report(f"could not record the company reply to review {review_id}: {exc}")

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
        for mention in mentions:
            reply = company_reply(mention["raw"])
            if reply:
                self.replies_seen.append((mention["external_id"], *reply))
        yield from self.fresh(mentions, unit_id)
        stop = self.track_page(unit_id, [m["external_id"] for m in mentions])
        if stop or not mentions or not has_next_page(data) or page >= int(self.options.get("max_pages", 20)):
            self.end_stream(unit_id)
            return
        yield self.page_request(unit_id, page + 1)
