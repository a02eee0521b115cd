"""A loopback server speaking four review platforms' API formats, run as a subprocess.

Like ``tests/mockserver.py`` it listens on port 0 and prints its base URL as the first line.
The payload builders are plain functions, so parse tests use the very same documents.

* Apple: ``/{cc}/rss/customerreviews/page={n}/id={app}/sortby=mostrecent/json`` — 50 a page,
  pages up to 10 (``rel=last`` always says 10, like Apple), the app-metadata entry on page 1,
  an empty feed past the end; app ``1000000002`` has one review (a lone entry is an object).
* Google: ``/v1/places/{id}`` — needs ``X-Goog-Api-Key`` and ``X-Goog-FieldMask``; 5 reviews.
* Yelp: ``/v3/businesses/{id}/reviews`` — needs ``Authorization: Bearer``; 3 excerpts each for
  ``acme-coffee-springfield`` and ``rival-coffee-springfield`` (a competitor).
* Trustpilot: ``/v1/business-units/{id}/reviews`` — needs ``apikey``; ``perPage`` ≤ 100, ``next-page`` links.

Special ids on every platform: ``*500*`` always fails with 500, ``*malformed*`` returns broken
JSON, ``*wrongshape*`` returns JSON without the platform's keys, ``*limited*`` answers its first
request with 429 + ``Retry-After: 1`` and then serves normal data. Control:
``/__set?edited=1&extra=N`` (edit one review per platform; add N newer reviews) and
``/__hits`` (JSON: path and auth headers of every request so far).
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.subprocess_server import SubprocessServer

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PACIFIC = timezone(timedelta(hours=-7))  # Apple writes times with the storefront server's offset
KEYS = {"google": "test-google-key", "yelp": "test-yelp-key", "trustpilot": "test-trustpilot-key"}

APP_ID = "1000000001"
SINGLE_APP_ID = "1000000002"
APP_REVIEWS = 120  # 3 pages of 50
PLACE_ID = "ChIJmockCafe1"
YELP_ID = "acme-coffee-springfield"
RIVAL_YELP_ID = "rival-coffee-springfield"  # a competitor's business, for per-id brands
UNIT_ID = "5f0c1a2b3c4d5e6f7a8b9c0d"
UNIT_REVIEWS = 250  # 3 pages of 100

COMPLAINTS = [
    "Waited 25 minutes for a latte and the barista ignored us.",
    "The app charged me twice for one order.",
    "Tables were sticky and the bins overflowing.",
]
PRAISE = [
    "Great flat white, friendly staff, quick service.",
    "Love the new loyalty feature, ordering is so easy.",
]
MALFORMED = b'{"feed": {"entry": [{"id": {"label": "1"}, "im:rating": {"label": "5"'


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict[str, Any]] = []
        self.edited = False
        self.extra = 0
        self.limited: set[str] = set()


def _text(n: int) -> str:
    return (COMPLAINTS + PRAISE)[n % 5] + f" (visit {n})"


def _stars(n: int) -> int:
    return [2, 1, 2, 5, 4][n % 5]


def _when(n: int) -> datetime:
    # Review n was written 3 h * n before NOW; the extra reviews (n < 0) came after it.
    return NOW - timedelta(hours=3 * n)


# ------------------------------------------------------------------- Apple


def _label(value: str) -> dict[str, str]:
    return {"label": value}


def app_entry(app_id: str, country: str, n: int, state: State) -> dict[str, Any]:
    """Review ``n`` of an app (negative n: one of the extra, newer reviews)."""
    when = _when(n).astimezone(PACIFIC)
    text, stars = _text(n), _stars(n)
    if state.edited and n == 2:
        text, stars = "Update: support refunded the double charge within a day. Thanks!", 4
    # Apple's review ids are unique across apps and storefronts.
    review_id = str(11_000_000_000 + zlib.crc32(app_id.encode()) % 1000 * 100_000 + abs(n) * 7 + (500 if n < 0 else 0))
    return {
        "author": {
            "uri": _label(f"https://itunes.apple.com/{country}/reviews/id{900000 + abs(n)}"),
            "name": _label(f"coffeefan{abs(n)}"),
            "label": "",
        },
        "updated": _label(when.isoformat()),
        "im:rating": _label(str(stars)),
        "im:version": _label("4.12.0"),
        "id": _label(review_id),
        "title": _label(f"Review title {n}"),
        "content": {"label": text, "attributes": {"type": "text"}},
        "link": {"attributes": {"rel": "related", "href": f"https://itunes.apple.com/{country}/review?id={app_id}&type=Purple%20Software"}},
        "im:voteSum": _label("0"),
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "im:voteCount": _label("0"),
    }  # fmt: skip


def app_metadata_entry(app_id: str, country: str) -> dict[str, Any]:
    url = f"https://apps.apple.com/{country}/app/acme-coffee/id{app_id}?uo=2"
    return {
        "im:name": _label("Acme Coffee"),
        "rights": _label("© 2026 Acme Inc."),
        "im:price": {"label": "Get", "attributes": {"amount": "0.00", "currency": "USD"}},
        "im:artist": {"label": "Acme Inc.", "attributes": {"href": f"https://apps.apple.com/{country}/developer/id1"}},
        "title": _label("Acme Coffee - Acme Inc."),
        "link": {"attributes": {"rel": "alternate", "type": "text/html", "href": url}},
        "id": {"label": url, "attributes": {"im:id": app_id, "im:bundleId": "com.acme.coffee"}},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "category": {"attributes": {"im:id": "6023", "term": "Food & Drink", "label": "Food & Drink"}},
        "im:releaseDate": {"label": "2019-03-01T00:00:00-07:00", "attributes": {"label": "March 1, 2019"}},
    }


def app_store_page(app_id: str, country: str, page: int, state: State | None = None) -> dict[str, Any]:
    """One page of Apple's customer-reviews JSON feed."""
    state = state or State()
    total = APP_REVIEWS if app_id == APP_ID else 1 if app_id == SINGLE_APP_ID or "limited" in app_id else 0
    numbers = list(range(-state.extra, total)) if total else []
    chunk = numbers[(page - 1) * 50 : page * 50] if 1 <= page <= 10 else []
    entries: list[dict[str, Any]] = [app_entry(app_id, country, n, state) for n in chunk]
    if page == 1 and app_id == APP_ID:  # older feeds open page 1 with the app's own entry
        entries.insert(0, app_metadata_entry(app_id, country))
    path = f"customerreviews/page={page}/id={app_id}/sortby=mostrecent"
    rss = f"https://itunes.apple.com/{country}/rss"

    def xml_link(rel: str, to_page: int) -> dict[str, Any]:
        href = f"{rss}/customerreviews/page={to_page}/id={app_id}/sortby=mostrecent/xml?urlDesc=/{path}/json"
        return {"attributes": {"rel": rel, "href": href}}

    store = f"https://apps.apple.com/WebObjects/MZStore.woa/wa/viewGrouping?cc={country}&id=1"
    links = [
        {"attributes": {"rel": "alternate", "type": "text/html", "href": store}},
        {"attributes": {"rel": "self", "href": f"{rss}/{path}/json"}},
        xml_link("first", 1),
        xml_link("last", 10),
        xml_link("previous", max(page - 1, 1)),
        xml_link("next", min(page + 1, 10)),
    ]
    feed: dict[str, Any] = {
        "author": {"name": _label("iTunes Store"), "uri": _label("http://www.apple.com/us/itunes/")},
        "updated": _label(NOW.astimezone(PACIFIC).isoformat()),
        "rights": _label("Copyright 2008 Apple Inc."),
        "title": _label("iTunes Store: Customer Reviews"),
        "icon": _label("http://itunes.apple.com/favicon.ico"),
        "link": links,
        "id": _label(f"https://mzstoreservices-int.itunes.apple.com/{country}/rss/{path}/json"),
    }
    if entries:
        # Apple's XML-to-JSON conversion turns a one-element list into a bare object.
        feed["entry"] = entries[0] if len(entries) == 1 else entries
    return {"feed": feed}


