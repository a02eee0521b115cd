"""Replies on Mastodon and Bluesky: the real channel code against loopback servers speaking each API.

Mastodon: ``POST /api/v1/statuses`` with a bearer token and ``Idempotency-Key`` (the mock answers a repeated
key with the status it made, as Mastodon does), ``PUT``/``DELETE /api/v1/statuses/{id}``, 422 for a status
over 500 characters. Bluesky: XRPC ``createSession`` / ``refreshSession`` (``ExpiredToken`` answered with 400,
as a PDS does), ``listRecords``, ``createRecord`` checking the reply's strong refs, ``deleteRecord``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from monitor.config import loads_config
from monitor.queue.channels import ChannelError, ReplyRejected, channel_for, check_reply
from spiders import bluesky_reply, http_reply
from spiders.bluesky_reply import BlueskyChannel, graphemes, link_facets
from spiders.mastodon_reply import MastodonChannel, mastodon_length, with_mention

MASTODON_TOKEN = "mastodon-token-5f1e9a2b"
BSKY_HANDLE = "acme.bsky.social"
BSKY_PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:acmeacmeacmeacme"


class Mock:
    """Requests seen, scripted failures, and each platform's objects."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.script: list[tuple[str, str, int, dict[str, str], bool]] = []
        self.lock = threading.Lock()
        # Mastodon
        self.statuses: dict[str, dict[str, Any]] = {"1001": {"id": "1001", "acct": "dana@example.social"}}
        self.idempotency: dict[str, str] = {}
        self.next_status = 2000
        # Bluesky
        self.sessions = 0
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.records: list[dict[str, Any]] = []

    def fail(self, method: str, prefix: str, status: int, headers: dict[str, str] | None = None, commit=False) -> None:
        self.script.append((method, prefix, status, headers or {}, commit))

    def scripted(self, method: str, path: str) -> tuple[int, dict[str, str], bool] | None:
        for i, (m, prefix, status, headers, commit) in enumerate(self.script):
            if m == method and path.startswith(prefix):
                del self.script[i]
                return status, headers, commit
        return None


