"""A loopback Reddit-compatible API server for the demo and the tests.

It speaks enough of Reddit's OAuth API that unmodified PRAW, configured with
``reddit_url`` and ``oauth_url`` set to this server's base URL, works against it:

* ``POST /api/v1/access_token``: client-credentials (read-only), password and
  refresh-token grants; HTTP Basic auth with the client id and secret is required.
* ``GET /r/{sub}/new``, ``/r/{sub}/comments``, ``/r/{sub}/search`` (``q``, ``sort``,
  ``t``, ``restrict_sr``), also ``/r/all/...`` and multis (``/r/a+b/...``):
  Reddit "Listing" JSON with ``limit`` / ``after`` / ``before`` pagination.
* ``POST /api/comment`` (needs a user token, as on Reddit) and ``GET /api/v1/me``.
* Rate-limit headers (``x-ratelimit-remaining/used/reset``) on every API answer,
  counted in 10-minute clock windows like Reddit; over the limit gives 429.

Failure injection for tests: ``server.fail["/r/acme/new"] = (500, body, headers)``
makes that path answer the given status, body (str, bytes or JSON-able) and
headers; a fourth element ``times`` limits it to that many answers.

Run standalone: ``python -m monitor.demo.reddit_api --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import html
import json
import logging
import re
import secrets
import threading
import time
import zlib
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from monitor.demo.reddit_content import base36, build_demo_things, comment_data

log = logging.getLogger(__name__)

RATE_WINDOW = 600  # seconds; Reddit resets its request counter every 10 minutes on the clock
DEFAULT_RATELIMIT = 1000  # requests per window (Reddit's free tier: 100 per minute, averaged)
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
TOKEN_TTL = 3600
ALL_SUBREDDITS = {"all", "popular"}
TIME_FILTERS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}

Failure = tuple[int, Any, dict[str, str]] | tuple[int, Any, dict[str, str], int]


class RedditContent:
    """Thread-safe in-memory store of Reddit things keyed by fullname."""

    def __init__(self, things: Iterable[dict[str, Any]] | None = None) -> None:
        self._lock = threading.RLock()
        self._things: dict[str, dict[str, Any]] = {}
        self._next_comment = 36_600_000_000
        for thing in build_demo_things() if things is None else things:
            self.add(thing)

    def add(self, thing: dict[str, Any]) -> None:
        with self._lock:
            self._things[thing["data"]["name"]] = copy.deepcopy(thing)

    def get(self, fullname: str) -> dict[str, Any] | None:
        with self._lock:
            thing = self._things.get(fullname)
            return copy.deepcopy(thing) if thing else None

    def subreddits(self) -> set[str]:
        with self._lock:
            return {t["data"]["subreddit"].lower() for t in self._things.values()}

    def edit(self, fullname: str, text: str) -> None:
        """Edit a comment body or a self post's text, as its author would."""
        with self._lock:
            data = self._things[fullname]["data"]
            field = "body" if fullname.startswith("t1_") else "selftext"
            data[field] = text
            data[f"{field}_html"] = f'<div class="md"><p>{html.escape(text)}</p>\n</div>'
            data["edited"] = float(int(time.time()))

    def things(self, kind: str, subreddits: set[str] | None) -> list[dict[str, Any]]:
        """Things of one kind ("t3" or "t1"), newest first; ``subreddits`` None means all."""
        with self._lock:
            items = [
                copy.deepcopy(t)
                for t in self._things.values()
                if t["kind"] == kind and (subreddits is None or t["data"]["subreddit"].lower() in subreddits)
            ]
        return sorted(items, key=lambda t: (t["data"]["created_utc"], t["data"]["name"]), reverse=True)

    def search(self, query: str, subreddits: set[str] | None, sort: str, time_filter: str) -> list[dict[str, Any]]:
        """Posts whose title or text contain every term (quoted phrases kept together), like Reddit's search."""
        terms = [(a or b).lower() for a, b in re.findall(r'"([^"]+)"|(\S+)', query)]
        terms = [t for t in terms if t not in {"and", "&&"}]
        cutoff = time.time() - TIME_FILTERS[time_filter] if time_filter in TIME_FILTERS else None
        hits = []
        for thing in self.things("t3", subreddits):
            data = thing["data"]
            haystack = f"{data['title']}\n{data['selftext']}".lower()
            if terms and all(t in haystack for t in terms) and (cutoff is None or data["created_utc"] >= cutoff):
                hits.append(thing)
        if sort in {"relevance", "hot", "top"}:
            hits.sort(key=lambda t: t["data"]["score"], reverse=True)
        elif sort == "comments":
            hits.sort(key=lambda t: t["data"]["num_comments"], reverse=True)
        return hits  # "new" is the default order

    def add_comment(self, parent_fullname: str, author: str, body: str) -> dict[str, Any] | None:
        """Post a reply; returns the new t1 thing, or None when the parent does not exist."""
        with self._lock:
            parent = self._things.get(parent_fullname)
            if parent is None:
                return None
            post_name = parent["data"]["name"] if parent["kind"] == "t3" else parent["data"]["link_id"]
            post = self._things[post_name]["data"]
            self._next_comment += 7
            data = comment_data(
                comment_id=base36(self._next_comment), post=post, parent_id=parent_fullname, author=author,
                created_utc=float(int(time.time())), body=body,
            )
            data["likes"] = True  # Reddit upvotes your own comment
            post["num_comments"] += 1
            thing = {"kind": "t1", "data": data}
            self._things[data["name"]] = thing
            return copy.deepcopy(thing)


