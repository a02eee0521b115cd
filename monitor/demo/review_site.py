"""A small local review website for the demo: "Acme Coffee" (two locations) and a competitor.

``/reviews?page=1..3&location=downtown|airport|bean-street`` lists a business's
reviews with schema.org markup — JSON-LD on odd pages, microdata on even
pages — plus aggregateRating and rel="next" links; without ``location`` the
three pages hold the site's latest reviews across businesses. ``/reviews/ID``
shows one review; ``/robots.txt`` allows ``/reviews`` and disallows ``/admin``.
Dates are computed when the site starts, so the demo always looks fresh; a
review its author edited after the business answered (``follow_up``) shows the
edit once :meth:`ReviewSite.publish_follow_ups` is called (the demo does, after
its reply).

Run it alone with ``python -m monitor.demo.review_site --port 8090``.
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from monitor.demo.review_content import LOCATIONS, dated_reviews

PAGES = 3
SITE_NAME = "Springfield Coffee Guide"  # a local review site listing several businesses, ours among them
LATEST = 24  # reviews on the site-wide "latest reviews" pages (a business's own pages list all of its reviews)
# Review ids use a fixed canonical host: the local port changes on every start,
# and ids must not, or each demo run would store the same reviews again.
CANONICAL = "https://reviews.acme-coffee.example"
ROBOTS = "User-agent: *\nAllow: /reviews\nDisallow: /admin\n"


def _json_ld(data: Any) -> str:
    # "<" escaped so review text can never close the script element.
    text = json.dumps(data, ensure_ascii=False, indent=1).replace("<", "\\u003c")
    return f'<script type="application/ld+json">\n{text}\n</script>'


def _stars(review: dict[str, Any]) -> str:
    return f"{review['rating']}/{review['best']}"


class ReviewSite:
    """The site's content and rendering, independent of the HTTP server."""

    def __init__(self, base_url: str, now: datetime | None = None, follow_ups: bool = False) -> None:
        self.base_url = base_url
        self.now = now
        self.reviews = dated_reviews(now, follow_ups)

    def publish_follow_ups(self) -> None:
        """Customers edit their reviews after the business answered (the demo calls this after its reply)."""
        self.reviews = dated_reviews(self.now, follow_ups=True)

    def review_id(self, review: dict[str, Any]) -> str:
        return f"{CANONICAL}/reviews/{review['id']}"

    def review_url(self, review: dict[str, Any]) -> str:
        return f"{self.base_url}/reviews/{review['id']}"

    def page_url(self, page: int, location: str | None) -> str:
        query = {"page": page, **({"location": location} if location else {})}
        return f"{self.base_url}/reviews?{urlencode(query)}"

    def select(self, location: str | None, page: int) -> list[dict[str, Any]]:
        chosen = [r for r in self.reviews if location in (None, r["location"])]
        if location is None:
            chosen = chosen[:LATEST]
        size = -(-len(chosen) // PAGES)
        return chosen[(page - 1) * size : page * size]

    def aggregate(self, location: str) -> dict[str, Any]:
        ratings = [1 + (r["rating"] - 1) * 4 / (r["best"] - 1) for r in self.reviews if r["location"] == location]
        return {
            "@type": "AggregateRating",
            "ratingValue": round(sum(ratings) / len(ratings), 1),
            "bestRating": 5,
            "reviewCount": len(ratings),
        }

    # ------------------------------------------------------------ JSON-LD

    def review_ld(self, review: dict[str, Any]) -> dict[str, Any]:
        return {
            "@type": "Review",
            "@id": self.review_id(review),
            "url": self.review_url(review),
            "name": review["title"],
            "author": {"@type": "Person", "name": review["author"]},
            "datePublished": review["published"].isoformat(),
            **({"dateModified": review["modified"].isoformat()} if review.get("modified") else {}),
            "reviewBody": review["body"],
            "reviewRating": {
                "@type": "Rating",
                "ratingValue": review["rating"],
                "bestRating": review["best"],
                "worstRating": 1,
            },
        }

    def business_ld(self, location: str, reviews: list[dict[str, Any]]) -> dict[str, Any]:
        info = LOCATIONS[location]
        return {
            "@context": "https://schema.org",
            "@type": ["LocalBusiness", "CafeOrCoffeeShop"],
            "@id": f"{self.base_url}/#{location}",
            "name": info["name"],
            "telephone": info["phone"],
            "address": {"@type": "PostalAddress", "streetAddress": info["street"], "addressLocality": info["locality"]},
            "aggregateRating": self.aggregate(location),
            "review": [self.review_ld(r) for r in reviews],
        }

    # ---------------------------------------------------------- microdata

    def review_microdata(self, review: dict[str, Any]) -> str:
        e = escape
        return f"""
   <article itemprop="review" itemscope itemtype="https://schema.org/Review" itemid="{e(self.review_id(review))}">
    <h3 itemprop="name">{e(review["title"])}</h3>
    <p class="meta">by <span itemprop="author" itemscope itemtype="https://schema.org/Person"><span itemprop="name"
      >{e(review["author"])}</span></span> on
     <time itemprop="datePublished" datetime="{e(review["published"].isoformat())}"
      >{e(review["published"].strftime("%b %d, %Y %H:%M"))}</time>
     <span itemprop="reviewRating" itemscope itemtype="https://schema.org/Rating">
      <span itemprop="ratingValue">{review["rating"]}</span>/<span itemprop="bestRating">{review["best"]}</span>
      <meta itemprop="worstRating" content="1"></span></p>
    <p itemprop="reviewBody">{e(review["body"])}</p>
    <a itemprop="url" href="{e(self.review_url(review))}">Permalink</a>
   </article>"""

    def business_microdata(self, location: str, reviews: list[dict[str, Any]]) -> str:
        info, agg = LOCATIONS[location], self.aggregate(location)
        items = "".join(self.review_microdata(r) for r in reviews)
        return f"""
  <section itemscope itemtype="https://schema.org/CafeOrCoffeeShop">
   <h2 itemprop="name">{escape(info["name"])}</h2>
   <p itemprop="address">{escape(info["street"])}, {escape(info["locality"])}</p>
   <p itemprop="aggregateRating" itemscope itemtype="https://schema.org/AggregateRating">
    Rated <span itemprop="ratingValue">{agg["ratingValue"]}</span>/<span itemprop="bestRating">5</span>
    from <span itemprop="reviewCount">{agg["reviewCount"]}</span> reviews</p>{items}
  </section>"""

    # -------------------------------------------------------------- pages

    def _visible(self, review: dict[str, Any]) -> str:
        e = escape
        return (
            f'<article><h3><a href="{e(self.review_url(review))}">{e(review["title"])}</a></h3>'
            f'<p class="meta">{e(review["author"])} · {e(review["published"].strftime("%b %d, %Y %H:%M"))}'
            f" · {e(_stars(review))}</p><p>{e(review['body'])}</p></article>"
        )

    def _layout(self, title: str, body: str, head: str = "") -> bytes:
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
 <meta charset="utf-8">
 <title>{escape(title)}</title>
 <style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto}} .meta{{color:#666}}</style>{head}
</head>
<body>
 <header><a href="{escape(self.base_url)}/">{escape(SITE_NAME)}</a></header>
 <main>{body}</main>
</body>
</html>""".encode()

    def reviews_page(self, page: int, location: str | None) -> bytes | None:
        if not 1 <= page <= PAGES or location not in (None, *LOCATIONS):
            return None
        reviews = self.select(location, page)
        groups = {loc: [r for r in reviews if r["location"] == loc] for loc in LOCATIONS}
        groups = {loc: items for loc, items in groups.items() if items}
        head, nav = "", []
        if page > 1:
            prev_url = escape(self.page_url(page - 1, location))
            head += f'\n <link rel="prev" href="{prev_url}">'
            nav.append(f'<a rel="prev" href="{prev_url}">‹ Previous</a>')
        if page < PAGES:
            next_url = escape(self.page_url(page + 1, location))
            head += f'\n <link rel="next" href="{next_url}">'
            nav.append(f'<a rel="next" href="{next_url}">Next ›</a>')
        title = f"{LOCATIONS[location]['name'] if location else 'Latest'} reviews — page {page} of {PAGES}"
        if page % 2:
            markup = "".join(_json_ld(self.business_ld(loc, items)) for loc, items in groups.items())
            visible = "".join(
                f"<section><h2>{escape(LOCATIONS[loc]['name'])}</h2>{''.join(map(self._visible, items))}</section>"
                for loc, items in groups.items()
            )
            body = f"<h1>{escape(title)}</h1>{visible}{markup}"
        else:
            body = f"<h1>{escape(title)}</h1>" + "".join(
                self.business_microdata(loc, items) for loc, items in groups.items()
            )
        return self._layout(title, f"{body}\n <nav>{' '.join(nav)}</nav>", head)

    def review_page(self, review_id: str) -> bytes | None:
        review = next((r for r in self.reviews if r["id"] == review_id), None)
        if review is None:
            return None
        data = {
            **self.review_ld(review),
            "@context": "https://schema.org",
            "itemReviewed": {"@type": "LocalBusiness", "name": LOCATIONS[review["location"]]["name"]},
        }
        return self._layout(review["title"], self._visible(review) + _json_ld(data))

    def home_page(self) -> bytes:
        links = "".join(
            f'<li><a href="{escape(self.page_url(1, loc))}">{escape(info["name"])}</a></li>'
            for loc, info in LOCATIONS.items()
        )
        all_url = escape(self.page_url(1, None))
        body = f'<h1>{escape(SITE_NAME)}</h1><p><a href="{all_url}">Latest reviews</a></p><ul>{links}</ul>'
        return self._layout(SITE_NAME, body)


def _handler(site: ReviewSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "AcmeDemo/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the demo server is quiet; the crawler logs what matters

        def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            body: bytes | None = None
            if parts.path == "/robots.txt":
                self._send(200, ROBOTS.encode(), "text/plain; charset=utf-8")
                return
            if parts.path.startswith("/admin"):
                self._send(403, b"forbidden", "text/plain")
                return
            if parts.path == "/":
                body = site.home_page()
            elif parts.path == "/reviews":
                try:
                    page = int(query.get("page", ["1"])[0])
                except ValueError:
                    page = 0
                body = site.reviews_page(page, query.get("location", [None])[0])
            elif parts.path.startswith("/reviews/"):
                body = site.review_page(parts.path.removeprefix("/reviews/"))
            if body is None:
                self._send(404, b"<h1>Not found</h1>")
            else:
                self._send(200, body)

    return Handler


def start_review_site(
    port: int = 0, host: str = "127.0.0.1", now: datetime | None = None, follow_ups: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve the demo site in a daemon thread; returns the server (call ``shutdown()``) and its base URL.

    ``now`` is the moment the content is dated from (default: when it starts); the server's ``site``
    attribute is the :class:`ReviewSite` (``server.site.publish_follow_ups()``).
    """
    server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
    base_url = f"http://{host}:{server.server_address[1]}"
    site = ReviewSite(base_url, now, follow_ups)
    server.site = site  # type: ignore[attr-defined]
    server.RequestHandlerClass = _handler(site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="review-site", daemon=True).start()
    return server, base_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m monitor.demo.review_site",
        description="Serve the Acme Coffee demo review site on 127.0.0.1.",
        epilog="example: python -m monitor.demo.review_site --port 8090",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    args = parser.parse_args(argv)
    server, base_url = start_review_site(args.port)
    print(f"{base_url}/reviews?page=1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
