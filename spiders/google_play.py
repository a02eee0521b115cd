"""Google Play reviews of the developer's own apps (Play Developer API) → mentions, and the reply channel.

``GET {base_url}/androidpublisher/v3/applications/{packageName}/reviews?maxResults=100&token=…`` with a
service account's access token (scope ``androidpublisher``). **The API returns only reviews created or
modified in the last week** (and only reviews with text): a crawl gap longer than that loses reviews for
good, so schedule the source at least daily (``every = "1h"`` recommended); a crawl after a longer gap says
so in its run's messages. Each crawl reads the whole week (a few pages at most) and the store keeps edits
as revisions.

Replies: ``POST …/reviews/{reviewId}:reply`` ``{"replyText"}`` (at most 350 characters). A reply replaces
the previous one, so editing is posting again and a repeat cannot post twice; the API cannot delete one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response

from monitor.brands import brand_for
from monitor.config import SourceConfig
from monitor.queue.channels import ChannelError, PostedReply, register
from spiders.api_base import clean_text, dig, meta_of, star_rating
from spiders.google_owner import PLAY_SCOPE, GoogleApi, GoogleOwnerSpider, service_account_credentials

BASE_URL = "https://androidpublisher.googleapis.com"
MAX_REPLY_CHARS = 350
WINDOW = timedelta(days=7)  # how far back reviews.list reaches
LAST_CRAWL_KEY = "last_clean_crawl"
WINDOW_NOTE = "the Play Developer API returns only the last week's reviews"


def reviews_url(base_url: str, package: str, max_results: int, token: str | None = None, language: str = "") -> str:
    query: dict[str, Any] = {"maxResults": max_results}
    if token:
        query["token"] = token
    if language:
        query["translationLanguage"] = language
    return (f"{base_url.rstrip('/')}/androidpublisher/v3/applications/{quote(package, safe='')}/reviews"
            f"?{urlencode(query)}")  # fmt: skip


def timestamp(value: Any) -> str | None:
    """A Play ``Timestamp`` ({seconds, nanos}; seconds may be a JSON string) as UTC ISO 8601."""
    seconds = dig(value, "seconds")
    try:
        moment = datetime.fromtimestamp(int(seconds), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return moment.isoformat()


def reply_id_for(review_id: str) -> str:
    """The id we store for the developer's reply to a review: Play keeps one reply per review, no id."""
    return f"{review_id}:reply"


def _comment(review: dict[str, Any], kind: str) -> dict[str, Any]:
    comments = review.get("comments")
    for comment in comments if isinstance(comments, list) else []:
        found = dig(comment, kind)
        if isinstance(found, dict):
            return found
    return {}


def _lang(value: Any) -> str | None:
    text = clean_text(value)
    return text.replace("_", "-").split("-")[0].lower() if text else None


def review_to_mention(review: dict[str, Any], package: str, brand: str = "", location: str = "") -> dict[str, Any]:
    """One Play review as a mention; ``raw`` is the review plus its ``packageName`` (needed to reply)."""
    review_id = str(review["reviewId"])
    user = _comment(review, "userComment")
    if not user:
        raise ValueError(f"review {review_id!r} has no userComment")
    return {
        "external_id": review_id,
        "url": f"https://play.google.com/store/apps/details?{urlencode({'id': package, 'reviewId': review_id})}",
        "kind": "review",
        "author": clean_text(review.get("authorName")),
        "author_reach": None,
        "title": None,
        "text": clean_text(user.get("text")),  # Play starts the text with a tab
        "rating": star_rating(user.get("starRating")),
        "lang": _lang(user.get("reviewerLanguage")),
        "posted_at": timestamp(user.get("lastModified")),
        "experienced_at": None,
        "location": location,
        "brand": brand,
        "parent_id": None,
        "raw": {"packageName": package, **review},
    }


