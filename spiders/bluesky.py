"""Bluesky posts through ``app.bsky.feed.searchPosts`` (newest first, 100 a page, ``cursor`` paging).

Anonymous search goes to the public AppView (``base_url``), which may refuse
it with 403. With a handle and an app password in the environment the spider
first logs in (``com.atproto.server.createSession`` on ``auth_url``) and sends
its searches to that PDS with the session token; the PDS proxies ``app.bsky.*``
calls to the AppView, which is how Bluesky clients do it. Incremental crawls
pass ``since`` (the last clean crawl's newest post minus an hour, because
``createdAt`` is set by the poster's client) and apply the overlap rule of
:class:`spiders.incremental.IncrementalSpider`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from monitor.config import SourceConfig
from spiders.incremental import IncrementalSpider, Stream, meta_of, utc_iso

PAGE_SIZE = 100  # the API's maximum
WEB_URL = "https://bsky.app/profile/{handle}/post/{rkey}"


def post_url(post: dict[str, Any]) -> str | None:
    """The bsky.app page of a post, from its ``at://did/app.bsky.feed.post/rkey`` URI."""
    uri = post.get("uri") or ""
    author = post.get("author") or {}
    who = author.get("handle") or author.get("did")
    if not uri.startswith("at://") or not who:
        return None
    return WEB_URL.format(handle=who, rkey=uri.rsplit("/", 1)[-1])


def post_to_mention(post: dict[str, Any], source: SourceConfig | None = None) -> dict[str, Any] | None:
    """Map one ``postView`` onto the stored mention shape (None for a post without a URI)."""
    if not post.get("uri"):
        return None
    record = post.get("record") or {}
    author = post.get("author") or {}
    parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
    langs = record.get("langs") or []
    return {
        "external_id": post["uri"],
        "url": post_url(post),
        "kind": "comment" if parent else "post",
        "author": author.get("handle") or author.get("did"),
        "author_reach": None,  # searchPosts returns the basic profile view, which has no follower count
        "title": None,
        "text": (record.get("text") or "").strip() or None,
        "rating": None,
        "lang": langs[0] if langs and isinstance(langs[0], str) else None,
        "posted_at": utc_iso(record.get("createdAt")) or utc_iso(post.get("indexedAt")),
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": parent,
        "raw": post,
    }


class BlueskySpider(IncrementalSpider):
    """Crawl one ``bluesky`` source: every search query, newest first."""

    name = "bluesky"
    edit_window = timedelta(hours=1)  # posts are not editable; this covers clients' clock skew

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token: str | None = None

    def search_url(self, stream: Stream, cursor: str | None = None) -> str:
        params: dict[str, Any] = {"q": stream.key.removeprefix("search:"), "limit": PAGE_SIZE, "sort": "latest"}
        since = self.since(stream)
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if cursor:
            params["cursor"] = cursor
        # Logged in, ask our PDS (it proxies to the AppView); anonymous, ask the public AppView.
        host = self.options["auth_url"] if self.token else self.options["base_url"]
        return f"{host.rstrip('/')}/xrpc/app.bsky.feed.searchPosts?{urlencode(params)}"

    def request(self, stream: Stream, cursor: str | None = None) -> scrapy.Request:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return scrapy.Request(
            self.search_url(stream, cursor),
            callback=self.parse,
            errback=self.on_error,
            headers=headers,
            meta={"stream": stream.key},
        )

    async def start(self) -> AsyncIterator[scrapy.Request]:
        handle = self.secret("handle_env", required=False)
        password = self.secret("app_password_env", required=False)
        if handle and password:
            yield self.login_request(handle, password)
            return
        if handle or password:
            missing = self.options["app_password_env" if handle else "handle_env"]
            self.report(
                f"{self.source.key}: environment variable {missing} is not set (source {self.source.name!r}); "
                "Bluesky login needs both a handle and an app password, so searching anonymously"
            )
        for request in self.search_requests():
            yield request

    def search_requests(self) -> Iterator[scrapy.Request]:
        for query in self.options["search"]:
            yield self.request(self.stream(f"search:{query}", f"query {query!r}"))

    def login_request(self, handle: str, password: str) -> scrapy.Request:
        return scrapy.Request(
            f"{self.options['auth_url'].rstrip('/')}/xrpc/com.atproto.server.createSession",
            method="POST",
            body=json.dumps({"identifier": handle, "password": password}),
            headers={"Content-Type": "application/json"},
            callback=self.after_login,
            errback=self.on_error,
            meta={"login": True},
        )

    def after_login(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request]:
        data = self.read_json(response, None)
        token = data.get("accessJwt") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            self.report(f"login at {response.url} gave no accessJwt; nothing was searched")
            return
        self.token = token
        self._secrets.append(token)
        yield from self.search_requests()

    def error_hint(self, status: int, request: scrapy.Request) -> str:
        handle_env, password_env = self.options["handle_env"], self.options["app_password_env"]
        if request.meta.get("login"):
            return (
                f"login failed; check {handle_env} and {password_env} (an app password from Bluesky's "
                "Settings → Privacy and security → App passwords, not the account password); nothing was searched"
            )
        if status in (401, 403) and not self.token:
            return (
                f"Bluesky refused an anonymous search; set {handle_env} and {password_env} (an app password) "
                f"so source {self.source.name!r} logs in"
            )
        if status in (401, 403):
            return f"the session was refused; check the app password in {password_env}"
        return ""

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """Mentions for every post on the page, then the next page's request when paging goes on."""
        stream = self.stream(meta_of(response).get("stream", "search:?"))
        data = self.read_json(response, stream)
        if data is None:
            return
        posts = data.get("posts") if isinstance(data, dict) else None
        if not isinstance(posts, list):
            self.fail(stream, f"unexpected response from {response.url}: no 'posts' list")
            return
        items = [p for p in posts if isinstance(p, dict)]
        mentions = self.map_page(items, lambda p: post_to_mention(p, self.source), response, stream)
        fresh, more = self.take(stream, mentions, response.url)
        cursor = data.get("cursor")
        if more and posts and isinstance(cursor, str) and cursor:
            yield self.request(stream, cursor)  # first, so the download overlaps storing this page
        yield from fresh
