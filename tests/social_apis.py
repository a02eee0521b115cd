"""A loopback server speaking the Hacker News (Algolia), Mastodon, Bluesky and RSS/Atom formats.

Run as a subprocess like ``tests/mockserver.py``: it listens on port 0 and
prints its base URL as the first line of stdout. Payloads follow the real
platforms' shapes field for field (trimmed of what the spiders never read).

* ``/hn/api/v1/search_by_date`` — Algolia. Queries: ``acme`` (250 hits, 10 min
  apart, stories and comments with HTML and entities), ``bench`` (10,000 hits,
  for ``bench/crawl.py``; the real API stops at 1,000 hits, ``paginationLimitedTo``),
  ``error`` (500), ``malformed`` (broken JSON), ``limited`` (429 with
  ``Retry-After: 1`` once, then results), anything else (no hits).
  ``numericFilters=created_at_i>T`` is honoured.
* ``/mastodon/api/v1/timelines/tag/{tag}`` — tag ``acmecoffee`` (100 statuses,
  ``Link`` header paging with ``max_id``), ``members`` (401 without a token),
  ``broken`` (malformed JSON), ``limited`` (429 once, with Mastodon's
  ``X-RateLimit-Reset`` one second ahead and no ``Retry-After``; then 5 statuses),
  ``limitedlong`` (429 every time, reset an hour ahead). ``/mastodon/api/v2/search`` needs
  ``Authorization: Bearer mastodon-token-123``.
* ``/appview/xrpc/app.bsky.feed.searchPosts`` answers 403 to everyone, like the
  public AppView refusing anonymous search; ``/pds/xrpc/com.atproto.server.createSession``
  logs in ``acme.bsky.social`` / ``app-pass-1234`` and ``/pds/xrpc/app.bsky.feed.searchPosts``
  answers with that session's token: query ``acme`` (150 posts, ``cursor`` paging,
  ``since`` honoured), ``malformed``.
* ``/feeds/news.rss`` (RSS 2.0, ETag / Last-Modified, 304 on a matching
  ``If-None-Match``), ``/feeds/alerts.atom`` (a Google Alerts Atom feed),
  ``/feeds/empty.rss``, ``/feeds/broken.rss``, ``/feeds/page.html``, ``/feeds/error``
  (500), ``/private/feed.rss`` (disallowed by ``/robots.txt``).
* Controls: ``/__set?edited=1`` edits the newest HN comment, the newest
  ``#acmecoffee`` status (``edited_at``) and the first RSS item (new ETag);
  ``/__add?n=3`` publishes n newer HN hits, statuses and posts; ``/__hits``
  lists the requests so far (path, method, Authorization, If-None-Match).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.subprocess_server import SubprocessServer

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
ROBOTS = "User-agent: *\nDisallow: /private\nAllow: /\n"
MASTODON_TOKEN = "mastodon-token-123"
BSKY_HANDLE = "acme.bsky.social"
BSKY_PASSWORD = "app-pass-1234"
BSKY_JWT = "eyJhbGciOiJIUzI1NiJ9.session-jwt-for-tests.sig"
HN_PAGINATION_LIMIT = 1000


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ------------------------------------------------------------- Hacker News


def hn_hit(i: int, edited: bool = False) -> dict[str, Any]:
    """Hit number ``i`` of the ``acme`` corpus (0 is the newest); every third is a story."""
    created = NOW - timedelta(minutes=10 * i)
    object_id = 46000000 - i
    author = f"hn_user{i % 17}"
    story_index = i - i % 3
    story_id = 46000000 - story_index
    base = {
        "objectID": str(object_id),
        "created_at": _iso_ms(created),
        "created_at_i": int(created.timestamp()),
        "updated_at": _iso_ms(created + timedelta(minutes=5)),
        "author": author,
        "story_id": story_id,
    }
    if i % 3 == 0:
        ask = i % 6 == 0
        return {
            **base,
            "title": f"Ask HN: Is Acme Coffee's app down for you? ({i})" if ask else f"Acme Coffee raises prices ({i})",
            "url": None if ask else f"https://news.example/acme-{i}",
            "story_text": "The Acme app crashes at checkout &amp; support won&#x27;t answer.<p>Anyone else?"
            if ask
            else None,
            "points": 40 + i,
            "num_comments": 2,
            "parent_id": None,
            "_tags": ["story", f"author_{author}", f"story_{object_id}", *(["ask_hn"] if ask else [])],
            "_highlightResult": {"title": {"value": "Acme Coffee", "matchLevel": "full", "matchedWords": ["acme"]}},
        }
    parent = story_id if i % 3 == 1 else object_id + 1
    text = (
        "I tried Acme&#x27;s new latte.<p>It was &quot;fine&quot; but the wait was 20 minutes. "
        '<a href="https:&#x2F;&#x2F;example.com&#x2F;acme" rel="nofollow">https:&#x2F;&#x2F;example.com&#x2F;acme</a>'
    )
    if edited:
        text = "EDIT: Acme refunded me &amp; apologised.<p>Changing my mind."
    return {
        **base,
        "comment_text": text,
        "story_title": f"Acme Coffee raises prices ({story_index})",
        "story_url": f"https://news.example/acme-{story_index}",
        "parent_id": parent,
        "points": None,
        "_tags": ["comment", f"author_{author}", f"story_{story_id}"],
        "_highlightResult": {"comment_text": {"value": "…", "matchLevel": "full", "matchedWords": ["acme"]}},
    }


def bench_hit(i: int) -> dict[str, Any]:
    hit = hn_hit(i % 250)
    created = NOW - timedelta(seconds=30 * i)
    return {
        **hit,
        "objectID": str(30000000 - i),
        "created_at": _iso_ms(created),
        "created_at_i": int(created.timestamp()),
    }


# --------------------------------------------------------------- Mastodon


def mastodon_status(i: int, host: str, edited: bool = False, prefix: str = "tag") -> dict[str, Any]:
    created = NOW - timedelta(minutes=7 * i)
    status_id = str(113500000000000000 - i * 1000 - (0 if prefix == "tag" else 1))
    remote = i % 4 == 3
    username = f"{prefix}user{i % 9}"
    acct = f"{username}@other.example" if remote else username
    domain = "other.example" if remote else "mastodon.example"
    content = (
        f'<p>Waited 20 min at <a href="https://{host}/tags/acmecoffee" class="mention hashtag" rel="tag">'
        f"#<span>acmecoffee</span></a> today &amp; the latte was cold ({i})</p><p>Never again.<br />Seriously.</p>"
    )
    if edited:
        content = "<p>Update: Acme replied and fixed it &#8212; thanks!</p>"
    reply = i % 5 == 4
    return {
        "id": status_id,
        "created_at": _iso_ms(created),
        "in_reply_to_id": str(113500000000000000 - (i + 1) * 1000) if reply else None,
        "in_reply_to_account_id": "1091" if reply else None,
        "sensitive": i % 10 == 7,
        "spoiler_text": "coffee rant" if i % 10 == 7 else "",
        "visibility": "public",
        "language": "de" if i % 6 == 5 else "en",
        "uri": f"https://{domain}/users/{username}/statuses/{status_id}",
        "url": f"https://{domain}/@{username}/{status_id}",
        "replies_count": i % 3,
        "reblogs_count": 0,
        "favourites_count": i % 7,
        "edited_at": _iso_ms(NOW + timedelta(minutes=1)) if edited else None,
        "content": content,
        "reblog": None,
        "application": None,
        "account": {
            "id": str(1000 + i % 9),
            "username": username,
            "acct": acct,
            "display_name": f"User {i % 9}",
            "locked": False,
            "bot": False,
            "created_at": "2022-11-01T00:00:00.000Z",
            "url": f"https://{domain}/@{username}",
            "followers_count": 10 * (i % 9) + 3,
            "following_count": 50,
            "statuses_count": 400,
        },
        "media_attachments": [],
        "mentions": [],
        "tags": [{"name": "acmecoffee", "url": f"https://{host}/tags/acmecoffee"}],
        "emojis": [],
        "card": None,
        "poll": None,
    }


# ---------------------------------------------------------------- Bluesky


def bsky_post(i: int) -> dict[str, Any]:
    created = NOW - timedelta(minutes=3 * i)
    did = f"did:plc:user{i % 11:04d}abcdefghijklmn"
    handle = f"user{i % 11}.bsky.social"
    rkey = f"3lb{i:010d}"
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": f"Acme Coffee got my order wrong again 🙄 ({i})",
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "langs": ["ja"] if i % 8 == 7 else ["en"],
    }
    if i % 4 == 2:
        parent_uri = f"at://did:plc:brand0000abcdefghijklmn/app.bsky.feed.post/3lparent{i:06d}"
        ref = {"uri": parent_uri, "cid": f"bafyparent{i}"}
        record["reply"] = {"root": ref, "parent": ref}
    return {
        "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
        "cid": f"bafyreib{i:010d}",
        "author": {"did": did, "handle": handle, "displayName": f"User {i % 11}", "labels": []},
        "record": record,
        "replyCount": i % 2,
        "repostCount": 0,
        "likeCount": i % 5,
        "quoteCount": 0,
        "indexedAt": _iso_ms(created + timedelta(seconds=2)),
        "labels": [],
    }


# ------------------------------------------------------------------ feeds

LAST_MODIFIED = format_datetime(NOW, usegmt=True)


def rss_feed(edited: bool, added: int) -> bytes:
    items = []
    for i in range(-added, 5):
        published = format_datetime(NOW - timedelta(hours=i + 1), usegmt=True)
        description = (
            "&lt;p&gt;Customers say &lt;b&gt;Acme&lt;/b&gt; raised prices&amp;nbsp;again &amp;amp; "
            "service slowed.&lt;/p&gt;"
        )
        if edited and i == 0:
            description = "&lt;p&gt;Correction: Acme says prices are unchanged.&lt;/p&gt;"
        guid = f'<guid isPermaLink="false">news-{i}</guid>' if i != 3 else ""  # one item with a link only
        items.append(
            f"<item><title>Acme Coffee &amp; the price hike ({i})</title>"
            f"<link>https://news.example/acme-prices-{i}</link>{guid}<pubDate>{published}</pubDate>"
            f"<dc:creator>Jo Reporter</dc:creator><description>{description}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>Acme news</title><link>https://news.example/</link><description>News about Acme"
        f"</description><language>en-us</language><lastBuildDate>{LAST_MODIFIED}</lastBuildDate>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


ATOM_ALERTS = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:idx="urn:atom-extension:indexing">
<id>tag:google.com,2005:reader/user/06807031914929345698/state/com.google/alerts/10604166159629661594</id>
<title>Google Alert - acme coffee</title>
<link href="https://www.google.com/alerts/feeds/06807031914929345698/10604166159629661594" rel="self"></link>
<updated>2026-11-22T10:00:00Z</updated>
<entry>
<id>tag:google.com,2013:googlealerts/feed:12345678901234567890</id>
<title type="html">&lt;b&gt;Acme Coffee&lt;/b&gt; opens a downtown store</title>
<link href="https://www.google.com/url?rct=j&amp;sa=t&amp;url=https://local.example/acme-opens&amp;ct=ga&amp;cd=CAIyGjk&amp;usg=AOvVaw1"></link>
<published>2026-11-22T09:00:00Z</published>
<updated>2026-11-22T09:00:00Z</updated>
<content type="html">The new &lt;b&gt;Acme Coffee&lt;/b&gt; store: a 30 minute wait &amp;amp; no milk.</content>
<author><name></name></author>
</entry>
<entry>
<id>tag:google.com,2013:googlealerts/feed:12345678901234567891</id>
<title type="html">Why &lt;b&gt;Acme&lt;/b&gt; baristas are leaving</title>
<link href="https://www.google.com/url?rct=j&amp;sa=t&amp;url=https://biz.example/acme-staff&amp;ct=ga"></link>
<published>2026-11-21T16:30:00Z</published>
<updated>2026-11-21T16:30:00Z</updated>
<content type="html">Former staff describe understaffed shifts at &lt;b&gt;Acme&lt;/b&gt; stores.</content>
<author><name></name></author>
</entry>
</feed>
"""

