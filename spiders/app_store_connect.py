"""App Store Connect (the owner API): every customer review of the team's app, its developer response, and replies.

Reading: ``GET {base_url}/v1/apps/{app_id}/customerReviews?sort=-createdDate&limit=200&include=response``,
newest first, paging by ``links.next`` (followed only on the configured host, so the token never travels
elsewhere). Each review's developer response comes in ``included`` (``customerReviewResponses``:
``responseBody``, ``lastModifiedDate``, ``state`` PUBLISHED | PENDING_PUBLISH) and is kept in the mention's
``raw`` as ``developerResponse``; a response nobody posted from this tool is handed to the reply queue at the
end of the crawl, so the item shows as replied with the text used.

Replying: ``POST /v1/customerReviewResponses`` creates the response or, when one exists, overwrites it (Apple:
"Create or update a response to a customer review"), so an edit is the same call; ``DELETE
/v1/customerReviewResponses/{id}`` removes it. Before posting, the review's current response is read
(``GET /v1/customerReviews/{id}/response``): a response with the same text means an earlier try got through,
and it is returned instead of being posted again.

Auth: an ES256 JWT signed with the team's ``.p8`` key, made fresh for each request (they are cheap and a
crawl can outlast one): header ``kid`` = key id, ``typ`` JWT; claims ``iss`` = issuer id, ``iat``, ``exp``
15 minutes later (Apple allows at most 20), ``aud`` ``appstoreconnect-v1``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import scrapy
from scrapy.http import Response

from monitor.config import ConfigError, SourceConfig, secret_from_env
from monitor.queue.channels import ChannelError, PostedReply, ReplyRejected, register
from spiders.api_base import ApiSpider, clean_text, dig, meta_of, star_rating, utc_iso
from spiders.http_reply import HttpClient, Uncertain

API = "https://api.appstoreconnect.apple.com"
AUDIENCE = "appstoreconnect-v1"
TOKEN_LIFETIME = 15 * 60  # seconds; Apple refuses tokens that live longer than 20 minutes
PAGE_SIZE = 200  # the API's maximum
MAX_RESPONSE = 5970  # characters Apple accepts in a developer response
CHANNEL = "app_store_connect"


class TokenError(Exception):
    """The key, key id or issuer id is missing or unusable; the message names the config key, never the key."""


def make_token(source: SourceConfig, now: float | None = None) -> tuple[str, list[str]]:
    """A signed JWT for this source's team and the secrets it used (to scrub them from messages)."""
    import jwt

    try:
        issuer = secret_from_env(source, "issuer_id_env")
        key_id = secret_from_env(source, "key_id_env")
        key_path = secret_from_env(source, "private_key_path_env")
    except ConfigError as exc:
        raise TokenError(str(exc)) from None
    try:
        with open(key_path, encoding="ascii") as handle:
            key = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        env = source.options["private_key_path_env"]
        raise TokenError(
            f"{source.key}.private_key_path_env: cannot read the key file named by {env} "
            f"(source {source.name!r}): {type(exc).__name__}"
        ) from None
    issued = int(now if now is not None else time.time())
    claims = {"iss": issuer, "iat": issued, "exp": issued + TOKEN_LIFETIME, "aud": AUDIENCE}
    try:
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": key_id, "typ": "JWT"})
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # cryptography's message can quote the key file's first line; only the type is safe to show.
        raise TokenError(
            f"{source.key}.private_key_path_env: the key file is not an ES256 (P-256) private key in PEM "
            f"form, as App Store Connect issues them (source {source.name!r}): {type(exc).__name__}"
        ) from None
    return token, [token, key, issuer, key_id]


def reviews_url(base_url: str, app_id: str) -> str:
    query = urlencode({"sort": "-createdDate", "limit": PAGE_SIZE, "include": "response"})
    return f"{base_url.rstrip('/')}/v1/apps/{quote(app_id, safe='')}/customerReviews?{query}"


def responses_by_id(data: Any) -> dict[str, dict[str, Any]]:
    """The ``customerReviewResponses`` of a page's ``included``, by id."""
    included = dig(data, "included")
    out: dict[str, dict[str, Any]] = {}
    for entry in included if isinstance(included, list) else []:
        if isinstance(entry, dict) and entry.get("type") == "customerReviewResponses" and entry.get("id"):
            out[str(entry["id"])] = entry
    return out


