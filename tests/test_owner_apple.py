"""App Store Connect: the owner source and its reply channel against a loopback server speaking Apple's format.

The mock checks every request's JWT with the team key's public half (ES256, ``kid``, ``aud``, ``exp`` at
most 20 minutes after ``iat``), pages ``customerReviews`` by ``links.next``, includes the developer responses,
and creates, replaces and deletes ``customerReviewResponses``. Failures (401, 429 with Retry-After, 5xx,
a 5xx after the response was stored) are scripted per request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.config import loads_config
from monitor.queue.channels import ChannelError, ReplyRejected, channel_for, check_reply
from spiders import http_reply
from spiders.app_store_connect import AppStoreConnectChannel, make_token
from tests.review_apis import FAST, write_config

ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
APP_ID = "1234567890"
PAGE = 2  # the mock's page size, so a handful of reviews spans pages


def _review(n: int) -> dict[str, Any]:
    return {
        "id": f"rev-{n}",
        "rating": 1 + n % 5,
        "title": f"Title {n}",
        "body": f"Review number {n}: the app <b>crashes</b> on launch" if n % 2 else f"Review {n}: love it",
        "nickname": f"user{n}",
        "created": f"2026-11-{10 + n:02d}T08:00:00-07:00",
        "territory": "USA",
    }


class Apple:
    """The mock's state: reviews (oldest first), responses by review id, requests seen, scripted failures."""

    def __init__(self, public_key: Any) -> None:
        self.public_key = public_key
        self.reviews = [_review(n) for n in range(1, 6)]
        self.responses: dict[str, dict[str, Any]] = {}
        self.hits: list[dict[str, Any]] = []
        # (method, path prefix, status, headers, commit first): failures the next matching request gets
        self.script: list[tuple[str, str, int, dict[str, str], bool]] = []
        self.next_id = 1
        self.lock = threading.Lock()

    def fail(self, method: str, prefix: str, status: int, headers: dict[str, str] | None = None, commit=False) -> None:
        self.script.append((method, prefix, status, headers or {}, commit))

    def scripted(self, method: str, path: str) -> tuple[int, dict[str, str], bool] | None:
        for i, (m, prefix, status, headers, commit) in enumerate(self.script):
            if m == method and path.startswith(prefix):
                del self.script[i]
                return status, headers, commit
        return None

    def respond(self, review_id: str, body: str) -> dict[str, Any]:
        old = self.responses.get(review_id)
        response_id = old["id"] if old else f"resp-{self.next_id}"
        self.next_id += old is None
        self.responses[review_id] = {"id": response_id, "body": body, "modified": "2026-11-26T12:00:00Z",
                                     "state": "PENDING_PUBLISH"}  # fmt: skip
        return self.responses[review_id]


def response_resource(response: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "customerReviewResponses",
        "id": response["id"],
        "attributes": {
            "responseBody": response["body"],
            "lastModifiedDate": response["modified"],
            "state": response["state"],
        },  # fmt: skip
    }


