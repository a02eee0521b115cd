"""schema.org ``Review`` markup (JSON-LD, microdata, RDFa) on any page → mentions.

The extraction helpers are plain functions so they can be tested on saved
pages; :class:`SchemaOrgSpider` adds requests, pagination and error reporting.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import extruct
import scrapy
from extruct.utils import parse_xmldom_html
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure
from w3lib.html import remove_tags, replace_entities

from monitor.config import SourceConfig
from monitor.store import get_source_state, open_db, set_source_state
from spiders.backfill import describe, is_backfill
from spiders.pipelines import crawl_problem

CRAWLED_KEY = "crawled:"  # per start URL: "1" once a crawl read it without errors (docs/time-trust.md)

SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")
NEXT_TEXTS = {"next", "next page", "next ›", "next »", "›", "»", "next >", "next>", ">"}
RATING_SCALES = (5.0, 10.0, 100.0)


# ------------------------------------------------------------------ extraction


def _type_names(node: dict[str, Any]) -> set[str]:
    types = node.get("@type") or node.get("type") or []
    if not isinstance(types, list | tuple):
        types = [types]  # a string, or what a broken page puts there (true, 3, a table)
    # "http://schema.org/Review", "schema:Review" and "Review" are the same type.
    return {re.split(r"[/#:]", str(t))[-1] for t in types}


def _is_review(node: dict[str, Any]) -> bool:
    return any(name.endswith("Review") for name in _type_names(node))


def find_reviews(items: Any) -> list[dict[str, Any]]:
    """Every Review in ``items``: top level, in ``@graph``, or nested (e.g. ``LocalBusiness.review``)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            if _is_review(node):
                found.append(node)
                return
            for value in node.values():
                walk(value)

    walk(items)
    return found


def rdfa_to_items(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turn extruct's flat, expanded RDFa node list into nested compact dicts like JSON-LD."""
    by_id = {node["@id"]: node for node in nodes if isinstance(node, dict) and "@id" in node}
    referenced: set[str] = set()

    def compact(node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "@id" in node:
            out["@id"] = node["@id"]
        if "@type" in node:
            out["@type"] = [re.split(r"[/#]", t)[-1] for t in node["@type"]]
        for key, values in node.items():
            if key.startswith("@") or not key.startswith(SCHEMA_PREFIXES):
                continue
            converted = []
            for value in values:
                if "@value" in value:
                    converted.append(value["@value"])
                elif "@id" in value:
                    ref = value["@id"]
                    referenced.add(ref)
                    target = by_id.get(ref)
                    converted.append(compact(target, seen | {ref}) if target and ref not in seen else ref)
            out[key.split("/")[-1]] = converted[0] if len(converted) == 1 else converted
        return out

    compacted = [compact(node, frozenset({node.get("@id", "")})) for node in nodes if isinstance(node, dict)]
    return [item for item in compacted if item.get("@id") not in referenced and len(item) > 1]


def extract_structured(body: bytes, base_url: str, encoding: str = "utf-8") -> tuple[list[dict[str, Any]], list[str]]:
    """All schema.org items on a page, and a message for each part that could not be read.

    Each syntax (and each JSON-LD block) is read on its own, so one broken block
    does not hide the reviews in the others.
    """
    problems: list[str] = []
    try:
        tree = parse_xmldom_html(body, encoding=encoding)
    except Exception as exc:  # noqa: BLE001 - lxml raises several types for unreadable documents
        return [], [f"could not parse HTML on {base_url}: {exc or type(exc).__name__}"]

    items: list[dict[str, Any]] = []
    for number, script in enumerate(tree.xpath('//script[@type="application/ld+json"]'), start=1):
        try:
            items += extruct.extract(script, base_url=base_url, syntaxes=["json-ld"], errors="strict")["json-ld"]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"invalid JSON-LD block #{number} on {base_url}: {exc}")
    for syntax in ("microdata", "rdfa"):
        try:
            found = extruct.extract(tree, base_url=base_url, syntaxes=[syntax], uniform=True, errors="strict")[syntax]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"could not read {syntax} on {base_url}: {exc}")
            continue
        items += rdfa_to_items(found) if syntax == "rdfa" else found
    return items, problems


# --------------------------------------------------------------------- mapping


def _clean_text(value: Any, strip_html: bool = False) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if _clean_text(v)), None)
    if isinstance(value, dict):
        value = value.get("@value") or value.get("name")
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value)
    if strip_html and ("<" in text or "&" in text):
        # JSON-LD bodies often carry the site's HTML (<br>, &amp;); we store plain text.
        text = replace_entities(remove_tags(text))
    text = " ".join(text.split())
    return text or None


def author_name(value: Any) -> str | None:
    """An author as a string, whether markup gave a string, a Person/Organization, or a list."""
    if isinstance(value, list):
        names = [name for name in (author_name(v) for v in value) if name]
        return ", ".join(names) or None
    if isinstance(value, dict):
        return _clean_text(value.get("name")) or _clean_text(value.get("alternateName"))
    return _clean_text(value)


