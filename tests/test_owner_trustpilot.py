"""Trustpilot owner mode: OAuth token, the private reviews API and replies, against a loopback Trustpilot.

The mock issues client-credentials tokens only for ``Basic base64(key:secret)``, serves
``/v1/private/business-units/{id}/reviews`` (with ``companyReply``) only to a current bearer token, and takes,
replaces and deletes ``/v1/private/reviews/{id}/reply``. Tokens can be expired from the test.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from monitor.config import loads_config
from monitor.queue.channels import ChannelError, ReplyRejected, channel_for, check_reply
from spiders import http_reply, trustpilot_reply
from spiders.trustpilot_reply import TrustpilotChannel
from tests.review_apis import FAST, write_config

KEY, SECRET = "tp-key-8a7b6c", "tp-secret-1f2e3d4c"
UNIT = "46d6a890000064000500e0c3"
USER = "5d8f0c2a1b2c3d4e5f6a7b8c"
PER_PAGE = 100


class Trustpilot:
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.issued = 0
        self.hits: list[dict[str, Any]] = []
        self.script: list[tuple[str, str, int, dict[str, str]]] = []
        self.reviews = [
            {"id": f"r{n}", "stars": 1 + n % 5, "title": f"T{n}", "text": f"Review {n}", "language": "en",
             "createdAt": f"2026-11-{10 + n:02d}T09:00:00Z", "consumer": {"displayName": f"C{n}"}}
            for n in range(1, 4)
        ]  # fmt: skip
        self.reviews[0]["companyReply"] = {"text": "Answered on Trustpilot", "createdAt": "2026-11-20T10:00:00Z"}


class Handler(BaseHTTPRequestHandler):
    tp: Trustpilot

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, data: Any = None, headers: dict[str, str] | None = None) -> None:
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
        raw = self.rfile.read(length).decode() if length else ""
        tp = self.tp
        tp.hits.append({"method": method, "path": url.path, "body": raw, "auth": self.headers.get("Authorization")})
        for i, (m, prefix, status, headers) in enumerate(tp.script):
            if m == method and url.path.startswith(prefix):
                del tp.script[i]
                return self.send_json(status, {"message": "scripted"}, headers)
        if url.path == "/v1/oauth/oauth-business-users-for-applications/accesstoken":
            expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
            if self.headers.get("Authorization") != expected or parse_qs(raw) != {"grant_type": ["client_credentials"]}:
                return self.send_json(401, {"fault": {"faultstring": "Invalid client credentials"}})
            tp.issued += 1
            token = f"tp-access-{tp.issued}"
            tp.tokens.add(token)
            return self.send_json(200, {"access_token": token, "expires_in": "359999", "token_type": "Bearer"})
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in tp.tokens:
            return self.send_json(401, {"fault": {"faultstring": "Invalid access token"}})
        parts = url.path.strip("/").split("/")
        if method == "GET" and parts[:3] == ["v1", "private", "business-units"] and parts[4:] == ["reviews"]:
            query = parse_qs(url.query)
            assert query["orderBy"] == ["createdat.desc"] and parts[3] == UNIT
            page = int(query["page"][0])
            newest = sorted(tp.reviews, key=lambda r: r["createdAt"], reverse=True)
            size = 2  # small pages, so paging is exercised
            chunk = newest[(page - 1) * size : page * size]
            links = [{"rel": "next-page", "href": "x"}] if page * size < len(newest) else []
            return self.send_json(200, {"reviews": chunk, "links": links})
        review = next((r for r in tp.reviews if len(parts) > 3 and r["id"] == parts[3]), None)
        if parts[:3] == ["v1", "private", "reviews"] and review is None:
            return self.send_json(404, {"message": "Review not found"})
        if method == "GET" and len(parts) == 4:
            return self.send_json(200, review)
        if parts[4:] == ["reply"] and method == "POST":
            body = json.loads(raw)
            if set(body) != {"authorBusinessUserId", "message"} or body["authorBusinessUserId"] != USER:
                return self.send_json(400, {"message": "Invalid request"})
            review["companyReply"] = {"text": body["message"], "authorBusinessUserId": USER,
                                      "createdAt": "2026-11-26T12:00:00Z"}  # fmt: skip
            return self.send_json(201, None)
        if parts[4:] == ["reply"] and method == "DELETE":
            if not review.pop("companyReply", None):
                return self.send_json(404, {"message": "No reply"})
            return self.send_json(204)
        return self.send_json(404, {"message": "no route"})

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_DELETE(self) -> None:
        self.handle_any("DELETE")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Trustpilot, str]]:
    monkeypatch.setenv("TRUSTPILOT_API_KEY", KEY)
    monkeypatch.setenv("TRUSTPILOT_API_SECRET", SECRET)
    monkeypatch.setattr(http_reply, "sleep", lambda _s: None)
    trustpilot_reply._TOKENS.clear()
    tp = Trustpilot()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("TpHandler", (Handler,), {"tp": tp}))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield tp, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        trustpilot_reply._TOKENS.clear()


def source(base: str, **extra: Any) -> Any:
    options = {"owner": True, "business_user_id": USER, **extra}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    return loads_config(f'[[sources]]\nname = "tp"\ntype = "trustpilot"\nbusiness_unit_ids = ["{UNIT}"]\n'
                        f'base_url = "{base}"\n{lines}').sources[0]  # fmt: skip


def review(review_id: str = "r2") -> dict[str, Any]:
    return {"external_id": review_id, "raw": {"id": review_id}}


def test_reply_gets_a_token_once_posts_as_the_business_user_and_is_not_repeated(server) -> None:
    tp, base = server
    channel = channel_for("trustpilot")
    assert isinstance(channel, TrustpilotChannel)
    posted = channel.post(source(base), review("r2"), "Sorry to hear this.", "k")
    assert posted.external_id == "r2"
    post = [h for h in tp.hits if h["method"] == "POST" and h["path"].endswith("/reply")]
    assert len(post) == 1 and post[0]["path"] == "/v1/private/reviews/r2/reply"
    assert json.loads(post[0]["body"]) == {"authorBusinessUserId": USER, "message": "Sorry to hear this."}
    assert post[0]["auth"] == "Bearer tp-access-1"
    channel.post(source(base), review("r2"), "Sorry to hear this.", "k")  # a retry: read back, not posted
    assert len([h for h in tp.hits if h["method"] == "POST" and h["path"].endswith("/reply")]) == 1
    assert tp.issued == 1  # one token serves every call


def test_an_expired_token_is_replaced_and_the_call_repeated(server) -> None:
    tp, base = server
    TrustpilotChannel().post(source(base), review("r2"), "One", "k")
    tp.tokens.clear()
    TrustpilotChannel().post(source(base), review("r3"), "Two", "k")
    assert tp.issued == 2 and tp.reviews[2]["companyReply"]["text"] in ("Two", "One")


def test_429_and_5xx(server) -> None:
    tp, base = server
    tp.script.append(("POST", "/v1/private/reviews/r2/reply", 429, {"Retry-After": "1"}))
    TrustpilotChannel().post(source(base), review("r2"), "Hello", "k")
    tp.script.append(("POST", "/v1/private/reviews/r3/reply", 500, {}))
    TrustpilotChannel().post(source(base), review("r3"), "Hello", "k")  # read back (none), tried once more
    assert [h["path"] for h in tp.hits if h["method"] == "POST" and "reply" in h["path"]] == [
        "/v1/private/reviews/r2/reply", "/v1/private/reviews/r2/reply",
        "/v1/private/reviews/r3/reply", "/v1/private/reviews/r3/reply"]  # fmt: skip


def test_public_mode_and_missing_settings_are_clear_errors(server, monkeypatch) -> None:
    tp, base = server
    with pytest.raises(ChannelError, match="owner = true"):
        TrustpilotChannel().post(source(base, owner=False), review(), "Hi", "k")
    with pytest.raises(ChannelError, match="business_user_id"):
        TrustpilotChannel().post(source(base, business_user_id=""), review(), "Hi", "k")
    monkeypatch.setenv("TRUSTPILOT_API_SECRET", "wrong-secret-999")
    with pytest.raises(ChannelError, match="TRUSTPILOT_API_SECRET") as caught:
        TrustpilotChannel().post(source(base), review(), "Hi", "k")
    assert "wrong-secret-999" not in str(caught.value) and KEY not in str(caught.value)
    with pytest.raises(ReplyRejected):
        check_reply(TrustpilotChannel(), "x" * 4001)
    assert not [h for h in tp.hits if h["path"].endswith("/reply")]


def test_edit_and_delete(server) -> None:
    tp, base = server
    channel = TrustpilotChannel()
    channel.post(source(base), review("r2"), "First", "k")
    channel.edit(source(base), review("r2"), "r2", "Second")
    assert tp.reviews[1]["companyReply"]["text"] == "Second"
    channel.delete(source(base), review("r2"), "r2")
    assert "companyReply" not in tp.reviews[1]
    channel.delete(source(base), review("r2"), "r2")  # already gone


def test_owner_crawl_reads_the_private_api_and_records_the_company_reply(server, tmp_path: Path) -> None:
    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources
    from monitor.store import open_db

    tp, base = server
    path = write_config(tmp_path, [{"name": "tp", "type": "trustpilot", "business_unit_ids": [UNIT],
                                    "base_url": base, "owner": True, "business_user_id": USER}])  # fmt: skip
    config = load_config(path)
    tp.script.append(("GET", f"/v1/private/business-units/{UNIT}/reviews", 401, {}))  # a stale token: new one
    result = crawl_scrapy_sources(config, config.sources, settings=FAST, timeout=60)["tp"]
    assert result["new"] == 3 and result["errors"] == 0, result
    assert tp.issued == 2
    pages = [h for h in tp.hits if h["path"].startswith("/v1/private/business-units/")]
    assert len(pages) == 3 and all(h["auth"].startswith("Bearer tp-access-") for h in pages)
    db = open_db(config.storage_path)
    raw = json.loads(next(db.query("select raw from mentions where external_id = 'r1'"))["raw"])
    assert raw["companyReply"]["text"] == "Answered on Trustpilot"
    # r1 is not queued yet (classification comes after the crawl): its company reply waits.
    pending = list(db.query("select key, value from source_state where key like 'platform_reply:%'"))
    assert [p["key"] for p in pending] == ["platform_reply:r1"]
    dumped = "\n".join(str(tuple(r)) for t in ("mentions", "crawl_runs", "source_state") for r in db.execute(
        f"select * from {t}"))  # fmt: skip
    for secret in (KEY, SECRET, "tp-access-1", "tp-access-2"):
        assert secret not in dumped
    db.conn.close()
