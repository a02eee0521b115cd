"""A loopback web server for the schema_org end-to-end tests, run as a subprocess.

Like Scrapy's own test mockserver it runs in a separate process (so the crawl
subprocess and the test process never share a reactor or a GIL with it),
listens on port 0 and prints its base URL as the first line of stdout.

Pages: ``/robots.txt`` (disallows ``/private``), ``/fixtures/NAME`` (the bundled
fixture files), ``/reviews?page=1..3`` (JSON-LD, microdata, RDFa; rel=next),
``/private/reviews``, ``/error`` (always 500), ``/malformed``, ``/empty`` (no
reviews), ``/edited`` (its review changes after ``/__set?edited=1``) and
``/__hits`` (JSON list of the paths requested so far).
"""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.subprocess_server import SubprocessServer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema_org"

ROBOTS = "User-agent: *\nDisallow: /private\nAllow: /\n"

PAGE_1_REVIEWS = [
    {
        "@type": "Review",
        "@id": "/reviews/r1",
        "author": {"@type": "Person", "name": "Dana K."},
        "datePublished": "2026-11-20T14:03:00-05:00",
        "name": "Waited forever",
        "reviewBody": "Waited 25 minutes for a latte <b>and</b> the barista ignored us.",
        "reviewRating": {"@type": "Rating", "ratingValue": 2, "bestRating": 5, "worstRating": 1},
    },
    {
        "@type": "Review",
        "@id": "/reviews/r2",
        "author": "Wei",
        "datePublished": "2026-11-19",
        "reviewBody": "昨晚的咖啡太难喝了，服务员态度很差",
        "reviewRating": {"@type": "Rating", "ratingValue": "10", "bestRating": "10"},
    },
]


def _page(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{head}</head><body>{body}</body></html>"
    ).encode()


def _json_ld(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/ld+json">{text}</script>'


def reviews_page(page: int) -> bytes:
    head = '<link rel="next" href="/reviews?page=2">' if page == 1 else ""
    if page == 1:
        business = {
            "@context": "https://schema.org",
            "@type": "LocalBusiness",
            "name": "Mock Cafe",
            "review": PAGE_1_REVIEWS,
        }
        return _page("Reviews 1", _json_ld(business), head)
    if page == 2:
        body = """
<div itemscope itemtype="https://schema.org/Restaurant"><span itemprop="name">Mock Cafe</span>
 <div itemprop="review" itemscope itemtype="https://schema.org/Review" itemid="http://mock/reviews/r3">
  <span itemprop="author" itemscope itemtype="https://schema.org/Person"><span itemprop="name">Sam</span></span>
  <meta itemprop="datePublished" content="2026-11-18T08:15:00Z">
  <div itemprop="reviewRating" itemscope itemtype="https://schema.org/Rating">
   <span itemprop="ratingValue">8</span>/<span itemprop="bestRating">10</span></div>
  <p itemprop="reviewBody">Great flat white this morning at 8, friendly staff.</p>
 </div>
</div>
<a href="/reviews?page=3">Next</a>"""
        return _page("Reviews 2", body)
    body = """
<div vocab="https://schema.org/" typeof="Review" resource="http://mock/reviews/r4">
 <span property="name">Sticky tables</span>
 <span property="author" typeof="Person"><span property="name">Lee</span></span>
 <span property="reviewRating" typeof="Rating"><span property="ratingValue">1</span></span>
 <span property="reviewBody">Tables were dirty and nobody cleaned them.</span>
 <meta property="datePublished" content="2026-11-17T21:00:00+00:00">
</div>
<a href="/private/reviews">Staff reviews</a>"""
    return _page("Reviews 3", body)


PRIVATE = _page("Private", _json_ld({"@type": "Review", "@id": "/private/r9", "reviewBody": "must never be fetched"}))
EMPTY = _page("No reviews", "<h1>Mock Cafe</h1><p>Be the first to review us.</p>")
MALFORMED = (
    b'<html><head><script type=\'application/ld+json\'>{"@type": "Review", "reviewBody": "unterminated'
    b"</script></head><body><div itemscope itemtype='https://schema.org/Restaurant'><span itemprop='name'>Broken"
    b"<div><p><table><td>unclosed"
)


def edited_page(edited: bool) -> bytes:
    review = {
        "@context": "https://schema.org",
        "@type": "Review",
        "@id": "http://mock/reviews/e1",
        "author": "Pat",
        "datePublished": "2026-11-16T12:00:00Z",
        "reviewBody": "Update: they refunded me, thanks." if edited else "Charged twice for one sandwich.",
        "reviewRating": {"@type": "Rating", "ratingValue": 4 if edited else 1},
    }
    return _page("Edited", _json_ld(review))


class MockState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[str] = []
        self.edited = False
        self.limited_hits = 0


class Handler(BaseHTTPRequestHandler):
    state: MockState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if not path.startswith("/__"):
            with self.state.lock:
                self.state.hits.append(self.path)
        if path == "/robots.txt":
            self.send(200, ROBOTS.encode(), "text/plain")
        elif path == "/reviews":
            page = int(query.get("page", ["1"])[0])
            self.send(200, reviews_page(page)) if 1 <= page <= 3 else self.send(404, b"not found")
        elif path.startswith("/fixtures/"):
            name = path.removeprefix("/fixtures/")
            file = FIXTURES / name
            if "/" in name or not file.is_file():
                self.send(404, b"not found")
            else:
                self.send(200, file.read_bytes())
        elif path.startswith("/private"):
            self.send(200, PRIVATE)
        elif path == "/limited":
            # First request is rate limited with Retry-After; later ones succeed.
            with self.state.lock:
                first = self.state.limited_hits == 0
                self.state.limited_hits += 1
            if first:
                self.send_response(429)
                self.send_header("Retry-After", query.get("after", ["1"])[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send(200, reviews_page(1))
        elif path == "/error":
            self.send(500, b"internal error")
        elif path == "/malformed":
            self.send(200, MALFORMED)
        elif path == "/empty":
            self.send(200, EMPTY)
        elif path == "/edited":
            self.send(200, edited_page(self.state.edited))
        elif path == "/__set":
            self.state.edited = query.get("edited", ["0"])[0] == "1"
            self.send(200, b"ok", "text/plain")
        elif path == "/__hits":
            with self.state.lock:
                self.send(200, json.dumps(self.state.hits).encode(), "application/json")
        else:
            self.send(404, b"not found")


def serve() -> None:
    Handler.state = MockState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class MockServer(SubprocessServer):
    """Context manager: start ``tests/mockserver.py`` as a subprocess, expose ``base_url``."""

    module = "tests.mockserver"


if __name__ == "__main__":
    serve()