class Handler(BaseHTTPRequestHandler):
    apple: Apple

    def log_message(self, format: str, *args: Any) -> None:
        pass

    suppress = False  # set while a "stored, then failed" request is handled: the real answer is not sent

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

    def error(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"errors": [{"status": str(status), "code": "ERROR", "title": "Error",
                                            "detail": detail}]}, headers)  # fmt: skip

    def authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        token = auth.removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.apple.public_key, algorithms=["ES256"], audience="appstoreconnect-v1",
                                issuer=ISSUER, options={"require": ["exp", "iat", "iss", "aud"]})  # fmt: skip
        except jwt.PyJWTError:
            return False
        return header.get("kid") == KEY_ID and header.get("typ") == "JWT" and claims["exp"] - claims["iat"] <= 1200

    def handle_any(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.apple.lock:
            self.apple.hits.append({"method": method, "path": url.path, "query": url.query,
                                    "body": body.decode(), "auth": self.headers.get("Authorization", "")})  # fmt: skip
            scripted = self.apple.scripted(method, url.path)
        if scripted and not scripted[2]:
            status, headers, _ = scripted
            return self.error(status, "The request failed" if status != 401 else "token expired", headers)
        if not self.authorized():
            return self.error(401, "Provide a properly configured and signed bearer token")
        with self.apple.lock:
            self.suppress = bool(scripted)  # stored, then failed: the platform keeps it, the client sees an error
            self.route(method, url.path, parse_qs(url.query), body)
            self.suppress = False
        if scripted:
            self.error(scripted[0], "Internal error", scripted[1])

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:2] == ["v1", "apps"] and parts[3:] == ["customerReviews"]:
            return self.list_reviews(parts[2], query)
        if method == "GET" and parts[:2] == ["v1", "customerReviews"] and parts[3:] == ["response"]:
            response = self.apple.responses.get(parts[2])
            if response is None:
                return self.error(404, "no response")
            return self.send_json(200, {"data": response_resource(response)})
        if method == "POST" and path == "/v1/customerReviewResponses":
            data = json.loads(body)["data"]
            assert data["type"] == "customerReviewResponses"
            review_ref = data["relationships"]["review"]["data"]
            assert review_ref["type"] == "customerReviews"
            text = data["attributes"]["responseBody"]
            if len(text) > 5970:
                return self.error(409, "responseBody is too long")
            if not any(r["id"] == review_ref["id"] for r in self.apple.reviews):
                return self.error(404, "no such review")
            response = self.apple.respond(review_ref["id"], text)
            return self.send_json(201, {"data": response_resource(response)})
        if method == "DELETE" and parts[:2] == ["v1", "customerReviewResponses"]:
            for review_id, response in list(self.apple.responses.items()):
                if response["id"] == parts[2]:
                    del self.apple.responses[review_id]
                    return self.send_json(204)
            return self.error(404, "no such response")
        return self.error(404, f"no route {method} {path}")

    def list_reviews(self, app_id: str, query: dict[str, list[str]]) -> None:
        assert query.get("sort") == ["-createdDate"] and query.get("include") == ["response"], query
        assert query.get("limit") == ["200"], query
        newest = sorted(self.apple.reviews, key=lambda r: r["created"], reverse=True)
        start = int(query.get("cursor", ["0"])[0])
        page = newest[start : start + PAGE]
        data, included = [], []
        for review in page:
            resource: dict[str, Any] = {
                "type": "customerReviews",
                "id": review["id"],
                "attributes": {
                    "rating": review["rating"],
                    "title": review["title"],
                    "body": review["body"],
                    "reviewerNickname": review["nickname"],
                    "createdDate": review["created"],
                    "territory": review["territory"],
                },  # fmt: skip
                "relationships": {"response": {"links": {}}},
            }
            response = self.apple.responses.get(review["id"])
            if response:
                resource["relationships"]["response"]["data"] = {"type": "customerReviewResponses",
                                                                 "id": response["id"]}  # fmt: skip
                included.append(response_resource(response))
            data.append(resource)
        host = f"http://{self.headers['Host']}"
        links = {"self": f"{host}/v1/apps/{app_id}/customerReviews"}
        if start + PAGE < len(newest):
            links["next"] = (f"{host}/v1/apps/{app_id}/customerReviews?sort=-createdDate&limit=200"
                             f"&include=response&cursor={start + PAGE}")  # fmt: skip
        self.send_json(200, {"data": data, "included": included, "links": links,
                             "meta": {"paging": {"total": len(newest), "limit": PAGE}}})  # fmt: skip

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_DELETE(self) -> None:
        self.handle_any("DELETE")