class Handler(BaseHTTPRequestHandler):
    mock: Mock
    suppress = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, data: Any = None, headers: dict[str, str] | None = None) -> None:
        if self.suppress:
            return
        body = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        hit = {"method": method, "path": url.path, "query": parse_qs(url.query), "body": body,
               "headers": dict(self.headers.items())}  # fmt: skip
        with self.mock.lock:
            self.mock.hits.append(hit)
            scripted = self.mock.scripted(method, url.path)
            if scripted and not scripted[2]:
                return self.send_json(scripted[0], {"error": "Oops", "message": "try later"}, scripted[1])
            self.suppress = bool(scripted)  # stored, then failed: the client sees only the error
            if url.path.startswith("/xrpc/"):
                self.bluesky(method, url.path.removeprefix("/xrpc/"), hit)
            else:
                self.mastodon(method, url.path, hit)
            self.suppress = False
        if scripted:
            self.send_json(scripted[0], {"error": "Internal Server Error"}, scripted[1])
        return None

    do_GET = lambda self: self.handle_any("GET")  # noqa: E731
    do_POST = lambda self: self.handle_any("POST")  # noqa: E731
    do_PUT = lambda self: self.handle_any("PUT")  # noqa: E731
    do_DELETE = lambda self: self.handle_any("DELETE")  # noqa: E731

    # ------------------------------------------------------------ Mastodon

    def status_json(self, status: dict[str, Any]) -> dict[str, Any]:
        return {"id": status["id"], "created_at": "2026-11-26T12:00:00.000Z", "edited_at": status.get("edited_at"),
                "in_reply_to_id": status.get("in_reply_to_id"), "visibility": status.get("visibility"),
                "url": f"http://mastodon.test/@acme/{status['id']}", "content": f"<p>{status.get('text')}</p>",
                "account": {"acct": "acme"}}  # fmt: skip

    def mastodon(self, method: str, path: str, hit: dict[str, Any]) -> None:
        m = self.mock
        if hit["headers"].get("Authorization") != f"Bearer {MASTODON_TOKEN}":
            return self.send_json(401, {"error": "The access token is invalid"})
        body = hit["body"] or {}
        if method == "POST" and path == "/api/v1/statuses":
            key = hit["headers"].get("Idempotency-Key")
            if key and key in m.idempotency:
                return self.send_json(200, self.status_json(m.statuses[m.idempotency[key]]))
            if mastodon_length(body.get("status", "")) > 500:
                return self.send_json(422, {"error": "Validation failed: Text character limit of 500 exceeded"})
            if body.get("in_reply_to_id") not in m.statuses:
                return self.send_json(404, {"error": "Record not found"})
            m.next_status += 1
            status = {"id": str(m.next_status), "text": body["status"], "in_reply_to_id": body["in_reply_to_id"],
                      "visibility": body.get("visibility")}  # fmt: skip
            m.statuses[status["id"]] = status
            if key:
                m.idempotency[key] = status["id"]
            return self.send_json(200, self.status_json(status))
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "statuses"] and len(parts) == 4:
            status = m.statuses.get(parts[3])
            if status is None:
                return self.send_json(404, {"error": "Record not found"})
            if method == "PUT":
                status.update(text=body["status"], edited_at="2026-11-26T13:00:00.000Z")
                return self.send_json(200, self.status_json(status))
            if method == "DELETE":
                del m.statuses[parts[3]]
                return self.send_json(200, {**self.status_json(status), "text": status.get("text")})
        return self.send_json(404, {"error": "no route"})

    # ------------------------------------------------------------ Bluesky

    def new_session(self) -> dict[str, Any]:
        m = self.mock
        m.sessions += 1
        access, refresh = f"access-{m.sessions}-tok", f"refresh-{m.sessions}-tok"
        m.access.add(access)
        m.refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "did": DID, "handle": BSKY_HANDLE}

    def bluesky(self, method: str, nsid: str, hit: dict[str, Any]) -> None:
        m = self.mock
        auth = hit["headers"].get("Authorization", "").removeprefix("Bearer ")
        body = hit["body"] or {}
        if nsid == "com.atproto.server.createSession":
            if body != {"identifier": BSKY_HANDLE, "password": BSKY_PASSWORD}:
                refused = {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
                return self.send_json(401, refused)
            return self.send_json(200, self.new_session())
        if nsid == "com.atproto.server.refreshSession":
            if auth not in m.refresh:
                return self.send_json(400, {"error": "ExpiredToken", "message": "Token has expired"})
            m.refresh.discard(auth)
            return self.send_json(200, self.new_session())
        if auth not in m.access:
            return self.send_json(400, {"error": "ExpiredToken", "message": "Token has expired"})
        if nsid == "com.atproto.repo.listRecords" and method == "GET":
            assert hit["query"]["repo"] == [DID] and hit["query"]["collection"] == ["app.bsky.feed.post"]
            return self.send_json(200, {"records": list(reversed(m.records))})
        if nsid == "com.atproto.repo.createRecord" and method == "POST":
            record = body["record"]
            assert body["repo"] == DID and body["collection"] == "app.bsky.feed.post"
            assert record["$type"] == "app.bsky.feed.post" and record["createdAt"].endswith("Z")
            for ref in ("root", "parent"):
                assert set(record["reply"][ref]) == {"uri", "cid"}, record["reply"]
            if graphemes(record["text"]) > 300:
                return self.send_json(400, {"error": "InvalidRequest", "message": "Record/text must not be longer"})
            rkey = f"3kabc{len(m.records)}"
            entry = {"uri": f"at://{DID}/app.bsky.feed.post/{rkey}", "cid": f"bafy{rkey}", "value": record}
            m.records.append(entry)
            return self.send_json(200, {"uri": entry["uri"], "cid": entry["cid"]})
        if nsid == "com.atproto.repo.deleteRecord" and method == "POST":
            uri = f"at://{body['repo']}/{body['collection']}/{body['rkey']}"
            m.records = [r for r in m.records if r["uri"] != uri]
            return self.send_json(200, {})
        return self.send_json(400, {"error": "MethodNotImplemented"})


@pytest.fixture
def server() -> Iterator[tuple[Mock, str]]:
    mock = Mock()
    handler = type("SocialHandler", (Handler,), {"mock": mock})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    bluesky_reply._SESSIONS.clear()
    try:
        yield mock, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        bluesky_reply._SESSIONS.clear()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", MASTODON_TOKEN)
    monkeypatch.setenv("BLUESKY_HANDLE", BSKY_HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", BSKY_PASSWORD)
    waits: list[float] = []
    monkeypatch.setattr(http_reply, "sleep", waits.append)
    return waits


def mastodon_source(base: str) -> Any:
    return loads_config(f'[[sources]]\nname = "masto"\ntype = "mastodon"\nbase_url = "{base}"\ntags = ["acme"]\n'
                        ).sources[0]  # fmt: skip


def bluesky_source(base: str) -> Any:
    return loads_config(f'[[sources]]\nname = "bsky"\ntype = "bluesky"\nauth_url = "{base}"\nsearch = ["acme"]\n'
                        ).sources[0]  # fmt: skip


def toot(visibility: str = "public") -> dict[str, Any]:
    return {"external_id": "1001", "author": "dana@example.social", "lang": "en",
            "raw": {"id": "1001", "visibility": visibility, "account": {"acct": "dana@example.social"}}}  # fmt: skip


def no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in (MASTODON_TOKEN, BSKY_PASSWORD, "access-1-tok", "refresh-1-tok"):
            assert secret not in text


# ------------------------------------------------------------------ Mastodon


def test_mastodon_counts_as_mastodon_does() -> None:
    url = "https://example.com/" + "a" * 200
    assert mastodon_length(f"see {url} now") == 4 + 23 + 4
    assert mastodon_length("hi @dana@example.social") == len("hi @dana")
    assert mastodon_length("👨‍👩‍👧 ok") == 4  # one family emoji is one character
    assert with_mention("Thanks!", "dana@example.social") == "@dana@example.social Thanks!"
    assert with_mention("@dana@example.social Thanks!", "dana@example.social") == "@dana@example.social Thanks!"


def test_mastodon_reply_threads_mentions_and_sends_the_idempotency_key(server) -> None:
    mock, base = server
    channel = channel_for("mastodon")
    assert isinstance(channel, MastodonChannel) and channel.max_length == 500
    posted = channel.post(mastodon_source(base), toot("unlisted"), "Sorry about the wait, we're on it.", "monitor-4-1")
    [hit] = mock.hits
    assert hit["path"] == "/api/v1/statuses" and hit["headers"]["Authorization"] == f"Bearer {MASTODON_TOKEN}"
    assert hit["headers"]["Idempotency-Key"] == "monitor-4-1:1001"
    assert hit["body"] == {"status": "@dana@example.social Sorry about the wait, we're on it.",
                           "in_reply_to_id": "1001", "visibility": "unlisted", "language": "en"}  # fmt: skip
    assert posted.external_id == "2001" and posted.posted_at == "2026-11-26T12:00:00+00:00"
    assert posted.url.endswith("/2001")


def test_mastodon_retry_after_a_5xx_does_not_post_twice(server, env) -> None:
    mock, base = server
    mock.fail("POST", "/api/v1/statuses", 502, commit=True)  # the instance made the status, then failed
    posted = MastodonChannel().post(mastodon_source(base), toot(), "Thanks!", "monitor-9-1")
    assert posted.external_id == "2001" and env  # backed off, then the same key returned the same status
    assert [s for s in mock.statuses.values() if s.get("in_reply_to_id") == "1001"] == [mock.statuses["2001"]]
    # The same queue item posted again (a double click that got past the claim): still one status.
    MastodonChannel().post(mastodon_source(base), toot(), "Thanks!", "monitor-9-1")
    assert len([s for s in mock.statuses.values() if s.get("in_reply_to_id") == "1001"]) == 1


def test_mastodon_429_waits_for_the_reset(server, env) -> None:
    mock, base = server
    mock.fail("POST", "/api/v1/statuses", 429, {"Retry-After": "4"})
    MastodonChannel().post(mastodon_source(base), toot(), "Thanks!", "k")
    assert env == [4.0] and len(mock.hits) == 2


def test_mastodon_length_is_checked_with_the_mention_before_sending(server) -> None:
    mock, base = server
    channel = MastodonChannel()
    with pytest.raises(ReplyRejected, match="500"):
        check_reply(channel, "x" * 501)
    text = "x" * 497  # fits alone, not with "@dana " (a remote mention counts as the local part) in front
    check_reply(channel, text)
    with pytest.raises(ReplyRejected, match="@handle"):
        channel.post(mastodon_source(base), toot(), text, "k")
    assert mock.hits == []


def test_mastodon_bad_token_names_the_scope_not_the_token(server, monkeypatch) -> None:
    mock, base = server
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "wrong-token-123456")
    with pytest.raises(ChannelError, match="write:statuses") as caught:
        MastodonChannel().post(mastodon_source(base), toot(), "Thanks!", "k")
    assert "wrong-token-123456" not in str(caught.value)
    monkeypatch.delenv("MASTODON_ACCESS_TOKEN")
    with pytest.raises(ChannelError, match="MASTODON_ACCESS_TOKEN is not set"):
        MastodonChannel().post(mastodon_source(base), toot(), "Thanks!", "k")


def test_mastodon_edit_and_delete(server) -> None:
    mock, base = server
    source, channel = mastodon_source(base), MastodonChannel()
    posted = channel.post(source, toot(), "First", "k")
    edited = channel.edit(source, toot(), posted.external_id, "Second")
    assert mock.statuses[posted.external_id]["text"] == "@dana@example.social Second"
    assert edited.posted_at == "2026-11-26T13:00:00+00:00"
    assert mock.hits[-1]["method"] == "PUT" and mock.hits[-1]["path"] == f"/api/v1/statuses/{posted.external_id}"
    channel.delete(source, toot(), posted.external_id)
    assert posted.external_id not in mock.statuses
    channel.delete(source, toot(), posted.external_id)  # already gone


# ------------------------------------------------------------------- Bluesky


def post_view(reply_root: dict[str, str] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"text": "acme coffee was cold", "createdAt": "2026-11-26T10:00:00Z"}
    if reply_root:
        record["reply"] = {"root": reply_root, "parent": {"uri": "at://did:plc:x/app.bsky.feed.post/p0", "cid": "c0"}}
    uri = "at://did:plc:dana/app.bsky.feed.post/3kpost"
    raw = {"uri": uri, "cid": "bafypost", "author": {"handle": "dana.bsky.social"}, "record": record}
    return {"external_id": uri, "lang": "en", "raw": raw}


def test_bluesky_counts_graphemes_and_rejects_before_sending(server) -> None:
    mock, base = server
    channel = channel_for("bluesky")
    assert isinstance(channel, BlueskyChannel) and channel.max_length == 300 and not channel.can_edit
    family = "👨‍👩‍👧"  # five code points, one grapheme
    check_reply(channel, family * 300)
    with pytest.raises(ReplyRejected, match="300"):
        check_reply(channel, family * 301)
    with pytest.raises(ReplyRejected):
        channel.post(bluesky_source(base), post_view(), "e\u0301" * 301, "k")
    assert mock.hits == []


def test_bluesky_reply_to_a_post_and_to_a_reply_uses_root_and_parent(server) -> None:
    mock, base = server
    source, channel = bluesky_source(base), BlueskyChannel()
    posted = channel.post(source, post_view(), "Sorry! Details: https://acme.example/help", "k1")
    login = mock.hits[0]
    assert login["path"] == "/xrpc/com.atproto.server.createSession"
    create = [h for h in mock.hits if h["path"].endswith("createRecord")][0]
    assert create["headers"]["Authorization"] == "Bearer access-1-tok"
    record = create["body"]["record"]
    parent = {"uri": "at://did:plc:dana/app.bsky.feed.post/3kpost", "cid": "bafypost"}
    assert record["reply"] == {"root": parent, "parent": parent} and record["langs"] == ["en"]
    assert record["facets"][0]["features"][0]["uri"] == "https://acme.example/help"
    assert posted.external_id == f"at://{DID}/app.bsky.feed.post/3kabc0"
    assert posted.url == f"https://bsky.app/profile/{BSKY_HANDLE}/post/3kabc0"

    root = {"uri": "at://did:plc:x/app.bsky.feed.post/root", "cid": "croot"}
    channel.post(source, post_view(reply_root=root), "Thanks for the follow-up", "k2")
    record = mock.records[-1]["value"]
    assert record["reply"]["root"] == root and record["reply"]["parent"]["cid"] == "bafypost"
    assert len([h for h in mock.hits if h["path"].endswith("createSession")]) == 1  # the session is reused


def test_link_facets_count_utf8_bytes() -> None:
    text = "Café ☕ https://acme.example/x."
    [facet] = link_facets(text)
    start = len("Café ☕ ".encode())
    assert facet["index"] == {"byteStart": start, "byteEnd": start + len("https://acme.example/x")}


def test_bluesky_expired_token_is_refreshed_then_a_refused_refresh_logs_in_again(server) -> None:
    mock, base = server
    source, channel = bluesky_source(base), BlueskyChannel()
    channel.post(source, post_view(), "one", "k1")
    mock.access.clear()  # the access token expired
    channel.post(source, post_view(), "two", "k2")
    assert [h["path"].rsplit(".", 1)[-1] for h in mock.hits if "server" in h["path"]] == [
        "createSession", "refreshSession"]  # fmt: skip
    mock.access.clear()
    mock.refresh.clear()  # both expired: a new login
    channel.post(source, post_view(), "three", "k3")
    assert len([h for h in mock.hits if h["path"].endswith("createSession")]) == 2
    assert [r["value"]["text"] for r in mock.records] == ["one", "two", "three"]


def test_bluesky_5xx_after_the_record_was_made_is_read_back_not_reposted(server, env) -> None:
    mock, base = server
    mock.fail("POST", "/xrpc/com.atproto.repo.createRecord", 500, commit=True)
    posted = BlueskyChannel().post(bluesky_source(base), post_view(), "We hear you", "k")
    assert len(mock.records) == 1 and posted.external_id == mock.records[0]["uri"]
    # And a second attempt of the same reply finds it before posting.
    BlueskyChannel().post(bluesky_source(base), post_view(), "We hear you", "k")
    assert len(mock.records) == 1


def test_bluesky_429_backs_off(server, env) -> None:
    mock, base = server
    mock.fail("POST", "/xrpc/com.atproto.repo.createRecord", 429, {"Retry-After": "2"})
    BlueskyChannel().post(bluesky_source(base), post_view(), "Thanks", "k")
    assert env == [2.0] and len(mock.records) == 1


def test_bluesky_wrong_app_password_names_the_variables_only(server, monkeypatch) -> None:
    mock, base = server
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "zzzz-yyyy-xxxx-wwww")
    with pytest.raises(ChannelError, match="BLUESKY_APP_PASSWORD") as caught:
        BlueskyChannel().post(bluesky_source(base), post_view(), "Thanks", "k")
    assert "zzzz-yyyy-xxxx-wwww" not in str(caught.value) and mock.records == []