EMPTY_RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Nothing yet</title>'
    b"<link>https://news.example/</link><description>x</description></channel></rss>"
)
BROKEN_RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken<item><title>unclosed &bogus; <<<'
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Not a feed</title></head><body><p>Hello</p></body></html>"


# ----------------------------------------------------------------- server


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict[str, Any]] = []
        self.edited = False
        self.added = 0
        self.limited = 0
        self.mastodon_limited: dict[str, int] = {}
        self.cache: dict[str, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8", **headers: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any, **headers: str) -> None:
        self.send(status, json.dumps(data).encode(), **headers)

    def record(self, method: str) -> None:
        if self.path.startswith("/__"):
            return
        with self.state.lock:
            self.state.hits.append(
                {
                    "method": method,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "if_none_match": self.headers.get("If-None-Match"),
                    "if_modified_since": self.headers.get("If-Modified-Since"),
                }
            )

    # ------------------------------------------------------------ routing

    def do_GET(self) -> None:
        self.record("GET")
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/robots.txt":
            self.send(200, ROBOTS.encode(), "text/plain")
        elif path == "/hn/api/v1/search_by_date":
            self.hackernews(query)
        elif path.startswith("/mastodon/api/v1/timelines/tag/"):
            self.mastodon_tag(path.rsplit("/", 1)[-1], query)
        elif path == "/mastodon/api/v2/search":
            self.mastodon_search(query)
        elif path == "/appview/xrpc/app.bsky.feed.searchPosts":
            self.send_json(403, {"error": "Forbidden", "message": "Search is not available to unauthenticated users"})
        elif path == "/pds/xrpc/app.bsky.feed.searchPosts":
            self.bluesky_search(query)
        elif path.startswith(("/feeds/", "/private/")):
            self.feed(path)
        elif path == "/__set":
            self.state.edited = query.get("edited") == "1"
            self.send(200, b"ok", "text/plain")
        elif path == "/__add":
            self.state.added += int(query.get("n", "1"))
            self.send(200, b"ok", "text/plain")
        elif path == "/__hits":
            with self.state.lock:
                self.send_json(200, self.state.hits)
        else:
            self.send_json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        self.record("POST")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if urlsplit(self.path).path != "/pds/xrpc/com.atproto.server.createSession":
            self.send_json(404, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})
            return
        try:
            data = json.loads(body)
        except ValueError:
            self.send_json(400, {"error": "InvalidRequest", "message": "Input must be JSON"})
            return
        if data.get("identifier") == BSKY_HANDLE and data.get("password") == BSKY_PASSWORD:
            did = "did:plc:brand0000abcdefghijklmn"
            session = {"did": did, "handle": BSKY_HANDLE, "email": "brand@acme.example", "active": True}
            self.send_json(200, {**session, "accessJwt": BSKY_JWT, "refreshJwt": "refresh-" + BSKY_JWT})
        else:
            self.send_json(401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"})

    # -------------------------------------------------------- Hacker News

    def hackernews(self, query: dict[str, str]) -> None:
        q = query.get("query", "")
        if q == "error":
            self.send_json(500, {"message": "Internal error", "status": 500})
            return
        if q == "malformed":
            self.send(200, b'{"hits": [{"objectID": "1", "created_at"')
            return
        if q == "limited":
            with self.state.lock:
                self.state.limited += 1
                first = self.state.limited == 1
            if first:
                self.send_json(429, {"message": "Too many requests", "status": 429}, Retry_After="1")
                return
        if query.get("tags") != "(story,comment)":
            self.send_json(400, {"message": "unexpected tags", "status": 400})
            return
        key = f"hn?{sorted(query.items())}&edited={self.state.edited}&added={self.state.added}"
        cached = self.state.cache.get(key)
        if cached is None:
            cached = json.dumps(self.hackernews_page(q, query)).encode()
            if q == "bench":
                self.state.cache[key] = cached
        self.send(200, cached)

    def hackernews_page(self, q: str, query: dict[str, str]) -> dict[str, Any]:
        if q == "bench":
            hits = [bench_hit(i) for i in range(10_000)]
        elif q in ("acme", "limited"):
            count = 250 if q == "acme" else 30
            hits = [hn_hit(i, edited=self.state.edited and i == 1) for i in range(-self.state.added, count)]
        else:
            hits = []
        since = query.get("numericFilters", "")
        if since.startswith("created_at_i>"):
            bound = int(since.removeprefix("created_at_i>"))
            hits = [h for h in hits if h["created_at_i"] > bound]
        per_page = int(query.get("hitsPerPage", 20))
        page = int(query.get("page", 0))
        reachable = len(hits) if q == "bench" else min(len(hits), HN_PAGINATION_LIMIT)
        return {
            "hits": hits[page * per_page : min((page + 1) * per_page, reachable)],
            "nbHits": len(hits),
            "page": page,
            "nbPages": math.ceil(reachable / per_page),
            "hitsPerPage": per_page,
            "exhaustiveNbHits": True,
            "exhaustiveTypo": True,
            "query": q,
            "params": urlencode(query),
            "processingTimeMS": 1,
        }

    # ----------------------------------------------------------- Mastodon

    def mastodon_token_ok(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {MASTODON_TOKEN}"

    def mastodon_tag(self, tag: str, query: dict[str, str]) -> None:
        host = self.headers.get("Host", "127.0.0.1")
        if self.headers.get("Authorization") and not self.mastodon_token_ok():
            self.send_json(401, {"error": "The access token is invalid"})
            return
        if tag == "broken":
            self.send(200, b'[{"id": "1", "content": "<p>cut off')
            return
        if tag == "members" and not self.mastodon_token_ok():
            self.send_json(401, {"error": "This method requires an authenticated user"})
            return
        if tag in ("limited", "limitedlong") and self.mastodon_rate_limited(tag):
            return
        count = {"acmecoffee": 100, "members": 5, "limited": 5}.get(tag, 0)
        statuses = [
            mastodon_status(i, host, edited=self.state.edited and i == 0) for i in range(-self.state.added, count)
        ]
        page, headers = self.mastodon_page(statuses, query, f"http://{host}/mastodon/api/v1/timelines/tag/{tag}")
        self.send_json(200, page, **headers)

    def mastodon_rate_limited(self, tag: str) -> bool:
        """Answer 429 as Mastodon does (reset time in X-RateLimit-Reset, no Retry-After); True if it did."""
        with self.state.lock:
            calls = self.state.mastodon_limited[tag] = self.state.mastodon_limited.get(tag, 0) + 1
        if tag == "limited" and calls > 1:
            return False
        ahead = timedelta(seconds=1) if tag == "limited" else timedelta(hours=1)
        reset = (datetime.now(UTC) + ahead).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        headers = {"X_RateLimit_Limit": "300", "X_RateLimit_Remaining": "0", "X_RateLimit_Reset": reset}
        self.send_json(429, {"error": "Too many requests"}, **headers)
        return True

    def mastodon_page(
        self, statuses: list[dict[str, Any]], query: dict[str, str], url: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        limit = min(int(query.get("limit", 20)), 40)
        if "max_id" in query:
            statuses = [s for s in statuses if int(s["id"]) < int(query["max_id"])]
        page = statuses[:limit]
        if not page:
            return [], {}
        links = [f'<{url}?limit={limit}&min_id={page[0]["id"]}>; rel="prev"']
        if len(statuses) > limit:
            links.insert(0, f'<{url}?limit={limit}&max_id={page[-1]["id"]}>; rel="next"')
        return page, {"Link": ", ".join(links)}

    def mastodon_search(self, query: dict[str, str]) -> None:
        if not self.mastodon_token_ok():
            self.send_json(401, {"error": "The access token is invalid"})
            return
        if query.get("type") != "statuses":
            self.send_json(422, {"error": "Validation failed"})
            return
        host = self.headers.get("Host", "127.0.0.1")
        statuses = [mastodon_status(i, host, prefix="search") for i in range(60)] if "acme" in query["q"] else []
        limit = min(int(query.get("limit", 20)), 40)
        if "max_id" in query:
            statuses = [s for s in statuses if int(s["id"]) < int(query["max_id"])]
        self.send_json(200, {"accounts": [], "statuses": statuses[:limit], "hashtags": []})

    # ------------------------------------------------------------ Bluesky

    def bluesky_search(self, query: dict[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {BSKY_JWT}":
            self.send_json(401, {"error": "AuthenticationRequired", "message": "Authentication Required"})
            return
        q = query.get("q", "")
        if q == "malformed":
            self.send(200, b'{"posts": [{"uri": "at://x"')
            return
        posts = [bsky_post(i) for i in range(-self.state.added, 150)] if q == "acme" else []
        if "since" in query:
            since = datetime.fromisoformat(query["since"])
            posts = [p for p in posts if datetime.fromisoformat(p["record"]["createdAt"]) >= since]
        limit = min(int(query.get("limit", 25)), 100)
        offset = int(query.get("cursor") or 0)
        page = posts[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(posts)}
        if offset + limit < len(posts):
            body["cursor"] = str(offset + limit)
        self.send_json(200, body)

    # -------------------------------------------------------------- feeds

    def feed(self, path: str) -> None:
        if path == "/feeds/news.rss":
            body = rss_feed(self.state.edited, self.state.added)
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send(200, body, "application/rss+xml; charset=utf-8", ETag=etag, Last_Modified=LAST_MODIFIED)
        elif path == "/feeds/alerts.atom":
            self.send(200, ATOM_ALERTS, "application/atom+xml; charset=utf-8")
        elif path == "/feeds/empty.rss":
            self.send(200, EMPTY_RSS, "application/rss+xml")
        elif path == "/feeds/broken.rss":
            self.send(200, BROKEN_RSS, "application/rss+xml")
        elif path == "/feeds/page.html":
            self.send(200, HTML_PAGE, "text/html; charset=utf-8")
        elif path == "/feeds/error":
            self.send(500, b"internal error", "text/plain")
        elif path == "/private/feed.rss":
            self.send(200, rss_feed(False, 0), "application/rss+xml")
        else:
            self.send(404, b"not found", "text/plain")


def serve() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    Handler.state = State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


FAST = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "INFO"}


def toml_value(value: Any) -> str:
    """A value as TOML: JSON for strings, numbers and lists (TOML reads them the same), inline tables for dicts."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(tmp_path: Path, sources: dict[str, dict[str, Any]]) -> Path:
    """A config with one ``[[sources]]`` table per entry (each entry's dict includes its ``type``)."""
    lines = ['[storage]\npath = "monitor.db"\n']
    for name, options in sources.items():
        lines.append(f'[[sources]]\nname = "{name}"\nbrand = "Acme"')
        lines += [f"{key} = {toml_value(value)}" for key, value in options.items()]
        lines.append("")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def crawl(config_path: Path, *names: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Crawl through ``monitor.crawl`` (a child process running the real Scrapy engine)."""
    import os
    from unittest import mock

    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources

    config = load_config(config_path)
    chosen = [config.source(name) for name in names] if names else config.sources
    with mock.patch.dict(os.environ, env or {}):
        return crawl_scrapy_sources(config, chosen, settings=FAST, timeout=120)


def crawl_logs(config_path: Path, *names: str, env: dict[str, str] | None = None) -> str:
    """Run ``spiders.run`` at DEBUG level and return everything it logged (to look for leaked secrets)."""
    import os

    settings = [arg for key, value in {**FAST, "LOG_LEVEL": "DEBUG"}.items() for arg in ("--setting", f"{key}={value}")]
    proc = subprocess.run(
        [sys.executable, "-m", "spiders.run", "--config", str(config_path), *settings, "--", *names],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout + proc.stderr


class SocialApis(SubprocessServer):
    """Context manager: start this module as a subprocess and expose ``base_url``."""

    module = "tests.social_apis"

    def control(self, path: str) -> Any:
        # Control endpoints answer plain text; only the hit log is JSON.
        import urllib.request

        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            body = response.read()
        return json.loads(body) if path.startswith("/__hits") else body

    def hits(self) -> list[dict[str, Any]]:
        return self.control("/__hits")


if __name__ == "__main__":
    serve()