@pytest.fixture
def team_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    """A fresh P-256 key in a .p8 file, and the environment pointing at it (as the team would set it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "AuthKey_2X9R4HXF34.p8"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    path.write_bytes(pem)
    monkeypatch.setenv("ASC_ISSUER_ID", ISSUER)
    monkeypatch.setenv("ASC_KEY_ID", KEY_ID)
    monkeypatch.setenv("ASC_PRIVATE_KEY_PATH", str(path))
    return key, path


@pytest.fixture
def apple(team_key: tuple[Any, Path]) -> Iterator[tuple[Apple, str]]:
    state = Apple(team_key[0].public_key())
    handler = type("AppleHandler", (Handler,), {"apple": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(http_reply, "sleep", waits.append)
    return waits


def source_for(base_url: str, **extra: Any) -> Any:
    options = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    config = loads_config(
        f'[[sources]]\nname = "ios"\ntype = "app_store_connect"\napp_id = "{APP_ID}"\nbase_url = "{base_url}"\n'
        + options
    )
    return config.sources[0]


def mention(review_id: str = "rev-1") -> dict[str, Any]:
    return {"external_id": review_id, "raw": {"id": review_id, "appId": APP_ID}}


def secrets_of(team_key: tuple[Any, Path]) -> list[str]:
    pem = team_key[1].read_text()
    body_line = pem.splitlines()[1]  # a line of the key itself, as it would leak
    return [ISSUER, KEY_ID, body_line]


# ----------------------------------------------------------------- the token


def test_token_is_es256_with_apples_claims_and_verifies_with_the_public_key(team_key) -> None:
    source = source_for("http://127.0.0.1:9")
    token, secrets = make_token(source, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(token, team_key[0].public_key(), algorithms=["ES256"], audience="appstoreconnect-v1",
                        options={"verify_exp": False})  # fmt: skip
    assert claims["iss"] == ISSUER and claims["iat"] == 1_700_000_000
    assert 0 < claims["exp"] - claims["iat"] <= 20 * 60
    assert token in secrets


def test_missing_or_bad_key_names_the_env_var_and_never_the_key(team_key, monkeypatch, tmp_path) -> None:
    source = source_for("http://127.0.0.1:9")
    channel = AppStoreConnectChannel()
    monkeypatch.delenv("ASC_KEY_ID")
    with pytest.raises(ChannelError, match="ASC_KEY_ID is not set"):
        channel.post(source, mention(), "Thanks", "k1")
    monkeypatch.setenv("ASC_KEY_ID", KEY_ID)
    bad = tmp_path / "bad.p8"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("ASC_PRIVATE_KEY_PATH", str(bad))
    with pytest.raises(ChannelError, match="private_key_path_env") as caught:
        channel.post(source, mention(), "Thanks", "k1")
    assert "TOPSECRETKEYMATERIAL" not in str(caught.value)


# ---------------------------------------------------------------- the channel


def test_channel_is_registered_and_rejects_an_overlong_reply_before_sending(apple) -> None:
    state, _ = apple
    channel = channel_for("app_store_connect")
    assert channel is not None and channel.name == "app_store_connect" and channel.max_length == 5970
    with pytest.raises(ReplyRejected, match="5970"):
        check_reply(channel, "x" * 5971)
    check_reply(channel, "x" * 5970)
    assert state.hits == []


def test_post_creates_the_response_and_a_retry_does_not_post_twice(apple, sleeps) -> None:
    state, base = apple
    source, channel = source_for(base), AppStoreConnectChannel()
    posted = channel.post(source, mention("rev-3"), "Sorry about the crash — fixed in 2.1.", "item-7")
    assert posted.external_id == "resp-1" and posted.posted_at == "2026-11-26T12:00:00+00:00"
    post = [h for h in state.hits if h["method"] == "POST"]
    assert len(post) == 1 and post[0]["path"] == "/v1/customerReviewResponses"
    assert json.loads(post[0]["body"]) == {"data": {
        "type": "customerReviewResponses",
        "attributes": {"responseBody": "Sorry about the crash — fixed in 2.1."},
        "relationships": {"review": {"data": {"type": "customerReviews", "id": "rev-3"}}},
    }}  # fmt: skip
    again = channel.post(source, mention("rev-3"), "Sorry about the crash — fixed in 2.1.", "item-7")
    assert again.external_id == "resp-1"
    assert len([h for h in state.hits if h["method"] == "POST"]) == 1  # read back, not posted again
    assert state.responses["rev-3"]["body"].startswith("Sorry")


def test_429_waits_for_retry_after_then_posts(apple, sleeps) -> None:
    state, base = apple
    state.fail("POST", "/v1/customerReviewResponses", 429, {"Retry-After": "7"})
    posted = AppStoreConnectChannel().post(source_for(base), mention(), "Thanks!", "k")
    assert posted.external_id == "resp-1" and sleeps == [7.0]
    assert len([h for h in state.hits if h["method"] == "POST"]) == 2


def test_a_long_rate_limit_is_reported_not_waited(apple, sleeps) -> None:
    state, base = apple
    state.fail("POST", "/v1/customerReviewResponses", 429, {"Retry-After": "3600"})
    with pytest.raises(ChannelError, match="rate limited.*3600 s"):
        AppStoreConnectChannel().post(source_for(base), mention(), "Thanks!", "k")
    assert sleeps == [] and state.responses == {}


def test_401_signs_a_new_token_and_tries_once_more(apple, sleeps) -> None:
    state, base = apple
    state.fail("POST", "/v1/customerReviewResponses", 401)
    AppStoreConnectChannel().post(source_for(base), mention(), "Thanks!", "k")
    assert len([h for h in state.hits if h["method"] == "POST"]) == 2 and "rev-1" in state.responses


def test_a_refused_key_is_an_error_naming_the_roles_without_secrets(apple, team_key, monkeypatch, tmp_path) -> None:
    state, base = apple
    other = tmp_path / "other.p8"  # a real key, but not the team's: the mock's signature check fails
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    monkeypatch.setenv("ASC_PRIVATE_KEY_PATH", str(other))
    with pytest.raises(ChannelError, match="HTTP 401.*Customer Support") as caught:
        AppStoreConnectChannel().post(source_for(base), mention(), "Thanks!", "k")
    message = str(caught.value)
    for secret in [*secrets_of(team_key), other.read_text().splitlines()[1]]:
        assert secret not in message
    assert all(h["auth"].startswith("Bearer ") for h in state.hits)


def test_a_5xx_after_the_platform_stored_the_reply_is_read_back_not_reposted(apple, sleeps) -> None:
    state, base = apple
    state.fail("POST", "/v1/customerReviewResponses", 503, commit=True)
    posted = AppStoreConnectChannel().post(source_for(base), mention("rev-2"), "We hear you.", "k")
    assert posted.external_id == "resp-1"
    assert len([h for h in state.hits if h["method"] == "POST"]) == 1


def test_a_5xx_before_storing_is_tried_again_once_the_read_back_finds_nothing(apple, sleeps) -> None:
    state, base = apple
    state.fail("POST", "/v1/customerReviewResponses", 500)
    state.fail("GET", "/v1/customerReviews/rev-2/response", 502)  # the read-back's own GET is retried
    posted = AppStoreConnectChannel().post(source_for(base), mention("rev-2"), "We hear you.", "k")
    assert posted.external_id == "resp-1" and state.responses["rev-2"]["body"] == "We hear you."
    assert len([h for h in state.hits if h["method"] == "POST"]) == 2
    assert sleeps  # the 502 on a GET was backed off


def test_5xx_every_time_gives_up_with_a_message(apple, sleeps) -> None:
    state, base = apple
    for _ in range(3):
        state.fail("GET", "/v1/customerReviews/rev-1/response", 500)
    with pytest.raises(ChannelError, match="HTTP 500 .*after 3 tries"):
        AppStoreConnectChannel().post(source_for(base), mention(), "Thanks!", "k")
    assert not [h for h in state.hits if h["method"] == "POST"]


def test_edit_replaces_and_delete_removes_the_response(apple, sleeps) -> None:
    state, base = apple
    source, channel = source_for(base), AppStoreConnectChannel()
    first = channel.post(source, mention("rev-4"), "First answer", "k")
    edited = channel.edit(source, mention("rev-4"), first.external_id, "Better answer")
    assert edited.external_id == first.external_id and state.responses["rev-4"]["body"] == "Better answer"
    channel.delete(source, mention("rev-4"), edited.external_id)
    assert "rev-4" not in state.responses
    deletes = [h["path"] for h in state.hits if h["method"] == "DELETE"]
    assert deletes == [f"/v1/customerReviewResponses/{first.external_id}"]
    channel.delete(source, mention("rev-4"), edited.external_id)  # already gone: not an error


# ------------------------------------------------------------------ the source


def crawl(config_path: Path) -> dict[str, Any]:
    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources

    config = load_config(config_path)
    return crawl_scrapy_sources(config, config.sources, settings=FAST, timeout=60)["ios"]


def test_crawl_reads_every_review_with_paging_and_the_developer_response(apple, tmp_path, team_key) -> None:
    from monitor.store import open_db

    state, base = apple
    state.respond("rev-2", "Thanks for the kind words!")
    config = write_config(tmp_path, [{"name": "ios", "type": "app_store_connect", "app_id": APP_ID,
                                      "base_url": base, "overlap": 1}])  # fmt: skip
    result = crawl(config)
    assert result["errors"] == 0, result["messages"]
    assert result["new"] == 5
    lists = [h for h in state.hits if h["path"].endswith("/customerReviews")]
    assert len(lists) == 3 and "cursor=2" in lists[1]["query"] and "cursor=4" in lists[2]["query"]
    db = open_db(tmp_path / "monitor.db")
    rows = {r["external_id"]: r for r in db.query("select * from mentions where source = 'ios'")}
    assert set(rows) == {f"rev-{n}" for n in range(1, 6)}
    three = rows["rev-3"]
    assert three["rating"] == 4 and three["title"] == "Title 3" and three["author"] == "user3"
    assert three["posted_at"] == "2026-11-13T15:00:00+00:00" and three["kind"] == "review"
    raw = json.loads(rows["rev-2"]["raw"])
    assert raw["attributes"]["territory"] == "USA"
    assert raw["developerResponse"] == {
        "id": "resp-1", "body": "Thanks for the kind words!", "modified_at": "2026-11-26T12:00:00+00:00",
        "state": "PENDING_PUBLISH",
    }  # fmt: skip

    # A new review: the next crawl reads the newest page, sees stored reviews and stops.
    state.reviews.append({**_review(6), "created": "2026-11-25T08:00:00Z"})
    state.hits.clear()
    result = crawl(config)
    assert result["new"] == 1 and result["errors"] == 0, result
    assert len([h for h in state.hits if h["path"].endswith("/customerReviews")]) == 1

    tables = ("mentions", "crawl_runs")
    dumped = "\n".join(str(tuple(r)) for table in tables for r in db.execute(f"select * from {table}"))
    for secret in secrets_of(team_key):
        assert secret not in dumped
    assert not any(h["auth"] in dumped for h in state.hits)


def test_crawl_with_a_bad_key_reports_it_and_stores_nothing(apple, tmp_path, team_key, monkeypatch) -> None:
    state, base = apple
    other = tmp_path / "other.p8"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    monkeypatch.setenv("ASC_PRIVATE_KEY_PATH", str(other))
    config = write_config(tmp_path, [{"name": "ios", "type": "app_store_connect", "app_id": APP_ID,
                                      "base_url": base}])  # fmt: skip
    result = crawl(config)
    assert result["new"] == 0 and result["errors"] >= 1
    text = " ".join(result["messages"])
    assert "401" in text and "Customer Support" in text
    assert len(state.hits) == 2  # tried once more with a fresh token, then reported
    for secret in [*secrets_of(team_key), other.read_text().splitlines()[1]]:
        assert secret not in text


def test_crawl_waits_out_a_429(apple, tmp_path, team_key) -> None:
    state, base = apple
    state.fail("GET", f"/v1/apps/{APP_ID}/customerReviews", 429, {"Retry-After": "1"})
    config = write_config(tmp_path, [{"name": "ios", "type": "app_store_connect", "app_id": APP_ID,
                                      "base_url": base}])  # fmt: skip
    started = time.monotonic()
    result = crawl(config)
    assert result["new"] == 5 and result["errors"] == 0, result
    assert time.monotonic() - started >= 1


# ------------------------------------------------------------ through the queue


def test_reply_from_the_queue_then_the_next_crawl_sees_it_as_ours(apple, tmp_path, team_key, sleeps) -> None:
    """A review arrives, is answered through post_reply_now, and the next crawl records no second reply;
    a response made in App Store Connect directly marks its item replied with that text."""
    from monitor.config import load_config
    from monitor.queue.items import get_item, refresh_queue
    from monitor.queue.replying import apply_pending_platform_replies, post_reply_now
    from monitor.store import open_db

    state, base = apple
    path = write_config(tmp_path, [{"name": "ios", "type": "app_store_connect", "app_id": APP_ID,
                                    "base_url": base}])  # fmt: skip
    config = load_config(path)
    assert crawl(path)["new"] == 5
    db = open_db(config.storage_path)
    for row in list(db.query("select id from mentions where external_id in ('rev-1', 'rev-3')")):
        db["classifications"].insert({"mention_id": row["id"], "label": "complaint", "score": 0.9,
                                      "probs": '{"complaint": 0.95}', "topics": "[]", "urgency": "[]"})  # fmt: skip
    refresh_queue(db, config.queue)
    items = {r["external_id"]: r["id"] for r in db.query(
        "select m.external_id, q.id from queue_items q join mentions m on m.id = q.mention_id")}  # fmt: skip
    assert set(items) == {"rev-1", "rev-3"}

    reply_id = post_reply_now(db, config, items["rev-3"], "Sorry! 2.1 fixes the crash.", "alice")
    assert reply_id == "resp-1" and get_item(db, items["rev-3"])["state"] == "replied"
    # Someone answers rev-1 in App Store Connect itself.
    state.respond("rev-1", "Answered in App Store Connect")

    assert crawl(path)["errors"] == 0
    apply_pending_platform_replies(db)
    replies = list(db.query("select queue_item_id, text, channel, external_id from replies order by id"))
    assert [(r["queue_item_id"], r["text"], r["channel"], r["external_id"]) for r in replies] == [
        (items["rev-3"], "Sorry! 2.1 fixes the crash.", "app_store_connect", "resp-1"),
        (items["rev-1"], "Answered in App Store Connect", "platform", "resp-2"),
    ]
    assert get_item(db, items["rev-1"])["state"] == "replied"
    assert len([h for h in state.hits if h["method"] == "POST"]) == 1
    db.conn.close()


@pytest.mark.parametrize(
    "review",
    [
        {"id": "x1", "attributes": None, "relationships": []},
        {"id": "x2", "attributes": {"rating": "9", "title": ["t"], "body": 5, "createdDate": "not a date"}},
        {"id": "x3", "relationships": {"response": {"data": {"type": "customerReviewResponses", "id": "gone"}}}},
    ],
)
def test_odd_payloads_map_without_raising(review) -> None:
    from spiders.app_store_connect import responses_by_id, review_to_mention

    mention = review_to_mention(review, responses_by_id({"included": [None, {"type": "x"}, 3]}), APP_ID)
    assert mention["external_id"] == review["id"] and mention["rating"] is None and mention["text"] is None
    if review["id"] == "x3":
        assert mention["raw"]["developerResponse"] == {"id": "gone", "body": None, "modified_at": None, "state": None}