def test_bluesky_delete_and_no_edit(server) -> None:
    mock, base = server
    source, channel = bluesky_source(base), BlueskyChannel()
    posted = channel.post(source, post_view(), "Thanks", "k")
    with pytest.raises(ReplyRejected, match="cannot be edited"):
        channel.edit(source, post_view(), posted.external_id, "Thanks!")
    channel.delete(source, post_view(), posted.external_id)
    assert mock.records == []
    delete = mock.hits[-1]
    assert delete["path"] == "/xrpc/com.atproto.repo.deleteRecord"
    assert delete["body"] == {"repo": DID, "collection": "app.bsky.feed.post", "rkey": "3kabc0"}
    with pytest.raises(ChannelError, match="not a post of this account"):
        channel.delete(source, post_view(), "at://did:plc:someoneelse/app.bsky.feed.post/1")


def test_no_secret_in_errors_or_logs(server, monkeypatch, caplog) -> None:
    mock, base = server
    caplog.set_level(logging.DEBUG)
    messages = []
    mock.fail("POST", "/api/v1/statuses", 500)
    mock.fail("POST", "/api/v1/statuses", 500)
    mock.fail("POST", "/api/v1/statuses", 500)
    for call in (
        lambda: MastodonChannel().post(mastodon_source(base), toot(), "x", "k"),
        lambda: BlueskyChannel().delete(bluesky_source(base), post_view(), "at://did:plc:other/x/1"),
    ):
        with pytest.raises(ChannelError) as caught:
            call()
        messages.append(str(caught.value))
    no_secrets(*messages, caplog.text)