# ------------------------------------------------------------------ Google


def google_place(place_id: str, language: str = "", state: State | None = None) -> dict[str, Any]:
    """Places API (New) place details with the field mask id,displayName,rating,userRatingCount,reviews."""
    state = state or State()
    place: dict[str, Any] = {
        "id": place_id,
        "displayName": {"text": "Acme Coffee Downtown", "languageCode": "en"},
        "rating": 3.4,
        "userRatingCount": 212,
    }
    if place_id != PLACE_ID and "limited" not in place_id:
        return place  # a place without reviews: Google leaves the field out
    reviews = []
    for n in range(5):
        text, stars, lang = _text(n), _stars(n), "en"
        original = None
        if n == 4:
            original, lang = "Sehr freundliches Personal, aber der Kaffee war kalt.", "de"
            text = "Very friendly staff, but the coffee was cold." if language == "en" else original
        if state.edited and n == 1:
            text, stars = "They fixed the double charge quickly. Better now.", 4
        publish = (_when(n) - timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
        rid = f"places/{place_id}/reviews/ChZDSUhNMG9nS0VJQ0FnSUQ{n}"
        review: dict[str, Any] = {
            "name": rid,
            "relativePublishTimeDescription": f"{n + 1} days ago",
            "rating": stars,
            "text": {"text": text, "languageCode": "en" if language == "en" else lang},
            "originalText": {"text": original or text, "languageCode": lang},
            "authorAttribution": {
                "displayName": f"Maps User {n}",
                "uri": f"https://www.google.com/maps/contrib/10{n}",
                "photoUri": f"https://lh3.googleusercontent.com/a/photo{n}=s128-c0x00000000-cc-rp-mo",
            },
            "publishTime": publish,
            "flagContentUri": f"https://www.google.com/local/review/rap/report?postId={n}",
            "googleMapsUri": f"https://www.google.com/maps/reviews/data=!4m6!14m5!1m4!2m3!1s{n}",
        }
        if n == 0:
            review["visitDate"] = {"year": 2026, "month": 11, "day": 21}
        if n == 3:
            review["visitDate"] = {"year": 2026, "month": 10}
        reviews.append(review)
    place["reviews"] = reviews
    return place


def google_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": code}}


# -------------------------------------------------------------------- Yelp


def yelp_reviews(business_id: str, state: State | None = None) -> dict[str, Any]:
    """Fusion ``/v3/businesses/{id}/reviews``: three excerpts (what the standard plan returns)."""
    state = state or State()
    reviews = []
    for n in range(-state.extra, 3 - state.extra):
        text, stars = _text(n)[:150] + "...", _stars(n)
        if state.edited and n == 0:
            text, stars = "Came back and the wait was much shorter, thanks...", 4
        # Business local time, no zone: 2026-11-22 04:00:00 means 04:00 in Springfield.
        created = (_when(n) - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S")
        rid = f"xAG4O7l-t1ubbwVAlPnD{abs(n)}" + ("x" if n < 0 else "")
        rid += "" if business_id == YELP_ID else f"-{business_id}"  # review ids are unique across businesses
        reviews.append(
            {
                "id": rid,
                "url": f"https://www.yelp.com/biz/{business_id}?adjust_creative=mock&hrid={rid}&utm_source=biz_api",
                "text": text,
                "rating": stars,
                "time_created": created,
                "user": {
                    "id": f"W8UK02IDdRS2GL_66fuq6{abs(n)}",
                    "profile_url": f"https://www.yelp.com/user_details?userid=W8UK02IDdRS2GL_66fuq6{abs(n)}",
                    "image_url": f"https://s3-media3.fl.yelpcdn.com/photo/{abs(n)}/o.jpg",
                    "name": f"Ella A{abs(n)}.",
                },
            }
        )
    return {"reviews": reviews, "total": 57 + state.extra, "possible_languages": ["en"]}


def yelp_error(code: str, description: str) -> dict[str, Any]:
    return {"error": {"code": code, "description": description}}


# -------------------------------------------------------------- Trustpilot


def trustpilot_review(unit_id: str, n: int, state: State) -> dict[str, Any]:
    offset = 0 if unit_id == UNIT_ID else 10**9  # review ids are unique across business units
    review_id = f"{640000000000000000000000 + offset + abs(n) * 13 + (5 if n < 0 else 0):x}"
    text, stars = _text(n), _stars(n)
    if state.edited and n == 1:
        text, stars = "Edited: the refund arrived, so two more stars.", 3
    created = _when(n).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    review: dict[str, Any] = {
        "links": [{"href": f"https://api.trustpilot.com/v1/reviews/{review_id}", "method": "GET", "rel": "reviews"}],
        "id": review_id,
        "consumer": {
            "links": [{"href": f"https://api.trustpilot.com/v1/consumers/c{n}", "method": "GET", "rel": "consumers"}],
            "id": f"5a{abs(n):022x}",
            "displayName": f"Jordan {abs(n)}",
            "displayLocation": "Springfield, US",
            "numberOfReviews": 3 + abs(n) % 7,
        },
        "businessUnit": {"links": [], "id": unit_id, "identifyingName": "acme.example", "displayName": "Acme"},
        "location": None,
        "stars": stars,
        "title": f"Review {n}",
        "text": text,
        "language": "en",
        "createdAt": created,
        "updatedAt": created if not (state.edited and n == 1) else NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "companyReply": None,
        "isVerified": n % 2 == 0,
        "numberOfLikes": 0,
        "status": "active",
        "reviewVerificationLevel": "invited" if n % 2 == 0 else "not-verified",
        "countsTowardsTrustScore": True,
    }
    day = (_when(n) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00.000Z")
    if n % 3 == 0:
        review["experiencedAt"] = day
    elif n % 3 == 1:
        review["dateOfExperience"] = day  # older payloads name it so
    return review


def trustpilot_page(base_url: str, unit_id: str, page: int, per_page: int, state: State | None = None) -> dict:
    """``/v1/business-units/{id}/reviews`` page, newest first, with prev/next-page links."""
    state = state or State()
    total = UNIT_REVIEWS if unit_id == UNIT_ID else 3 if "limited" in unit_id else 0
    numbers = list(range(-state.extra, total))
    chunk = numbers[(page - 1) * per_page : page * per_page]
    path = f"{base_url}/v1/business-units/{unit_id}/reviews"
    links = []
    if page > 1:
        links.append({"href": f"{path}?page={page - 1}&perPage={per_page}", "method": "GET", "rel": "prev-page"})
    if page * per_page < len(numbers):
        links.append({"href": f"{path}?page={page + 1}&perPage={per_page}", "method": "GET", "rel": "next-page"})
    return {"links": links, "reviews": [trustpilot_review(unit_id, n, state) for n in chunk]}


# ------------------------------------------------------------------ server


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(data, ensure_ascii=False).encode(), headers)

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def special(self, ident: str, error: Any) -> bool:
        """Shared failure modes, keyed by words in the requested id; True when answered."""
        if "500" in ident:
            self.send_body(500, b'{"error": "internal"}')
        elif "malformed" in ident:
            self.send_body(200, MALFORMED)
        elif "wrongshape" in ident:
            self.send_json(200, {"status": "ok", "data": []})  # valid JSON, none of the platform's keys
        elif "limited" in ident and ident not in self.state.limited:
            with self.state.lock:
                self.state.limited.add(ident)
            self.send_json(429, error, {"Retry-After": "1"})
        else:
            return False
        return True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        if parts.path == "/__hits":
            with self.state.lock:
                return self.send_json(200, self.state.hits)
        if parts.path == "/__set":
            self.state.edited = query.get("edited", "0") == "1"
            self.state.extra = int(query.get("extra", "0"))
            return self.send_json(200, {"ok": True})
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in
                   ("x-goog-api-key", "x-goog-fieldmask", "authorization", "apikey", "user-agent")}  # fmt: skip
        with self.state.lock:
            self.state.hits.append({"path": self.path, "headers": headers})
        if len(segments) == 7 and segments[1:3] == ["rss", "customerreviews"] and segments[6] == "json":
            return self.apple(segments)
        if segments[:2] == ["v1", "places"] and len(segments) == 3:
            return self.google(segments[2], query, headers)
        if segments[:2] == ["v3", "businesses"] and len(segments) == 4 and segments[3] == "reviews":
            return self.yelp(segments[2], query, headers)
        if segments[:2] == ["v1", "business-units"] and len(segments) == 4 and segments[3] == "reviews":
            return self.trustpilot(segments[2], query, headers)
        self.send_json(404, {"error": "not found"})

    def apple(self, segments: list[str]) -> None:
        country, page, app_id = segments[0], segments[3].removeprefix("page="), segments[4].removeprefix("id=")
        if self.special(app_id, {"status": 429}):
            return
        self.send_json(200, app_store_page(app_id, country, int(page) if page.isdigit() else 1, self.state))

    def google(self, place_id: str, query: dict[str, str], headers: dict[str, str]) -> None:
        key = headers.get("x-goog-api-key")
        if not key:
            message = "The request is missing a valid API key."
            return self.send_json(403, google_error(403, "PERMISSION_DENIED", message))
        if key != KEYS["google"]:
            message = "API key not valid. Please pass a valid API key."
            return self.send_json(400, google_error(400, "INVALID_ARGUMENT", message))
        if not headers.get("x-goog-fieldmask"):
            message = "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters"
            return self.send_json(400, google_error(400, "INVALID_ARGUMENT", message))
        quota = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Place Details requests'.")
        if self.special(place_id, quota):
            return
        if place_id == "ChIJnotFound":
            return self.send_json(404, google_error(404, "NOT_FOUND", f"Place '{place_id}' was not found."))
        self.send_json(200, google_place(place_id, query.get("languageCode", ""), self.state))

    def yelp(self, business_id: str, query: dict[str, str], headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        if not auth:
            message = "An access token must be supplied in order to use this endpoint."
            return self.send_json(401, yelp_error("TOKEN_MISSING", message))
        if auth != f"Bearer {KEYS['yelp']}":
            return self.send_json(401, yelp_error("TOKEN_INVALID", "Invalid access token or authorization header."))
        if int(query.get("limit", "20")) > 50:
            return self.send_json(400, yelp_error("VALIDATION_ERROR", "limit must be at most 50"))
        busy = "You have exceeded the queries-per-second limit for this endpoint."
        if self.special(business_id, yelp_error("TOO_MANY_REQUESTS_PER_SECOND", busy)):
            return
        if business_id not in (YELP_ID, RIVAL_YELP_ID) and "limited" not in business_id:
            return self.send_json(404, yelp_error("BUSINESS_NOT_FOUND", "The requested business could not be found."))
        self.send_json(200, yelp_reviews(business_id, self.state))

    def trustpilot(self, unit_id: str, query: dict[str, str], headers: dict[str, str]) -> None:
        key = headers.get("apikey") or query.get("apikey")
        if not key:
            fault = {"faultstring": "Failed to resolve API Key variable request.queryparam.apikey",
                     "detail": {"errorcode": "steps.oauth.v2.FailedToResolveAPIKey"}}  # fmt: skip
            return self.send_json(401, {"fault": fault})
        if key != KEYS["trustpilot"]:
            fault = {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}
            return self.send_json(401, {"fault": fault})
        per_page = int(query.get("perPage", "20"))
        if not 1 <= per_page <= 100:
            return self.send_json(400, {"message": "perPage must be between 1 and 100"})
        if self.special(unit_id, {"message": "Too many requests"}):
            return
        base = f"http://{self.headers.get('Host')}"
        page = int(query.get("page", "1"))
        self.send_json(200, trustpilot_page(base, unit_id, page, per_page, self.state))


def serve() -> None:
    Handler.state = State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


FAST = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING"}


def toml_value(value: Any) -> str:
    """A value as TOML: JSON for strings, numbers and lists (TOML reads them the same), inline tables for dicts."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(directory: Path, sources: list[dict[str, Any]], locations: list[dict[str, Any]] = ()) -> Path:
    """A config with these ``[[sources]]`` (and ``[[locations]]``) tables (values written as JSON, read as TOML)."""
    lines = ['[storage]\npath = "monitor.db"\n']
    for table in locations:
        lines.append("[[locations]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    for table in sources:
        lines.append("[[sources]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def crawl(config_path: Path, *names: str) -> dict[str, dict[str, Any]]:
    """Crawl the named sources (all when none) with the real engine in a child process."""
    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources

    config = load_config(config_path)
    chosen = [config.source(name) for name in names] if names else config.sources
    return crawl_scrapy_sources(config, chosen, settings=FAST, timeout=60)


class ReviewApis(SubprocessServer):
    """Context manager: start this module as a subprocess, expose ``base_url``."""

    module = "tests.review_apis"

    def hits(self) -> list[dict[str, Any]]:
        return self.control("/__hits")


if __name__ == "__main__":
    serve()
