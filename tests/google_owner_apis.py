"""A loopback server speaking Google's owner APIs and token endpoint, run as a subprocess (port 0, URL on stdout).

* ``POST /token`` — OAuth 2: ``grant_type=refresh_token`` checks the client id, secret and refresh token;
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` verifies the service account's RS256 assertion
  with the public key whose PEM file ``GOOGLE_MOCK_PUBLIC_KEY`` names (issuer, audience, scope, expiry).
  Tokens are ``ya29.mock-N``; after ``/__expire`` the next API call finds every issued token expired (401).
* Business Profile: ``GET /v4/accounts/{a}/locations/{l}/reviews`` (``pageSize`` ≤ 50, ``pageToken``,
  ``orderBy=updateTime desc``), ``PUT``/``DELETE …/reviews/{id}/reply``. Location ``loc1`` has 60 reviews;
  ``loc-limited`` answers its first request with 429; ``loc-500`` always fails.
* Play: ``GET /androidpublisher/v3/applications/{pkg}/reviews`` (``maxResults``, ``token``),
  ``POST …/reviews/{id}:reply``. ``com.acme.app`` has 12 reviews this week.
* Control: ``/__hits`` (method, path, Authorization of every request), ``/__fail?codes=503,503`` (the next
  reply calls fail with these statuses, after storing the reply when ``stored=1``), ``/__edit?review=&stars=``
  ``&comment=`` (the reviewer edits), ``/__owner_reply?review=&text=`` (a reply made on the platform),
  ``/__state`` (replies and counts), ``/__expire``.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.subprocess_server import SubprocessServer

NOW = datetime.now(UTC).replace(microsecond=0)
ACCOUNT = "1234567890"
LOCATION = "loc1"
PACKAGE = "com.acme.app"
CLIENT_ID = "mock-client-id.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-mock-client-secret-42"
REFRESH_TOKEN = "1//mock-refresh-token-abcdef"
SA_EMAIL = "monitor@acme-play.iam.gserviceaccount.com"
BUSINESS_SCOPE = "https://www.googleapis.com/auth/business.manage"
PLAY_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
STARS = ["ONE", "TWO", "THREE", "FOUR", "FIVE"]
GBP_REVIEWS = 60
PLAY_REVIEWS = 12


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def gbp_review(n: int) -> dict[str, Any]:
    when = NOW - timedelta(hours=n + 1)
    review = {
        "name": f"accounts/{ACCOUNT}/locations/{LOCATION}/reviews/gbp-{n}",
        "reviewId": f"gbp-{n}",
        "reviewer": {"displayName": f"Reviewer {n}", "profilePhotoUrl": "https://lh3.example/p.png"},
        "starRating": STARS[n % 5],
        "comment": f"Review {n}: " + ("waited 40 minutes and the order was cold" if n % 5 == 0 else "lovely coffee"),
        "createTime": iso(when),
        "updateTime": iso(when),
    }
    if n == 7:
        review["reviewReply"] = {"comment": "Thanks for coming by!", "updateTime": iso(when + timedelta(minutes=5))}
    return review


def play_review(n: int) -> dict[str, Any]:
    seconds = int((NOW - timedelta(hours=n + 1)).timestamp())
    comments: list[dict[str, Any]] = [{"userComment": {
        "text": f"\tApp review {n}: " + ("crashes on checkout every time" if n % 4 == 0 else "works great"),
        "lastModified": {"seconds": str(seconds), "nanos": 0}, "starRating": 1 if n % 4 == 0 else 5,
        "reviewerLanguage": "en_GB", "device": "sailfish", "androidOsVersion": 34, "appVersionCode": 120,
        "appVersionName": "1.2.0", "thumbsUpCount": 0, "thumbsDownCount": 0,
    }}]  # fmt: skip
    if n == 3:
        comments.append(
            {
                "developerComment": {
                    "text": "Fixed in 1.2.1, thanks!",
                    "lastModified": {"seconds": str(seconds + 60), "nanos": 0},
                }
            }
        )
    return {"reviewId": f"play-{n}", "authorName": f"Player {n}", "comments": comments}


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.issued = 0
        self.gbp = {f"gbp-{n}": gbp_review(n) for n in range(GBP_REVIEWS)}
        self.play = {f"play-{n}": play_review(n) for n in range(PLAY_REVIEWS)}
        self.fail: list[int] = []
        self.fail_after_store = False
        self.reply_calls = 0
        self.limited: set[str] = set()
        self.token_requests: list[dict[str, Any]] = []
        self.expire_next = False


def _public_key() -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    path = os.environ.get("GOOGLE_MOCK_PUBLIC_KEY")
    return load_pem_public_key(open(path, "rb").read()) if path else None


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status: int, code: str, message: str) -> None:
        self.send_json(status, {"error": {"code": status, "message": message, "status": code}})

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        with self.state.lock:
            if self.state.expire_next:  # the token in use expired just now
                self.state.expire_next = False
                self.state.tokens.clear()
        if not auth.startswith("Bearer ") or auth[7:] not in self.state.tokens:
            self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return False
        return True

    def record(self) -> tuple[list[str], dict[str, str]]:
        parts = urlsplit(self.path)
        with self.state.lock:
            self.state.hits.append({"method": self.command, "path": self.path,
                                    "authorization": self.headers.get("Authorization")})  # fmt: skip
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return [unquote(s) for s in parts.path.strip("/").split("/")], query

    # ------------------------------------------------------------ routes

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/__"):
            return self.control(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})
        segments, query = self.record()
        if not self.authorized():
            return
        if segments[:2] == ["v4", "accounts"] and len(segments) == 6 and segments[5] == "reviews":
            return self.gbp_list(segments[4], query)
        if segments[:3] == ["androidpublisher", "v3", "applications"] and len(segments) == 5:
            return self.play_list(segments[3], query)
        self.error(404, "NOT_FOUND", "Requested entity was not found.")

    def do_POST(self) -> None:
        segments, query = self.record()
        if segments == ["token"]:
            return self.token()
        if not self.authorized():
            return
        if segments[:3] == ["androidpublisher", "v3", "applications"] and len(segments) == 6:
            review_id = segments[5].removesuffix(":reply")
            return self.reply("play", review_id, json.loads(self.body() or b"{}"))
        self.error(404, "NOT_FOUND", "Requested entity was not found.")

    def do_PUT(self) -> None:
        segments, _ = self.record()
        if not self.authorized():
            return
        if segments[:2] == ["v4", "accounts"] and len(segments) == 8 and segments[7] == "reply":
            return self.reply("gbp", segments[6], json.loads(self.body() or b"{}"))
        self.error(404, "NOT_FOUND", "Requested entity was not found.")

    def do_DELETE(self) -> None:
        segments, _ = self.record()
        if not self.authorized():
            return
        if segments[:2] == ["v4", "accounts"] and len(segments) == 8 and segments[7] == "reply":
            with self.state.lock:
                review = self.state.gbp.get(segments[6])
                if review is None:
                    return self.error(404, "NOT_FOUND", "Requested entity was not found.")
                review.pop("reviewReply", None)
            return self.send_json(200, {})
        self.error(404, "NOT_FOUND", "Requested entity was not found.")

    # ------------------------------------------------------------ token

    def token(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        with self.state.lock:
            self.state.token_requests.append({"grant_type": form.get("grant_type")})
        if form.get("grant_type") == "refresh_token":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return self.send_json(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            if form.get("refresh_token") != REFRESH_TOKEN:
                return self.send_json(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        elif form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            import jwt

            try:
                claims = jwt.decode(
                    form.get("assertion", ""), _public_key(), algorithms=["RS256"], audience=GOOGLE_TOKEN_URI
                )  # google-auth always names Google's endpoint
            except jwt.PyJWTError as exc:
                return self.send_json(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"})
            if claims.get("iss") != SA_EMAIL or claims.get("scope") != PLAY_SCOPE or "exp" not in claims:
                return self.send_json(400, {"error": "invalid_grant", "error_description": "Invalid JWT claims"})
        else:
            return self.send_json(400, {"error": "unsupported_grant_type"})
        with self.state.lock:
            self.state.issued += 1
            token = f"ya29.mock-{self.state.issued}"
            self.state.tokens.add(token)
        self.send_json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # ------------------------------------------------------------ lists

    def gbp_list(self, location: str, query: dict[str, str]) -> None:
        if "500" in location:
            return self.error(500, "INTERNAL", "Internal error encountered.")
        if "limited" in location and location not in self.state.limited:
            self.state.limited.add(location)
            return self.send_json(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, {"Retry-After": "0"})
        size = int(query.get("pageSize", "50"))
        if size > 50 or query.get("orderBy") != "updateTime desc":
            return self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        if location != LOCATION and "limited" not in location:
            return self.error(404, "NOT_FOUND", "Requested entity was not found.")
        with self.state.lock:
            reviews = sorted(self.state.gbp.values(), key=lambda r: r["updateTime"], reverse=True)
            reviews = json.loads(json.dumps(reviews))
        start = int(query.get("pageToken", "0"))
        page = reviews[start : start + size]
        data: dict[str, Any] = {"reviews": page, "averageRating": 3.0, "totalReviewCount": len(reviews)}
        if start + size < len(reviews):
            data["nextPageToken"] = str(start + size)
        self.send_json(200, data)

    def play_list(self, package: str, query: dict[str, str]) -> None:
        if package != PACKAGE:
            return self.error(404, "NOT_FOUND", "Package not found: " + package)
        size = int(query.get("maxResults", "100"))
        with self.state.lock:
            reviews = json.loads(json.dumps(list(self.state.play.values())))
        start = int(query.get("token", "0"))
        data: dict[str, Any] = {"reviews": reviews[start : start + size],
                                "pageInfo": {"totalResults": len(reviews), "resultPerPage": size}}  # fmt: skip
        if start + size < len(reviews):
            data["tokenPagination"] = {"nextPageToken": str(start + size)}
        self.send_json(200, data)

    # ------------------------------------------------------------ replies

    def reply(self, platform: str, review_id: str, body: dict[str, Any]) -> None:
        with self.state.lock:
            self.state.reply_calls += 1
            fail = self.state.fail.pop(0) if self.state.fail else None
            if fail is not None and not self.state.fail_after_store:
                return self.send_json(fail, {"error": {"code": fail, "message": "Backend Error"}},
                                      {"Retry-After": "0"} if fail == 429 else None)  # fmt: skip
            now = datetime.now(UTC).replace(microsecond=0)
            if platform == "gbp":
                review = self.state.gbp.get(review_id)
                if review is None:
                    return self.error(404, "NOT_FOUND", "Requested entity was not found.")
                if len(body.get("comment", "")) > 4096:
                    return self.error(400, "INVALID_ARGUMENT", "Reply is too long.")
                review["reviewReply"] = {"comment": body.get("comment"), "updateTime": iso(now)}
                answer: dict[str, Any] = dict(review["reviewReply"])
            else:
                review = self.state.play.get(review_id)
                if review is None:
                    return self.error(404, "NOT_FOUND", "Review not found.")
                text = body.get("replyText", "")
                if len(text) > 350:
                    return self.error(400, "INVALID_ARGUMENT", "Reply text too long.")
                stamp = {"seconds": str(int(now.timestamp())), "nanos": 0}
                review["comments"] = [c for c in review["comments"] if "developerComment" not in c]
                review["comments"].append({"developerComment": {"text": text, "lastModified": stamp}})
                answer = {"result": {"replyText": text, "lastEdited": stamp}}
        if fail is not None:  # stored, then failed: the client cannot know the reply exists
            return self.send_json(fail, {"error": {"code": fail, "message": "Backend Error"}})
        self.send_json(200, answer)

    # ------------------------------------------------------------ control

    def control(self, path: str, query: dict[str, str]) -> None:
        state = self.state
        with state.lock:
            if path == "/__hits":
                return self.send_json(200, state.hits)
            if path == "/__expire":
                state.expire_next = True
            elif path == "/__fail":
                state.fail = [int(c) for c in query.get("codes", "").split(",") if c]
                state.fail_after_store = query.get("stored") == "1"
            elif path == "/__edit":
                review = state.gbp[query["review"]]
                review["starRating"] = query.get("stars", review["starRating"])
                review["comment"] = query.get("comment", review["comment"])
                review["updateTime"] = iso(datetime.now(UTC).replace(microsecond=0))
            elif path == "/__owner_reply":
                stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
                if query["review"] in state.gbp:
                    review = state.gbp[query["review"]]
                    review["reviewReply"] = {"comment": query["text"], "updateTime": iso(stamp)}
                    review["updateTime"] = iso(stamp)
                else:
                    review = state.play[query["review"]]
                    review["comments"].append(
                        {
                            "developerComment": {
                                "text": query["text"],
                                "lastModified": {"seconds": str(int(stamp.timestamp())), "nanos": 0},
                            }
                        }
                    )
            elif path != "/__state":
                return self.send_json(404, {"error": "unknown control"})
            replies = {k: r.get("reviewReply") for k, r in state.gbp.items() if r.get("reviewReply")}
            play = {k: [c["developerComment"] for c in r["comments"] if "developerComment" in c]
                    for k, r in state.play.items()}  # fmt: skip
            self.send_json(200, {"gbp_replies": replies, "play_replies": {k: v for k, v in play.items() if v},
                                 "reply_calls": state.reply_calls, "issued": state.issued,
                                 "token_requests": state.token_requests})  # fmt: skip


def serve() -> None:
    Handler.state = State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class GoogleOwnerApis(SubprocessServer):
    module = "tests.google_owner_apis"

    def hits(self) -> list[dict[str, Any]]:
        return self.control("/__hits")

    def state(self) -> dict[str, Any]:
        return self.control("/__state")


if __name__ == "__main__":
    serve()
