"""Review-platform spiders on saved responses: mapping, pagination decisions, errors, incremental state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from scrapy.http import Request, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from monitor.config import ConfigError, SourceConfig, loads_config
from monitor.store import get_source_state, open_db, record_mentions, set_source_state
from spiders.api_base import ApiSpider, dig, error_detail, star_rating, utc_iso
from spiders.app_store import AppStoreSpider, entry_to_mention, feed_entries, last_page
from spiders.google_places import GooglePlacesSpider, details_url, visit_date
from spiders.google_places import review_to_mention as google_mention
from spiders.registry import SPIDER_CLASSES, spider_class
from spiders.trustpilot import TrustpilotSpider, experience_date, has_next_page
from spiders.trustpilot import review_to_mention as trustpilot_mention
from spiders.yelp import YelpSpider
from spiders.yelp import review_to_mention as yelp_mention
from tests import review_apis as apis

DEFAULTS = {
    "app_store": {"app_ids": [apis.APP_ID], "countries": ["us"], "base_url": "http://api.test", "max_pages": 10,
                  "overlap": 20},
    "google_places": {"place_ids": [apis.PLACE_ID], "api_key_env": "GOOGLE_PLACES_API_KEY", "language": "",
                      "base_url": "http://api.test"},
    "yelp": {"business_ids": [apis.YELP_ID], "api_key_env": "YELP_API_KEY", "locale": "", "timezone": "",
             "base_url": "http://api.test"},
    "trustpilot": {"business_unit_ids": [apis.UNIT_ID], "api_key_env": "TRUSTPILOT_API_KEY",
                   "base_url": "http://api.test", "max_pages": 20, "overlap": 20},
}  # fmt: skip


def make(cls: type[ApiSpider], **options: Any) -> Any:
    source = SourceConfig(
        name=f"test-{cls.name}", type=cls.name, brand="Acme", location="downtown",
        options={**DEFAULTS[cls.name], **options},
    )  # fmt: skip
    return cls(source=source)


def saved(url: str, data: Any, **meta: Any) -> TextResponse:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return TextResponse(url=url, body=body, encoding="utf-8", request=Request(url, meta=meta))


def split(output: Any) -> tuple[list[dict[str, Any]], list[Request]]:
    items = list(output)
    return [i for i in items if isinstance(i, dict)], [i for i in items if isinstance(i, Request)]


def start_requests(spider: ApiSpider) -> list[Request]:
    async def collect() -> list[Request]:
        return [request async for request in spider.start()]

    return asyncio.run(collect())


# ------------------------------------------------------------------ helpers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-21T23:00:00-07:00", "2026-11-22T06:00:00+00:00"),
        ("2026-11-22T12:00:00.000000123Z", "2026-11-22T12:00:00+00:00"),  # Google: nanoseconds
        ("2026-11-22T12:00:00.000Z", "2026-11-22T12:00:00+00:00"),
        ("2026-11-22 07:00:00", "2026-11-22T07:00:00+00:00"),
        ("yesterday", None),
        ("", None),
        (None, None),
        (1700000000, None),
    ],
)
def test_utc_iso(value: Any, expected: str | None) -> None:
    assert utc_iso(value) == expected


def test_utc_iso_reads_naive_times_in_a_zone_across_dst() -> None:
    chicago = ZoneInfo("America/Chicago")
    assert utc_iso("2026-07-04 12:00:00", assume=chicago) == "2026-07-04T17:00:00+00:00"  # CDT
    assert utc_iso("2026-12-04 12:00:00", assume=chicago) == "2026-12-04T18:00:00+00:00"  # CST


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5.0), ("1", 1.0), (3.5, 3.5), (0, None), (6, None), ("x", None), (None, None), (True, None)],
)
def test_star_rating(value: Any, expected: float | None) -> None:
    assert star_rating(value) == expected


def test_star_rating_other_scales() -> None:
    assert star_rating(10, best=10) == 5.0 and star_rating(1, best=10) == 1.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (apis.google_error(404, "NOT_FOUND", "Place 'x' was not found."), "NOT_FOUND: Place 'x' was not found."),
        (apis.yelp_error("TOKEN_MISSING", "A token must be supplied."), "TOKEN_MISSING: A token must be supplied."),
        ({"fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.X"}}}, "Invalid ApiKey"),
        ({"message": "perPage must be between 1 and 100"}, "perPage must be between 1 and 100"),
        ({"error": "internal"}, "internal"),
        ({"reviews": []}, None),
    ],
)  # fmt: skip
def test_error_detail(body: Any, expected: str | None) -> None:
    assert error_detail(json.dumps(body).encode()) == expected


def test_error_detail_of_non_json_and_dig() -> None:
    assert error_detail(b"<html>502 Bad Gateway</html>") is None
    assert dig({"a": [{"b": 1}]}, "a", 0, "b") == 1
    assert dig({"a": [{"b": 1}]}, "a", 3, "b") is None and dig({"a": "x"}, "a", "b") is None


def test_every_review_type_is_registered() -> None:
    for name, cls in {"app_store": AppStoreSpider, "google_places": GooglePlacesSpider, "yelp": YelpSpider,
                      "trustpilot": TrustpilotSpider}.items():  # fmt: skip
        assert name in SPIDER_CLASSES and spider_class(name) is cls


def test_yelp_timezone_is_validated() -> None:
    text = '[[sources]]\nname = "y"\ntype = "yelp"\nbusiness_ids = ["a"]\ntimezone = "{}"\n'
    assert loads_config(text.format("America/Chicago")).sources[0].options["timezone"] == "America/Chicago"
    assert loads_config(text.format("")).sources[0].options["timezone"] == ""
    with pytest.raises(ConfigError, match=r"^sources\[0\]\.timezone: unknown IANA time zone 'Mars/Base'"):
        loads_config(text.format("Mars/Base"))


def test_spider_needs_a_source() -> None:
    with pytest.raises(TypeError, match="needs source=SourceConfig"):
        YelpSpider()


# ---------------------------------------------------------------- App Store


def app_url(page: int, app_id: str = apis.APP_ID) -> str:
    return f"http://api.test/us/rss/customerreviews/page={page}/id={app_id}/sortby=mostrecent/json"


def app_page(page: int, app_id: str = apis.APP_ID, spider: Any = None, **state: Any) -> tuple[list, list]:
    spider = spider or make(AppStoreSpider)
    mock_state = apis.State()
    for key, value in state.items():
        setattr(mock_state, key, value)
    data = apis.app_store_page(app_id, "us", page, mock_state)
    return split(spider.parse(saved(app_url(page, app_id), data, app_id=app_id, country="us", page=page)))


def test_app_store_page_maps_reviews_and_skips_the_app_entry() -> None:
    mentions, requests = app_page(1)
    assert len(mentions) == 50  # 51 entries: the app-metadata entry has no im:rating
    first = mentions[0]
    entry = apis.app_entry(apis.APP_ID, "us", 0, apis.State())
    assert first == {
        "external_id": entry["id"]["label"],
        "url": f"https://itunes.apple.com/us/review?id={apis.APP_ID}&type=Purple%20Software",
        "kind": "review",
        "author": "coffeefan0",
        "author_reach": None,
        "title": "Review title 0",
        "text": "Waited 25 minutes for a latte and the barista ignored us. (visit 0)",
        "rating": 2.0,
        "lang": None,
        "posted_at": "2026-11-22T12:00:00+00:00",
        "experienced_at": None,
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": entry,
    }
    assert [r.url for r in requests] == [app_url(2)]
    assert requests[0].meta["page"] == 2 and requests[0].errback is not None


def test_app_store_lone_entry_and_the_end_of_the_feed() -> None:
    spider = make(AppStoreSpider)
    mentions, requests = app_page(1, apis.SINGLE_APP_ID, spider)
    assert len(mentions) == 1 and [r.url for r in requests] == [app_url(2, apis.SINGLE_APP_ID)]
    assert isinstance(apis.app_store_page(apis.SINGLE_APP_ID, "us", 1)["feed"]["entry"], dict)
    mentions, requests = app_page(2, apis.SINGLE_APP_ID, spider)
    assert mentions == [] and requests == [] and spider.problems == []  # past the last page: not a problem


def test_app_store_empty_first_page_and_bad_documents_are_reported() -> None:
    spider = make(AppStoreSpider)
    assert app_page(1, "999", spider) == ([], [])
    assert spider.problems == [f"no reviews for app 999 in storefront 'us' ({app_url(1, '999')})"]
    spider = make(AppStoreSpider)
    assert split(spider.parse(saved(app_url(1), apis.MALFORMED, app_id=apis.APP_ID, page=1))) == ([], [])
    assert spider.problems[0].startswith(f"malformed JSON from {app_url(1)}: ")
    spider = make(AppStoreSpider)
    assert split(spider.parse(saved(app_url(1), {"error": "x"}, app_id=apis.APP_ID, page=1))) == ([], [])
    assert spider.problems == [f"unexpected document from {app_url(1)}: no feed object"]


def test_app_store_page_limits() -> None:
    assert app_page(3, spider=make(AppStoreSpider, max_pages=3))[1] == []
    assert app_page(1, spider=make(AppStoreSpider, max_pages=1))[1] == []
    assert last_page(apis.app_store_page(apis.APP_ID, "us", 1)) == 10
    assert feed_entries({"feed": {}}) == [] and feed_entries([]) is None


def test_app_store_entry_without_id_or_rating_is_skipped() -> None:
    entry = apis.app_entry(apis.APP_ID, "us", 0, apis.State())
    assert entry_to_mention({**entry, "im:rating": {"label": "n/a"}}, apis.APP_ID, "us") is None
    assert entry_to_mention({k: v for k, v in entry.items() if k != "id"}, apis.APP_ID, "us") is None


# ------------------------------------------------------------ Google Places


def test_google_review_mapping() -> None:
    place = apis.google_place(apis.PLACE_ID, "en")
    mention = google_mention(place["reviews"][0], apis.PLACE_ID, "Acme", "downtown")
    assert mention == {
        "external_id": f"places/{apis.PLACE_ID}/reviews/ChZDSUhNMG9nS0VJQ0FnSUQ0",
        "url": "https://www.google.com/maps/reviews/data=!4m6!14m5!1m4!2m3!1s0",
        "kind": "review",
        "author": "Maps User 0",
        "author_reach": None,
        "title": None,
        "text": "Waited 25 minutes for a latte and the barista ignored us. (visit 0)",
        "rating": 2.0,
        "lang": "en",
        "posted_at": "2026-11-22T12:00:00+00:00",
        "experienced_at": "2026-11-21",
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": place["reviews"][0],
    }
    german = apis.google_place(apis.PLACE_ID)["reviews"][4]  # no languageCode asked: the review as written
    assert (google_mention(german, apis.PLACE_ID)["text"], google_mention(german, apis.PLACE_ID)["lang"]) == (
        "Sehr freundliches Personal, aber der Kaffee war kalt.",
        "de",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"year": 2026, "month": 3, "day": 7}, "2026-03-07"),
        ({"year": 2026, "month": 3}, "2026-03"),
        ({"year": 2026, "month": 3, "day": 0}, "2026-03"),
        ({"year": 2026}, None),
        (None, None),
        ({"year": "2026", "month": 3}, None),
    ],
)
def test_visit_date(value: Any, expected: str | None) -> None:
    assert visit_date(value) == expected


def test_google_parse_handles_places_without_reviews_and_bad_items() -> None:
    spider = make(GooglePlacesSpider)
    url = "http://api.test/v1/places/ChIJnoReviews"
    assert split(spider.parse(saved(url, apis.google_place("ChIJnoReviews"), place_id="ChIJnoReviews"))) == ([], [])
    assert spider.problems == []
    place = apis.google_place(apis.PLACE_ID)
    place["reviews"][1].pop("name")
    mentions, _ = split(spider.parse(saved(url, place, place_id=apis.PLACE_ID)))
    assert len(mentions) == 4
    assert spider.problems == [f"1 review(s) without a name (id) in {url}; skipped"]
    assert list(spider.parse(saved(url, [], place_id="x"))) == []
    assert spider.problems[-1] == f"unexpected response from {url}: no place object"


def test_google_start_sends_key_and_field_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_PLACES_API_KEY", "k-123")
    [request] = start_requests(make(GooglePlacesSpider, language="de"))
    assert request.url == f"http://api.test/v1/places/{apis.PLACE_ID}?languageCode=de"
    assert request.headers["X-Goog-Api-Key"] == b"k-123"
    assert request.headers["X-Goog-FieldMask"] == b"id,displayName,rating,userRatingCount,reviews"
    assert details_url("http://api.test/", "places/ChIJ x") == "http://api.test/v1/places/ChIJ%20x"


# --------------------------------------------------------------------- Yelp


def test_yelp_mapping_reads_local_time_in_the_configured_zone() -> None:
    review = apis.yelp_reviews(apis.YELP_ID)["reviews"][0]
    mention = yelp_mention(review, apis.YELP_ID, ZoneInfo("America/New_York"), "en_US", "Acme", "downtown")
    assert mention == {
        "external_id": "xAG4O7l-t1ubbwVAlPnD0",
        "url": review["url"],
        "kind": "review",
        "author": "Ella A0.",
        "author_reach": None,
        "title": None,
        "text": review["text"],
        "rating": 2.0,
        "lang": "en",
        "posted_at": "2026-11-22T12:00:00+00:00",  # 07:00 in New York (EST)
        "experienced_at": None,
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": review,
    }
    assert yelp_mention(review, apis.YELP_ID)["posted_at"] == "2026-11-22T07:00:00+00:00"  # no zone: UTC
    assert yelp_mention(review, apis.YELP_ID)["lang"] is None


def test_yelp_parse_and_bad_payloads() -> None:
    spider = make(YelpSpider, timezone="America/Chicago")
    url = f"http://api.test/v3/businesses/{apis.YELP_ID}/reviews?limit=50&sort_by=newest"
    mentions, _ = split(spider.parse(saved(url, apis.yelp_reviews(apis.YELP_ID), business_id=apis.YELP_ID)))
    assert [m["posted_at"] for m in mentions] == [
        "2026-11-22T13:00:00+00:00",
        "2026-11-22T10:00:00+00:00",
        "2026-11-22T07:00:00+00:00",
    ]
    assert split(spider.parse(saved(url, {"total": 0}))) == ([], [])
    assert spider.problems == [f"unexpected response from {url}: no reviews list"]
    assert split(spider.parse(saved(url, {"reviews": [{"text": "no id"}]}))) == ([], [])
    assert spider.problems[-1] == f"1 review(s) without an id in {url}; skipped"


def test_missing_key_is_a_clear_message_and_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YELP_API_KEY", raising=False)
    spider = make(YelpSpider)
    assert start_requests(spider) == []
    assert spider.problems == [
        "sources[0].api_key_env: environment variable YELP_API_KEY is not set (source 'test-yelp')"
    ]


# --------------------------------------------------------------- Trustpilot


def tp_url(page: int) -> str:
    return f"http://api.test/v1/business-units/{apis.UNIT_ID}/reviews?perPage=100&page={page}&orderBy=createdat.desc"


def test_trustpilot_mapping() -> None:
    review = apis.trustpilot_review(apis.UNIT_ID, 0, apis.State())
    mention = trustpilot_mention(review, "Acme", "downtown")
    assert mention == {
        "external_id": review["id"],
        "url": f"https://www.trustpilot.com/reviews/{review['id']}",
        "kind": "review",
        "author": "Jordan 0",
        "author_reach": None,  # numberOfReviews is not an audience
        "title": "Review 0",
        "text": "Waited 25 minutes for a latte and the barista ignored us. (visit 0)",
        "rating": 2.0,
        "lang": "en",
        "posted_at": "2026-11-22T12:00:00+00:00",
        "experienced_at": "2026-11-21",
        "location": "downtown",
        "brand": "Acme",
        "parent_id": None,
        "raw": review,
    }
    assert experience_date({"dateOfExperience": "2026-11-20T00:00:00.000Z"}) == "2026-11-20"
    assert experience_date({"experiencedAt": None}) is None


def test_trustpilot_paging_uses_the_header_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTPILOT_API_KEY", "tp-secret")
    spider = make(TrustpilotSpider, max_pages=2)
    [first] = start_requests(spider)
    assert first.url == tp_url(1) and first.headers["apikey"] == b"tp-secret"
    page1 = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 1, 100)
    mentions, requests = split(spider.parse(saved(tp_url(1), page1, unit_id=apis.UNIT_ID, page=1)))
    assert len(mentions) == 100
    assert [r.url for r in requests] == [tp_url(2)] and requests[0].headers["apikey"] == b"tp-secret"
    page2 = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 2, 100)
    assert has_next_page(page2)
    assert split(spider.parse(saved(tp_url(2), page2, unit_id=apis.UNIT_ID, page=2)))[1] == []  # max_pages
    page3 = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 3, 100)
    assert not has_next_page(page3)


def test_trustpilot_duplicate_items_across_pages_are_yielded_once() -> None:
    spider = make(TrustpilotSpider)
    page1 = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 1, 100)
    assert len(split(spider.parse(saved(tp_url(1), page1, unit_id=apis.UNIT_ID, page=1)))[0]) == 100
    # A new review arrived while paging: page 2 now starts with page 1's last review.
    shifted = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 2, 100)
    shifted["reviews"].insert(0, page1["reviews"][-1])
    assert len(split(spider.parse(saved(tp_url(2), shifted, unit_id=apis.UNIT_ID, page=2)))[0]) == 100


# -------------------------------------------------------------- errors, state


def test_http_error_message_names_url_and_detail_and_hides_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YELP_API_KEY", "s3cret-value")
    spider = make(YelpSpider)
    [request] = start_requests(spider)
    body = json.dumps(apis.yelp_error("TOKEN_INVALID", "Token s3cret-value is not valid.")).encode()
    response = TextResponse(request.url, status=401, body=body, request=request)
    failure = Failure(HttpError(response, "Ignoring non-200 response"))
    failure.request = request  # Scrapy attaches the request to the failure it hands an errback
    spider.on_error(failure)
    assert spider.problems == [f"HTTP 401 from {request.url}: TOKEN_INVALID: Token [redacted] is not valid."]


def test_on_error_for_network_failures() -> None:
    spider = make(TrustpilotSpider)
    request = spider.page_request(apis.UNIT_ID, 1)
    failure = Failure(ConnectionRefusedError("Connection was refused"))
    failure.request = request
    spider.on_error(failure)
    assert spider.problems == [f"could not fetch {tp_url(1)}: ConnectionRefusedError: Connection was refused"]
    assert spider._streams[apis.UNIT_ID] == "failed"


def stored_page(db: Any, source: str, page: dict[str, Any]) -> None:
    record_mentions(db, source, [trustpilot_mention(r) for r in page["reviews"]])


def test_overlap_stops_paging_only_after_a_complete_crawl(tmp_path: Path) -> None:
    db = open_db(tmp_path / "monitor.db")
    name = "test-trustpilot"
    page1 = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 1, 100)
    stored_page(db, name, page1)

    # Stored reviews, but no crawl has read the listing to its end yet: keep paging (fills a gap).
    spider = make(TrustpilotSpider)
    spider.db = db
    assert [r.url for r in split(spider.parse(saved(tp_url(1), page1, unit_id=apis.UNIT_ID, page=1)))[1]] == [tp_url(2)]

    set_source_state(db, name, f"backfilled:{apis.UNIT_ID}", "1")
    spider = make(TrustpilotSpider, overlap=20)
    spider.db = db
    mentions, requests = split(spider.parse(saved(tp_url(1), page1, unit_id=apis.UNIT_ID, page=1)))
    assert len(mentions) == 100 and requests == []  # re-read (edits are caught), then stop

    # Two new reviews on top, then stored ones: an overlap larger than a page keeps reading.
    state = apis.State()
    state.extra = 2
    newer = apis.trustpilot_page("http://api.test", apis.UNIT_ID, 1, 100, state)
    spider = make(TrustpilotSpider, overlap=150)
    spider.db = db
    assert len(split(spider.parse(saved(tp_url(1), newer, unit_id=apis.UNIT_ID, page=1)))[1]) == 1


def test_closed_records_which_listings_were_read_to_the_end(tmp_path: Path) -> None:
    db = open_db(tmp_path / "monitor.db")
    spider = make(AppStoreSpider, app_ids=[apis.APP_ID], countries=["us", "gb"])
    spider.db = db
    spider.request(app_url(1), spider.parse, stream=f"{apis.APP_ID}/us")
    spider.request(app_url(1), spider.parse, stream=f"{apis.APP_ID}/gb")
    spider.end_stream(f"{apis.APP_ID}/us")
    spider.end_stream(f"{apis.APP_ID}/gb", ok=False)
    spider.end_stream(f"{apis.APP_ID}/gb")  # a later success does not hide the failure
    spider.closed("finished")
    db = open_db(tmp_path / "monitor.db")
    assert get_source_state(db, "test-app_store", f"backfilled:{apis.APP_ID}/us") == "1"
    assert get_source_state(db, "test-app_store", f"backfilled:{apis.APP_ID}/gb") == "0"


def test_yelp_business_zone_precedence() -> None:
    from monitor.config import Location
    from spiders.yelp import business_zone

    locations = [
        Location(id="springfield", timezone="America/Chicago", sources=["listed"]),
        Location(id="eastside", timezone="America/New_York", business_ids=["biz-east"]),
    ]

    def zone(business_id: str, name: str = "y", location: str = "", timezone: str = "") -> str:
        source = SourceConfig(name=name, type="yelp", location=location, options={"timezone": timezone})
        return str(business_zone(source, business_id, locations))

    assert zone("biz-east", location="springfield", timezone="Europe/London") == "Europe/London"  # the option
    assert zone("biz-east", location="springfield") == "America/New_York"  # the location listing the business
    assert zone("biz-other", location="springfield") == "America/Chicago"  # the source's location
    assert zone("biz-other", name="listed") == "America/Chicago"  # a location listing the source
    assert zone("biz-other") == "UTC"  # nothing says: UTC, as before