class GooglePlaySpider(GoogleOwnerSpider):
    """Crawl one ``google_play`` source: the last week's reviews of each configured app."""

    name = "google_play"

    def make_credentials(self) -> tuple[Any, list[str]]:
        return service_account_credentials(self.source, PLAY_SCOPE)

    def first_requests(self) -> Iterator[scrapy.Request]:
        self.check_gap()
        for package in self.options.get("package_names", []):
            yield self.page_request(package, 1)

    def check_gap(self) -> None:
        """Say so when the last clean crawl is older than the API's window: reviews in between are lost."""
        db = self.db
        if db is None:
            return
        from monitor.store import get_source_state

        last = get_source_state(db, self.source.name, LAST_CRAWL_KEY)
        if last is None:
            self.logger.info("source %r: %s; schedule it at least daily (every = \"1h\")", self.source.name,
                             WINDOW_NOTE)  # fmt: skip
            return
        try:
            gap = self.started - datetime.fromisoformat(last)
        except (TypeError, ValueError):
            return
        if gap > WINDOW:
            self.report(f"{WINDOW_NOTE}, and the last complete crawl was {gap.days} days ago: reviews written "
                        "in between and not edited since cannot be read; crawl at least daily")  # fmt: skip

    def page_request(self, package: str, page: int, token: str | None = None) -> scrapy.Request:
        url = reviews_url(self.options.get("base_url", BASE_URL), package, int(self.options.get("max_results", 100)),
                          token, self.options.get("translation_language", ""))  # fmt: skip
        return self.api_request(url, self.parse, stream=package, meta={"package": package, "page": page})

    def parse_page(self, response: Response) -> Iterator[dict[str, Any] | scrapy.Request]:
        meta = meta_of(response)
        package, page = meta.get("package", ""), meta.get("page", 1)
        data = self.load_json(response)
        if data is None:
            return
        reviews = dig(data, "reviews") if isinstance(data, dict) else None
        if reviews is None and isinstance(data, dict) and ("tokenPagination" in data or "pageInfo" in data or not data):
            reviews = []  # no reviews this week: Google sends {} or leaves the list out
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: no reviews list")
            self.end_stream(package, ok=False)
            return
        usable = [r for r in reviews if isinstance(r, dict) and isinstance(r.get("reviewId"), str) and r["reviewId"]]
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without a reviewId in {response.url}; skipped")
            self.end_stream(package, ok=False)
        brand = brand_for(self.source, package)
        mentions = self.map_page(usable, lambda r: review_to_mention(r, package, brand, self.source.location),
                                 response, package)  # fmt: skip
        yield from self.fresh(mentions, package)
        for review in usable:
            reply = _comment(review, "developerComment")
            if reply:
                self.saw_owner_reply(review["reviewId"], reply.get("text"), reply_id_for(review["reviewId"]),
                                     timestamp(reply.get("lastModified")))  # fmt: skip
        token = dig(data, "tokenPagination", "nextPageToken")
        if not isinstance(token, str) or not token:
            self.end_stream(package)
            return
        if page >= int(self.options.get("max_pages", 20)):
            self.report(f"app {package}: stopped after max_pages = {page} pages; {WINDOW_NOTE}, so the rest of "
                        "the week may be lost: raise max_pages")  # fmt: skip
            self.end_stream(package, ok=False)
            return
        yield self.page_request(package, page + 1, token)

    def before_close(self, db: Any, reason: str) -> None:
        from monitor.store import set_source_state

        clean = reason == "finished" and not self.storage_failed and bool(self._streams)
        if clean and all(state == "done" for state in self._streams.values()):
            set_source_state(db, self.source.name, LAST_CRAWL_KEY, self.started.isoformat())


# ------------------------------------------------------------------ replies


class GooglePlayChannel:
    name = "google_play"
    platform = "Google Play"
    max_length = MAX_REPLY_CHARS
    can_edit = True  # a new reply replaces the old one
    can_delete = False  # the API has no way to delete a reply

    def length(self, text: str) -> int:
        return len(text)

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        package = dig(mention, "raw", "packageName")
        if not isinstance(package, str) or not package:
            packages = source.options.get("package_names") or []
            if len(packages) != 1:
                raise ChannelError(f"source {source.name!r}: review {mention.get('external_id')!r} names no app; "
                                   "crawl the source again")  # fmt: skip
            package = packages[0]
        review_id = str(mention["external_id"])
        url = (f"{source.options.get('base_url', BASE_URL).rstrip('/')}/androidpublisher/v3/applications/"
               f"{quote(package, safe='')}/reviews/{quote(review_id, safe='')}:reply")  # fmt: skip
        credentials, secrets = service_account_credentials(source, PLAY_SCOPE)
        answer = GoogleApi(source, "Google Play", credentials, secrets).call("POST", url, {"replyText": text})
        posted_at = timestamp(dig(answer, "result", "lastEdited"))
        return PostedReply(external_id=reply_id_for(review_id), posted_at=posted_at)

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        return self.post(source, mention, text, "")

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        raise ChannelError(f"source {source.name!r}: Google Play replies cannot be deleted through the API")


@register("google_play")
def google_play_channel() -> GooglePlayChannel:
    return GooglePlayChannel()