def listing(things: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    """One page of ``things`` as a Reddit Listing, honouring ``limit``, ``after`` and ``before``."""
    try:
        limit = min(max(int(params.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
    except ValueError:
        limit = DEFAULT_LIMIT
    names = [t["data"]["name"] for t in things]
    after, before = params.get("after"), params.get("before")
    if after:
        # Like Reddit: an unknown anchor gives an empty page rather than an error.
        start = names.index(after) + 1 if after in names else len(names)
        end = min(start + limit, len(names))
    elif before:
        end = names.index(before) if before in names else 0
        start = max(end - limit, 0)
    else:
        start, end = 0, min(limit, len(names))
    page = things[start:end]
    return {
        "kind": "Listing",
        "data": {
            "after": page[-1]["data"]["name"] if page and end < len(names) else None,
            "before": page[0]["data"]["name"] if page and start > 0 and (after or before) else None,
            "children": page,
            "dist": len(page),
            "geo_filter": "",
            "modhash": "",
        },
    }


class RedditAPIServer(ThreadingHTTPServer):
    """The demo Reddit; attributes are the knobs tests turn (see the module docstring)."""

    daemon_threads = True

    def __init__(
        self, port: int = 0, content: RedditContent | None = None, host: str = "127.0.0.1",
        ratelimit: int = DEFAULT_RATELIMIT,
    ) -> None:
        super().__init__((host, port), _RedditHandler)
        self.content = content or RedditContent()
        self.fail: dict[str, Failure] = {}
        self.ratelimit = ratelimit
        # None accepts any non-empty credentials; set a dict to make the server check them.
        self.clients: dict[str, str] | None = None
        self.users: dict[str, str] | None = None
        self.refresh_tokens: dict[str, str] | None = None
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._tokens: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._used = 0

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def issue_token(self, user: str | None) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (user, time.time() + TOKEN_TTL)
        return token

    def token_user(self, token: str) -> tuple[bool, str | None]:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[1] < time.time():
            return False, None
        return True, entry[0]

    def take_failure(self, path: str) -> tuple[int, Any, dict[str, str]] | None:
        with self._lock:
            failure = self.fail.get(path)
            if failure is None:
                return None
            if len(failure) == 4:
                status, body, headers, times = failure
                if times <= 1:
                    del self.fail[path]
                else:
                    self.fail[path] = (status, body, headers, times - 1)
            return failure[0], failure[1], failure[2]

    def count_request(self) -> tuple[bool, dict[str, str]]:
        """Count one API request; returns (allowed, rate-limit headers)."""
        now = time.time()
        with self._lock:
            window_start = now - now % RATE_WINDOW
            if window_start != self._window_start:
                self._window_start, self._used = window_start, 0
            allowed = self._used < self.ratelimit
            if allowed:
                self._used += 1
            reset = max(int(window_start + RATE_WINDOW - now), 1)
            headers = {
                "x-ratelimit-remaining": f"{float(self.ratelimit - self._used):.1f}",
                "x-ratelimit-used": str(self._used),
                "x-ratelimit-reset": str(reset),
            }
        if not allowed:
            headers["retry-after"] = str(reset)
        return allowed, headers


class _RedditHandler(BaseHTTPRequestHandler):
    server: RedditAPIServer
    protocol_version = "HTTP/1.1"
    server_version = "snooserv"

    def version_string(self) -> str:
        return self.server_version  # Reddit's Server header, without Python's version appended

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        # Request lines only (never headers, which carry credentials), and quietly: the demo shares a terminal.
        log.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------- plumbing

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = dict(headers or {})
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json; charset=UTF-8"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"message": message, "error": status}, headers)

    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        form = self._read_form() if method == "POST" else {}
        with self.server._lock:
            self.server.requests.append((method, path, params))

        failure = self.server.take_failure(path)
        if failure is not None:
            self._send(*failure)
            return
        if path == "/api/v1/access_token":
            if method != "POST":
                self._error(405, "Method Not Allowed")
            else:
                self._access_token(form)
            return

        ok, user = self._bearer_user()
        if not ok:
            self._error(401, "Unauthorized", {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
            return
        allowed, rate_headers = self.server.count_request()
        if not allowed:
            self._error(429, "Too Many Requests", rate_headers)
            return

        match = re.fullmatch(r"/r/([^/]+)/(new|hot|top|comments|search)", path)
        if method == "GET" and match:
            self._subreddit_listing(match.group(1), match.group(2), params, rate_headers)
        elif method == "POST" and path == "/api/comment":
            self._comment(user, form, rate_headers)
        elif method == "GET" and path == "/api/v1/me":
            if user is None:
                self._error(403, "Forbidden", rate_headers)
            else:
                self._send(200, {"name": user, "id": base36(zlib.crc32(user.encode())), "link_karma": 1,
                                 "comment_karma": 1, "created_utc": 1_600_000_000.0}, rate_headers)
        else:
            self._error(404, "Not Found", rate_headers)

    def _bearer_user(self) -> tuple[bool, str | None]:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False, None
        return self.server.token_user(token.strip())

    # ------------------------------------------------------------- endpoints

    def _access_token(self, form: dict[str, str]) -> None:
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        try:
            client_id, _, client_secret = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = client_secret = ""
        clients = self.server.clients
        known = clients is None or clients.get(client_id) == client_secret
        if scheme.lower() != "basic" or not client_id or not known:
            self._error(401, "Unauthorized")
            return
        grant = form.get("grant_type", "")
        # Reddit answers grant problems with 200 and an "error" field; prawcore turns that into OAuthException.
        if grant in {"client_credentials", "https://oauth.reddit.com/grants/installed_client"}:
            user = None
        elif grant == "password":
            user, users = form.get("username", ""), self.server.users
            if not user or (users is not None and users.get(user) != form.get("password")):
                self._send(200, {"error": "invalid_grant"})
                return
        elif grant == "refresh_token":
            refresh, tokens = form.get("refresh_token", ""), self.server.refresh_tokens
            if not refresh or (tokens is not None and refresh not in tokens):
                self._send(200, {"error": "invalid_grant"})
                return
            user = tokens[refresh] if tokens is not None else "demo_user"
        else:
            self._send(200, {"error": "unsupported_grant_type"})
            return
        body = {"access_token": self.server.issue_token(user), "token_type": "bearer", "expires_in": TOKEN_TTL}
        body["scope"] = form.get("scope") or "*"
        self._send(200, body)

    def _subreddit_listing(self, name: str, what: str, params: dict[str, str], headers: dict[str, str]) -> None:
        wanted = {n.lower() for n in name.split("+") if n}
        if wanted & ALL_SUBREDDITS:
            subreddits = None
        else:
            unknown = wanted - self.server.content.subreddits()
            if unknown:
                # What Reddit does for a subreddit that does not exist: redirect to subreddit search.
                location = f"/subreddits/search.json?q={quote(sorted(unknown)[0])}"
                self._send(302, b"", {**headers, "Location": location})
                return
            subreddits = wanted
        content = self.server.content
        if what == "comments":
            things = content.things("t1", subreddits)
        elif what == "search":
            restrict = params.get("restrict_sr", "").lower() in {"1", "true", "on", "yes"}
            scope = subreddits if restrict else None
            things = content.search(params.get("q", ""), scope, params.get("sort", "relevance"), params.get("t", "all"))
        else:
            things = content.things("t3", subreddits)
            if what in {"hot", "top"}:
                things.sort(key=lambda t: t["data"]["score"], reverse=True)
        self._send(200, listing(things, params), headers)

    def _comment(self, user: str | None, form: dict[str, str], headers: dict[str, str]) -> None:
        if user is None:
            self._error(403, "Forbidden", headers)  # app-only tokens cannot post, as on Reddit
            return
        text = form.get("text", "")
        if not text.strip():
            self._send(200, {"json": {"errors": [["NO_TEXT", "we need something here", "text"]]}}, headers)
            return
        thing = self.server.content.add_comment(form.get("thing_id", ""), user, text)
        if thing is None:
            errors = [["DELETED_COMMENT", "that comment has been deleted", "parent"]]
            self._send(200, {"json": {"errors": errors}}, headers)
            return
        self._send(200, {"json": {"errors": [], "data": {"things": [thing]}}}, headers)


def start_reddit_api(
    port: int = 0, content: RedditContent | Iterable[dict[str, Any]] | None = None, host: str = "127.0.0.1"
) -> tuple[RedditAPIServer, str]:
    """Start the demo Reddit in a daemon thread; returns the server and its base URL.

    ``content`` is a :class:`RedditContent`, a list of things, or None for the
    built-in Acme Coffee posts. Stop it with ``server.shutdown(); server.server_close()``.
    """
    if content is not None and not isinstance(content, RedditContent):
        content = RedditContent(content)
    server = RedditAPIServer(port=port, content=content, host=host)
    # A short poll interval makes shutdown() return quickly (tests start and stop many servers).
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-reddit-api", daemon=True
    ).start()
    return server, server.base_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve a Reddit-compatible API with demo content on a loopback port.",
        epilog="example: python -m monitor.demo.reddit_api --port 8765  "
        '(then set oauth_url = reddit_url = "http://127.0.0.1:8765" on a reddit source)',
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args(argv)
    server = RedditAPIServer(port=args.port, host=args.host)
    print(f"demo Reddit API at {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