def developer_response(review: dict[str, Any], responses: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A review's developer response as ``{id, body, modified_at, state}``, or None."""
    ref = dig(review, "relationships", "response", "data")
    response_id = str(ref["id"]) if isinstance(ref, dict) and ref.get("id") else None
    if response_id is None:
        return None
    entry = responses.get(response_id) or {}
    attributes = entry.get("attributes") if isinstance(entry.get("attributes"), dict) else {}
    return {
        "id": response_id,
        "body": clean_text(attributes.get("responseBody")),
        "modified_at": utc_iso(attributes.get("lastModifiedDate")),
        "state": clean_text(attributes.get("state")),
    }


def review_to_mention(
    review: dict[str, Any], responses: dict[str, dict[str, Any]], app_id: str, source: SourceConfig | None = None
) -> dict[str, Any]:
    """One ``customerReviews`` resource as a mention; its developer response rides along in ``raw``."""
    attributes = review.get("attributes") if isinstance(review.get("attributes"), dict) else {}
    raw = dict(review)
    raw["appId"] = app_id
    raw["developerResponse"] = developer_response(review, responses)
    return {
        "external_id": str(review["id"]),
        # Reviews have no page of their own; the app's page lists them.
        "url": f"https://apps.apple.com/app/id{quote(app_id, safe='')}?see-all=reviews",
        "kind": "review",
        "author": clean_text(attributes.get("reviewerNickname")),
        "author_reach": None,
        "title": clean_text(attributes.get("title")),
        "text": clean_text(attributes.get("body")),
        "rating": star_rating(attributes.get("rating")),
        "lang": None,  # the API gives the storefront (territory), not the review's language
        "posted_at": utc_iso(attributes.get("createdDate")),
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": None,
        "raw": raw,
    }


class AppStoreConnectSpider(ApiSpider):
    """Crawl one ``app_store_connect`` source: each app's customer reviews, newest first."""

    name = "app_store_connect"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (review id, response) seen with a developer response: handed to the queue once stored.
        self.responses_seen: list[tuple[str, dict[str, Any]]] = []

    @property
    def base_url(self) -> str:
        return self.options.get("base_url", API).rstrip("/")

    def auth_headers(self) -> dict[str, str] | None:
        try:
            token, secrets = make_token(self.source)
        except TokenError as exc:
            self.report(str(exc))
            return None
        self._secrets.extend(secrets)
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        if self.auth_headers() is None:
            return
        app_id = str(self.options["app_id"])
        request = self.page_request(reviews_url(self.base_url, app_id), app_id, 1)
        if request is not None:
            yield request

    def page_request(self, url: str, app_id: str, page: int, retried: bool = False) -> scrapy.Request | None:
        headers = self.auth_headers()
        if headers is None:
            self.end_stream(app_id, ok=False)
            return None
        request = self.request(url, self.parse, stream=app_id, headers=headers,
                               meta={"app_id": app_id, "page": page, "auth_retried": retried})  # fmt: skip
        if retried:
            request = request.replace(dont_filter=True)
        return request

    def on_error(self, failure: Any) -> Any:
        """A 401 is retried once with a new token (a clock step can make one look expired); the rest as usual."""
        from scrapy.spidermiddlewares.httperror import HttpError

        request = failure.request
        if failure.check(HttpError) and failure.value.response.status == 401 and not request.meta.get("auth_retried"):
            meta = request.meta
            retry = self.page_request(request.url, meta.get("app_id", ""), meta.get("page", 1), retried=True)
            if retry is not None:
                # Not a problem yet: only a second 401 (below) is reported.
                self.logger.info("source %r: HTTP 401, signed a new token and tried again", self.source.name)
                return retry
            return None
        if failure.check(HttpError) and failure.value.response.status in (401, 403):
            super().on_error(failure)
            self.report(
                "App Store Connect refused the token: check the key id, issuer id and .p8 key in the "
                f"environment variables named by {self.source.key}, and that the key has the Customer Support, "
                "App Manager or Admin role"
            )
            return None
        return super().on_error(failure)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        meta = meta_of(response)
        app_id, page = meta.get("app_id", ""), meta.get("page", 1)
        data = self.load_json(response)
        if data is None:
            return
        reviews = dig(data, "data")
        if not isinstance(reviews, list):
            self.report(f"unexpected response from {response.url}: no data list")
            self.end_stream(app_id, ok=False)
            return
        usable = [r for r in reviews if isinstance(r, dict) and r.get("id") and r.get("type", "customerReviews")
                  == "customerReviews"]  # fmt: skip
        if len(usable) < len(reviews):
            self.report(f"{len(reviews) - len(usable)} review(s) without an id in {response.url}; skipped")
        responses = responses_by_id(data)
        mentions = self.map_page(usable, lambda r: review_to_mention(r, responses, app_id, self.source), response,
                                 app_id)  # fmt: skip
        for mention in mentions:
            answer = mention["raw"].get("developerResponse")
            if answer and answer.get("body"):
                self.responses_seen.append((mention["external_id"], answer))
        yield from self.fresh(mentions, app_id)
        stop = self.track_page(app_id, [m["external_id"] for m in mentions])
        next_url = dig(data, "links", "next")
        if stop or not mentions or not isinstance(next_url, str) or page >= int(self.options.get("max_pages", 20)):
            self.end_stream(app_id)
            return
        if urlsplit(next_url).netloc != urlsplit(self.base_url).netloc:
            self.report(f"links.next of {response.url} points at another host; not followed")
            self.end_stream(app_id, ok=False)
            return
        request = self.page_request(next_url, app_id, page + 1)
        if request is not None:
            yield request

    def closed(self, reason: str) -> None:
        # The pipeline has stored this crawl's items by now: the queue can find their mentions.
        try:
            self.record_responses()
        finally:
            super().closed(reason)

    def record_responses(self) -> None:
        if not self.responses_seen or self.db is None:
            return
        from monitor.queue.replying import record_platform_reply

        for external_id, answer in self.responses_seen:
            try:
                record_platform_reply(self.db, self.source.name, external_id, answer["body"], answer["id"],
                                      answer.get("modified_at"))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one review's reply state costs only that review
                self.report(f"could not record the developer response to review {external_id}: {exc}")


# ------------------------------------------------------------------ channel


@register("app_store_connect")
class AppStoreConnectChannel:
    """Developer responses to App Store reviews (one per review; posting again replaces it)."""

    name = CHANNEL
    platform = "App Store"
    max_length = MAX_RESPONSE
    can_edit = True
    can_delete = True

    def length(self, text: str) -> int:
        return len(text)

    def _client(self, source: SourceConfig) -> tuple[HttpClient, dict[str, str]]:
        client = HttpClient(source, "App Store Connect")
        try:
            token, secrets = make_token(source)
        except TokenError as exc:
            raise ChannelError(str(exc)) from None
        client.secrets.extend(secrets)
        return client, {"Authorization": f"Bearer {token}"}

    def _url(self, source: SourceConfig, path: str) -> str:
        return source.options.get("base_url", API).rstrip("/") + path

    def _call(self, source: SourceConfig, method: str, path: str, **kwargs: Any) -> Any:
        """One call; a 401 is tried once more with a freshly signed token. Returns the decoded answer."""
        client, headers = self._client(source)
        answer = client.call(method, self._url(source, path), headers=headers, **kwargs)
        if answer.status == 401:
            client, headers = self._client(source)
            answer = client.call(method, self._url(source, path), headers=headers, **kwargs)
        if answer.status == 404 and method == "GET":
            return None
        if answer.status in (401, 403):
            raise client.error(
                f"HTTP {answer.status} from {path}: {answer.detail()} (check the key id, issuer id and key file, and "
                "that the key's role may respond to reviews: Admin, App Manager or Customer Support)"
            )
        if answer.status == 409 or answer.status == 422:
            raise client.error(f"HTTP {answer.status}: {answer.detail()}", ReplyRejected)
        if answer.status >= 400:
            raise client.error(f"HTTP {answer.status} from {path}: {answer.detail()}")
        return answer.json() if answer.body else {}

    def current(self, source: SourceConfig, review_id: str) -> dict[str, Any] | None:
        """The review's developer response now (``{id, body, modified_at, state}``), or None."""
        data = self._call(source, "GET", f"/v1/customerReviews/{quote(review_id, safe='')}/response")
        entry = dig(data, "data")
        if not isinstance(entry, dict) or not entry.get("id"):
            return None
        attributes = entry.get("attributes") if isinstance(entry.get("attributes"), dict) else {}
        return {
            "id": str(entry["id"]),
            "body": attributes.get("responseBody"),
            "modified_at": utc_iso(attributes.get("lastModifiedDate")),
            "state": attributes.get("state"),
        }

    def _posted(self, entry: dict[str, Any]) -> PostedReply:
        return PostedReply(external_id=entry["id"], posted_at=entry.get("modified_at"))

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        review_id = str(mention["external_id"])
        existing = self.current(source, review_id)
        if existing and (existing.get("body") or "").strip() == text.strip():
            return self._posted(existing)  # an earlier try got through: posting again would only rewrite it
        return self._send(source, review_id, text)

    def _send(self, source: SourceConfig, review_id: str, text: str) -> PostedReply:
        body = {
            "data": {
                "type": "customerReviewResponses",
                "attributes": {"responseBody": text},
                "relationships": {"review": {"data": {"type": "customerReviews", "id": review_id}}},
            }
        }
        try:
            data = self._call(source, "POST", "/v1/customerReviewResponses", json_body=body)
        except Uncertain:
            # The response may exist: read back; only when it does not is one more try safe.
            existing = self.current(source, review_id)
            if existing and (existing.get("body") or "").strip() == text.strip():
                return self._posted(existing)
            data = self._call(source, "POST", "/v1/customerReviewResponses", json_body=body)
        entry = dig(data, "data")
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ChannelError(f"App Store Connect (source {source.name!r}): the answer to the reply has no id")
        attributes = entry.get("attributes") if isinstance(entry.get("attributes"), dict) else {}
        return PostedReply(external_id=str(entry["id"]), posted_at=utc_iso(attributes.get("lastModifiedDate")))

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        # The create call overwrites the review's one response; Apple keeps its id or issues a new one.
        return self._send(source, str(mention["external_id"]), text)

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        try:
            self._call(source, "DELETE", f"/v1/customerReviewResponses/{quote(reply_id, safe='')}")
        except ChannelError as exc:
            if "HTTP 404" not in str(exc):  # already gone: what was asked for
                raise