def _number(value: Any) -> float | None:
    value = _clean_text(value)
    if value is None:
        return None
    match = re.search(r"-?\d+(?:[.,]\d+)?", value)
    return float(match.group(0).replace(",", ".")) if match else None


def normalise_rating(rating: Any) -> float | None:
    """``reviewRating`` (a Rating or a bare number) mapped linearly onto 1–5."""
    if isinstance(rating, list):
        rating = rating[0] if rating else None
    if isinstance(rating, dict):
        value, best, worst = (_number(rating.get(k)) for k in ("ratingValue", "bestRating", "worstRating"))
    else:
        value, best, worst = _number(rating), None, None
    if value is None:
        return None
    worst = 1.0 if worst is None else worst
    if best is None:
        # schema.org defaults to 5, but sites that omit bestRating on a 10- or 100-point scale exist.
        best = next((scale for scale in RATING_SCALES if value <= scale), None)
        if best is None:
            return None
    if best <= worst:
        return None
    value = min(max(value, worst), best)
    return round(1 + (value - worst) * 4 / (best - worst), 2)


def parse_date(value: Any) -> str | None:
    """A schema.org date or date-time as a UTC ISO 8601 string (naive times are taken as UTC)."""
    text = _clean_text(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        import dateparser  # slow to import; only needed for free-form dates

        try:
            moment = dateparser.parse(text, settings={"TIMEZONE": "UTC", "RETURN_AS_TIMEZONE_AWARE": True})
        except (OverflowError, ValueError, TypeError):
            return None
        if moment is None:
            return None
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(microsecond=0).isoformat()
    except (OverflowError, ValueError):
        return None  # year 9999 east of UTC: no usable time, the review itself is kept


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def review_external_id(review: dict[str, Any], page_url: str, root_url: str) -> str:
    """A stable id: the review's own ``@id``/``url``, else a hash of what identifies it.

    The hash uses the crawl's start URL rather than the page URL because reviews
    move to later pages as new ones arrive. A review without an id whose text is
    edited gets a new hash, so edits are only tracked when the site gives ids.
    """
    # "id" is microdata's itemid; "_:" ids are RDFa blank nodes, new on every parse.
    for key in ("@id", "id", "url"):
        value = _clean_text(review.get(key))
        if value and not value.startswith("_:"):
            absolute = urljoin(page_url, value)
            if absolute not in (page_url, root_url):
                return absolute
    parts = [
        root_url,
        author_name(review.get("author")) or "",
        _clean_text(review.get("datePublished")) or "",
        (_clean_text(review.get("reviewBody")) or _clean_text(review.get("description")) or "")[:200],
    ]
    digest = hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"sha1:{digest[:32]}"


def review_to_mention(
    review: dict[str, Any], page_url: str, root_url: str | None = None, source: SourceConfig | None = None
) -> dict[str, Any]:
    """Map one extracted Review onto the stored mention shape."""
    root_url = root_url or page_url
    own_url = next((urljoin(page_url, str(review[k])) for k in ("url", "@id", "id") if _is_url(review.get(k))), None)
    return {
        "external_id": review_external_id(review, page_url, root_url),
        "url": own_url or page_url,
        "kind": "review",
        "author": author_name(review.get("author")),
        "author_reach": None,
        "title": _clean_text(review.get("name"), True) or _clean_text(review.get("headline"), True),
        "text": _clean_text(review.get("reviewBody"), True)
        or _clean_text(review.get("description"), True)
        or _clean_text(review.get("text"), True),
        "rating": normalise_rating(review.get("reviewRating")),
        "lang": None,
        "posted_at": parse_date(review.get("datePublished") or review.get("dateCreated")),
        "experienced_at": None,
        "location": source.location if source else "",
        "brand": source.brand if source else "",
        "parent_id": None,
        "raw": review,
    }


def _meta(response: Response) -> dict[str, Any]:
    # A saved response (tests, debugging) has no request and so no meta.
    return response.meta if response.request is not None else {}


def next_page_url(response: TextResponse) -> str | None:
    """The page's "next" link: ``<link rel=next>``, ``<a rel=next>``, or an anchor reading Next/›/»."""
    rel_next = "contains(concat(' ', normalize-space(@rel), ' '), ' next ')"
    href = response.xpath(f"//link[{rel_next}]/@href | //a[{rel_next}]/@href").get()
    if not href:
        for anchor in response.xpath("//a[@href]"):
            text = " ".join(" ".join(anchor.xpath(".//text()").getall()).split()).lower()
            label = (anchor.attrib.get("aria-label") or "").strip().lower()
            if text in NEXT_TEXTS or label in ("next", "next page"):
                href = anchor.attrib["href"]
                break
    return response.urljoin(href.strip()) if href and href.strip() else None


# ---------------------------------------------------------------------- spider


class SchemaOrgSpider(scrapy.Spider):
    """Crawl one ``schema_org`` source: its start URLs and, if configured, their next pages."""

    name = "schema_org"

    def __init__(self, source: SourceConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(source, SourceConfig):
            raise TypeError("SchemaOrgSpider needs source=SourceConfig(...) (one schema_org source from config)")
        self.source = source
        self.problems: list[str] = []
        self.started = datetime.now(UTC)
        self.storage_failed = False  # set by the store pipeline when an item could not be stored
        self._db: Any = None
        self._first: dict[str, bool] = {}  # start URL -> no clean crawl of it yet
        self._failed_roots: set[str] = set()

    @property
    def options(self) -> dict[str, Any]:
        return self.source.options

    def first_crawl(self, root_url: str) -> bool:
        """Whether no crawl has read this start URL cleanly yet (old reviews it finds are history)."""
        if root_url not in self._first:
            path = self.crawler.settings.get("MONITOR_DB_PATH") if getattr(self, "crawler", None) else None
            if path and self._db is None:
                self._db = open_db(path)
            # Without a store (a saved-page test) there is no history to judge by: not a first crawl.
            crawled = get_source_state(self._db, self.source.name, CRAWLED_KEY + root_url) if self._db else "1"
            self._first[root_url] = crawled != "1"
        return self._first[root_url]

    def closed(self, reason: str) -> None:
        """Remember which start URLs were read cleanly; runs after the store pipeline's last flush."""
        db, self._db = self._db, None
        if db is None:
            return
        try:
            if reason == "finished" and not self.storage_failed:
                for root in self._first.keys() - self._failed_roots:
                    set_source_state(db, self.source.name, CRAWLED_KEY + root, "1")
        finally:
            db.conn.close()

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.options.get("urls", []):
            yield scrapy.Request(
                url, callback=self.parse, errback=self.on_error, meta={"root_url": url, "page": 1, "start": True}
            )

    def report(self, message: str) -> None:
        """Log a problem naming the source and hand it to the pipeline as a crawl-run message."""
        self.logger.warning("source %r: %s", self.source.name, message)
        self.problems.append(message)
        crawler = getattr(self, "crawler", None)
        if crawler is not None:
            crawler.signals.send_catch_log(signal=crawl_problem, message=message, spider=self)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any] | scrapy.Request]:
        """Mentions for every Review on the page, then the next page's request."""
        root_url = _meta(response).get("root_url", response.url)
        if not isinstance(response, TextResponse):
            self.report(f"{response.url} is not an HTML page ({response.headers.get('Content-Type', b'?')!r})")
            return
        items, problems = extract_structured(response.body, response.url, response.encoding)
        for problem in problems:
            self.report(problem)
        seen: set[str] = set()
        first = self.first_crawl(root_url)
        for review in find_reviews(items):
            try:  # one review with hostile markup costs only itself, not the others on its page
                mention = review_to_mention(review, response.url, root_url, self.source)
            except Exception as exc:  # noqa: BLE001 - RecursionError, OverflowError…
                self._failed_roots.add(root_url)
                self.report(f"skipped a review on {response.url}: {describe(exc)}")
                continue
            if not mention["text"] and not mention["title"] and mention["rating"] is None:
                continue
            if first and is_backfill(mention["posted_at"], first, self.started):
                mention["backfill"] = True
            # The same review is sometimes marked up twice (JSON-LD and microdata).
            if mention["external_id"] not in seen:
                seen.add(mention["external_id"])
                yield mention
        if not seen:
            self.report(f"no schema.org reviews found on {response.url}")
        yield from self.follow_next(response)

    def follow_next(self, response: TextResponse) -> Iterator[scrapy.Request]:
        meta = _meta(response)
        page = meta.get("page", 1)
        if not self.options.get("follow_pagination", True) or page >= self.options.get("max_pages", 20):
            return
        url = next_page_url(response)
        # Pagination stays on the site being crawled; a "next" link elsewhere is not ours to follow.
        if url and url != response.url and urlsplit(url).netloc == urlsplit(response.url).netloc:
            next_meta = {"root_url": meta.get("root_url", response.url), "page": page + 1}
            yield scrapy.Request(url, callback=self.parse, errback=self.on_error, meta=next_meta)

    def on_error(self, failure: Failure) -> None:
        request = failure.request
        self._failed_roots.add(request.meta.get("root_url", request.url))
        if failure.check(HttpError):
            status = failure.value.response.status
            retries = request.meta.get("retry_times", 0)
            self.report(f"HTTP {status} from {request.url}" + (f" (after {retries} retries)" if retries else ""))
        elif "robots.txt" in str(failure.value):
            if request.meta.get("start"):
                self.report(f"{request.url} is disallowed by robots.txt; not fetched")
            else:
                self.logger.info("source %r: %s disallowed by robots.txt", self.source.name, request.url)
        else:
            self.report(f"could not fetch {request.url}: {failure.type.__name__}: {failure.getErrorMessage()}")
