"""Review-platform spiders end to end: the real Scrapy engine in a child process against ``tests/review_apis.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.store import open_db
from tests import review_apis as apis
from tests.review_apis import FAST, ReviewApis, crawl, write_config

REPO = Path(__file__).resolve().parents[1]
KEY_ENVS = {"GOOGLE_PLACES_API_KEY": "google", "YELP_API_KEY": "yelp", "TRUSTPILOT_API_KEY": "trustpilot"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReviewApis]:
    for env, platform in KEY_ENVS.items():
        monkeypatch.setenv(env, apis.KEYS[platform])  # the crawl child inherits the environment
    with ReviewApis() as mock:
        yield mock


def paths(server: ReviewApis, fragment: str) -> list[str]:
    return [hit["path"] for hit in server.hits() if fragment in hit["path"]]


def mention(db: Any, source: str, external_id: str) -> dict[str, Any]:
    return next(db.query("select * from mentions where source = ? and external_id = ?", [source, external_id]))


def revisions(db: Any, source: str, external_id: str) -> list[dict[str, Any]]:
    row = mention(db, source, external_id)
    return list(db.query("select * from mention_revisions where mention_id = ? order by id", [row["id"]]))


# ---------------------------------------------------------------- App Store


def test_app_store_pages_then_stops_at_known_reviews_and_keeps_edits(server: ReviewApis, tmp_path: Path) -> None:
    base = {"type": "app_store", "base_url": server.base_url, "brand": "Acme", "overlap": 20}
    path = write_config(tmp_path, [{"name": "ios", "app_ids": [apis.APP_ID, apis.SINGLE_APP_ID], **base}])
    first = crawl(path)["ios"]
    assert first == {"new": 121, "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    # Three full pages, then the empty page 4 ends the listing (Apple's rel=last always says 10).
    assert [p.split("/")[4] for p in paths(server, f"id={apis.APP_ID}/")] == ["page=1", "page=2", "page=3", "page=4"]

    server.control("/__set?edited=1&extra=3")
    second = crawl(path)["ios"]
    # Each app got 3 new reviews. The big one's page 1 holds them and 47 stored ones (one edited):
    # 47 stored in a row >= overlap 20, so its page 2 is not read.
    assert (second["new"], second["updated"], second["unchanged"], second["status"]) == (6, 1, 47, "ok")
    assert len(paths(server, f"id={apis.APP_ID}/")) == 5

    db = open_db(tmp_path / "monitor.db")
    edited = apis.app_entry(apis.APP_ID, "us", 2, apis.State())["id"]["label"]
    [revision] = revisions(db, "ios", edited)
    assert (revision["rating_before"], revision["rating_after"]) == (2.0, 4.0)
    assert revision["text_after"].startswith("Update: support refunded")
    row = mention(db, "ios", edited)
    assert row["posted_at"] == "2026-11-22T06:00:00+00:00"  # sent as 2026-11-21T23:00:00-07:00
    assert (row["kind"], row["brand"], row["author"]) == ("review", "Acme", "coffeefan2")
    assert json.loads(row["raw"])["im:version"] == {"label": "4.12.0"}
    assert db.execute("select count(*) from mentions where source = 'ios'").fetchone()[0] == 127


def test_app_store_errors_are_recorded_and_other_sources_still_crawl(server: ReviewApis, tmp_path: Path) -> None:
    base = {"type": "app_store", "base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "broken", "app_ids": ["500500500", "malformed1", "999"], **base},
            {"name": "fine", "app_ids": [apis.SINGLE_APP_ID], **base},
        ],
    )
    result = crawl(path)
    assert result["fine"]["status"] == "ok" and result["fine"]["new"] == 1
    broken = result["broken"]
    assert broken["status"] == "failed" and broken["new"] == 0
    url = f"{server.base_url}/us/rss/customerreviews/page=1/id={{}}/sortby=mostrecent/json"
    assert f"HTTP 500 from {url.format('500500500')} (after 2 retries): internal" in broken["messages"]
    assert any(m.startswith(f"malformed JSON from {url.format('malformed1')}") for m in broken["messages"])
    assert f"no reviews for app 999 in storefront 'us' ({url.format('999')})" in broken["messages"]
    assert len(paths(server, "id=500500500/")) == 3  # the first try and RETRY_TIMES = 2 retries


# ------------------------------------------------------------ Google Places


def test_google_places_reviews_visit_dates_and_edits(server: ReviewApis, tmp_path: Path) -> None:
    source = {"name": "maps", "type": "google_places", "base_url": server.base_url, "language": "en",
              "place_ids": [apis.PLACE_ID, "ChIJnoReviews"], "location": "downtown"}  # fmt: skip
    path = write_config(tmp_path, [source])
    path.write_text(path.read_text() + '\n[[locations]]\nid = "downtown"\ntimezone = "America/Chicago"\n')
    first = crawl(path)["maps"]
    assert first == {"new": 5, "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    for hit in server.hits():
        assert hit["headers"]["x-goog-api-key"] == apis.KEYS["google"]
        assert hit["headers"]["x-goog-fieldmask"] == "id,displayName,rating,userRatingCount,reviews"
        assert "key=" not in hit["path"]

    server.control("/__set?edited=1")
    second = crawl(path)["maps"]
    assert (second["new"], second["updated"], second["unchanged"]) == (0, 1, 4)

    db = open_db(tmp_path / "monitor.db")
    rows = {r["external_id"].rsplit("/", 1)[-1][-1]: r for r in db.query("select * from mentions")}
    assert rows["0"]["experienced_at"] == "2026-11-21"
    assert rows["3"]["experienced_at"] == "2026-10"
    assert rows["1"]["experienced_at"] is None
    assert (rows["4"]["text"], rows["4"]["lang"]) == ("Very friendly staff, but the coffee was cold.", "en")
    assert json.loads(rows["4"]["raw"])["originalText"]["languageCode"] == "de"
    assert rows["0"]["posted_at"] == "2026-11-22T12:00:00+00:00"  # sent with nanoseconds
    assert rows["0"]["location"] == "downtown"
    [revision] = revisions(db, "maps", rows["1"]["external_id"])
    assert (revision["rating_before"], revision["rating_after"]) == (1.0, 4.0)


def test_google_places_errors_and_credentials(server: ReviewApis, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MISSING_KEY_FOR_TEST", raising=False)
    monkeypatch.setenv("WRONG_GOOGLE_KEY", "wrong-google-secret")
    base = {"type": "google_places", "base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "broken", "place_ids": ["ChIJerror500", "ChIJmalformed", "ChIJnotFound"], **base},
            {"name": "nokey", "place_ids": [apis.PLACE_ID], "api_key_env": "MISSING_KEY_FOR_TEST", **base},
            {"name": "badkey", "place_ids": [apis.PLACE_ID], "api_key_env": "WRONG_GOOGLE_KEY", **base},
        ],
    )
    result = crawl(path)
    broken = result["broken"]["messages"]
    place = f"{server.base_url}/v1/places/{{}}"
    assert f"HTTP 500 from {place.format('ChIJerror500')} (after 2 retries): internal" in broken
    assert any(m.startswith(f"malformed JSON from {place.format('ChIJmalformed')}") for m in broken)
    assert f"HTTP 404 from {place.format('ChIJnotFound')}: NOT_FOUND: Place 'ChIJnotFound' was not found." in broken
    assert result["nokey"] == {
        "new": 0, "updated": 0, "unchanged": 0, "errors": 1, "status": "failed",
        "messages": ["sources[1].api_key_env: environment variable MISSING_KEY_FOR_TEST is not set (source 'nokey')"],
    }  # fmt: skip
    assert result["badkey"]["messages"] == [
        f"HTTP 400 from {place.format(apis.PLACE_ID)}: INVALID_ARGUMENT: API key not valid. "
        "Please pass a valid API key."
    ]
    # The missing key stopped the source before any request; the wrong one was sent once.
    assert sum(hit["headers"].get("x-goog-api-key") == "wrong-google-secret" for hit in server.hits()) == 1


# --------------------------------------------------------------------- Yelp


def test_yelp_excerpts_local_times_and_edits(server: ReviewApis, tmp_path: Path) -> None:
    source = {"name": "yelp", "type": "yelp", "base_url": server.base_url, "business_ids": [apis.YELP_ID],
              "locale": "en_US", "timezone": "America/Chicago"}  # fmt: skip
    path = write_config(tmp_path, [source])
    first = crawl(path)["yelp"]
    assert first == {"new": 3, "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    [hit] = server.hits()
    assert hit["headers"]["authorization"] == f"Bearer {apis.KEYS['yelp']}"
    assert hit["path"] == f"/v3/businesses/{apis.YELP_ID}/reviews?limit=50&sort_by=newest&locale=en_US"

    server.control("/__set?edited=1&extra=1")
    second = crawl(path)["yelp"]
    assert (second["new"], second["updated"], second["unchanged"]) == (1, 1, 1)

    db = open_db(tmp_path / "monitor.db")
    row = mention(db, "yelp", "xAG4O7l-t1ubbwVAlPnD0")
    assert row["posted_at"] == "2026-11-22T13:00:00+00:00"  # "2026-11-22 07:00:00" in Chicago (CST, UTC-6)
    assert (row["lang"], row["author"], row["rating"]) == ("en", "Ella A0.", 4.0)
    [revision] = revisions(db, "yelp", "xAG4O7l-t1ubbwVAlPnD0")
    assert (revision["rating_before"], revision["rating_after"]) == (2.0, 4.0)
    assert db.execute("select count(*) from mentions").fetchone()[0] == 4


def test_yelp_errors(server: ReviewApis, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WRONG_YELP_KEY", "wrong-yelp-secret")
    base = {"type": "yelp", "base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "broken", "business_ids": ["yelp-500", "yelp-malformed", "no-such-biz"], **base},
            {"name": "badkey", "business_ids": [apis.YELP_ID], "api_key_env": "WRONG_YELP_KEY", **base},
            {"name": "fine", "business_ids": [apis.YELP_ID], **base},
        ],
    )
    result = crawl(path)
    assert result["fine"]["status"] == "ok" and result["fine"]["new"] == 3
    reviews = f"{server.base_url}/v3/businesses/{{}}/reviews?limit=50&sort_by=newest"
    assert sorted(result["broken"]["messages"])[0].startswith(f"HTTP 404 from {reviews.format('no-such-biz')}: ")
    assert f"HTTP 500 from {reviews.format('yelp-500')} (after 2 retries): internal" in result["broken"]["messages"]
    assert any(m.startswith("malformed JSON from") for m in result["broken"]["messages"])
    assert result["badkey"]["messages"] == [
        f"HTTP 401 from {reviews.format(apis.YELP_ID)}: TOKEN_INVALID: Invalid access token or authorization header."
    ]


# --------------------------------------------------------------- Trustpilot


def test_trustpilot_pages_stops_at_known_reviews_and_keeps_edits(server: ReviewApis, tmp_path: Path) -> None:
    source = {"name": "tp", "type": "trustpilot", "base_url": server.base_url, "business_unit_ids": [apis.UNIT_ID]}
    path = write_config(tmp_path, [source])
    first = crawl(path)["tp"]
    assert first == {"new": 250, "updated": 0, "unchanged": 0, "errors": 0, "messages": [], "status": "ok"}
    hits = server.hits()
    assert [h["path"].split("page=")[1][0] for h in hits] == ["1", "2", "3"]
    # The key travels in the apikey header, never in a URL (Scrapy logs URLs).
    assert all(h["headers"]["apikey"] == apis.KEYS["trustpilot"] and "apikey" not in h["path"] for h in hits)
    assert all("perPage=100" in h["path"] and "orderBy=createdat.desc" in h["path"] for h in hits)

    server.control("/__set?edited=1&extra=2")
    second = crawl(path)["tp"]
    assert (second["new"], second["updated"], second["unchanged"]) == (2, 1, 97)
    assert len(server.hits()) == 4  # page 1 only: 98 stored reviews in a row >= overlap 20

    db = open_db(tmp_path / "monitor.db")
    edited = apis.trustpilot_review(apis.UNIT_ID, 1, apis.State())["id"]
    [revision] = revisions(db, "tp", edited)
    assert (revision["rating_before"], revision["rating_after"]) == (1.0, 3.0)
    row = mention(db, "tp", edited)
    assert (row["experienced_at"], row["posted_at"], row["author_reach"]) == (
        "2026-11-21",
        "2026-11-22T09:00:00+00:00",
        None,
    )


def test_trustpilot_errors_and_missing_key(server: ReviewApis, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TRUSTPILOT_API_KEY")
    base = {"type": "trustpilot", "base_url": server.base_url}
    path = write_config(tmp_path, [{"name": "tp", "business_unit_ids": [apis.UNIT_ID], **base}])
    result = crawl(path)["tp"]
    assert result["messages"] == [
        "sources[0].api_key_env: environment variable TRUSTPILOT_API_KEY is not set (source 'tp')"
    ]
    assert server.hits() == []

    monkeypatch.setenv("TRUSTPILOT_API_KEY", "wrong-tp-secret")
    path = write_config(tmp_path, [{"name": "tp", "business_unit_ids": [apis.UNIT_ID, "tp500", "tpmalformed"], **base}])
    messages = crawl(path)["tp"]["messages"]
    unit = f"{server.base_url}/v1/business-units/{{}}/reviews?perPage=100&page=1&orderBy=createdat.desc"
    assert f"HTTP 401 from {unit.format(apis.UNIT_ID)}: Invalid ApiKey" in messages
    assert len(messages) == 3

    monkeypatch.setenv("TRUSTPILOT_API_KEY", apis.KEYS["trustpilot"])
    messages = crawl(path)["tp"]["messages"]
    assert f"HTTP 500 from {unit.format('tp500')} (after 2 retries): internal" in messages
    assert any(m.startswith(f"malformed JSON from {unit.format('tpmalformed')}") for m in messages)


# ------------------------------------------------------- shared behaviour


def test_429_with_retry_after_is_waited_out_on_every_platform(server: ReviewApis, tmp_path: Path) -> None:
    base = {"base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "ios", "type": "app_store", "app_ids": ["limited1"], **base},
            {"name": "maps", "type": "google_places", "place_ids": ["ChIJlimited"], **base},
            {"name": "yelp", "type": "yelp", "business_ids": ["yelp-limited"], **base},
            {"name": "tp", "type": "trustpilot", "business_unit_ids": ["tp-limited"], **base},
        ],
    )
    started = time.monotonic()
    result = crawl(path)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    for name, new in {"ios": 1, "maps": 5, "yelp": 3, "tp": 3}.items():
        assert (result[name]["status"], result[name]["new"]) == ("ok", new), (name, result[name])
    for ident in ("id=limited1/", "ChIJlimited", "yelp-limited", "tp-limited"):
        assert len(paths(server, ident)) >= 2, ident  # rate limited once, then retried


def test_payloads_without_the_platform_keys_are_reported(server: ReviewApis, tmp_path: Path) -> None:
    base = {"base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "ios", "type": "app_store", "app_ids": ["wrongshape"], **base},
            {"name": "maps", "type": "google_places", "place_ids": ["ChIJwrongshape"], **base},
            {"name": "yelp", "type": "yelp", "business_ids": ["wrongshape"], **base},
            {"name": "tp", "type": "trustpilot", "business_unit_ids": ["wrongshape"], **base},
        ],
    )
    result = crawl(path)
    expected = {
        "ios": "unexpected document from {}/us/rss/customerreviews/page=1/id=wrongshape/sortby=mostrecent/json: "
        "no feed object",
        "maps": "unexpected response from {}/v1/places/ChIJwrongshape: no place object",
        "yelp": "unexpected response from {}/v3/businesses/wrongshape/reviews?limit=50&sort_by=newest: no reviews list",
        "tp": "unexpected response from {}/v1/business-units/wrongshape/reviews?perPage=100&page=1"
        "&orderBy=createdat.desc: no reviews list",
    }
    for name, message in expected.items():
        assert result[name]["messages"] == [message.format(server.base_url)], name
        assert result[name]["status"] == "failed"


def test_secrets_never_reach_logs_or_the_database(server: ReviewApis, tmp_path: Path) -> None:
    base = {"base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "maps", "type": "google_places", "place_ids": [apis.PLACE_ID, "ChIJerror500"], **base},
            {"name": "yelp", "type": "yelp", "business_ids": [apis.YELP_ID, "no-such-biz"], **base},
            {"name": "tp", "type": "trustpilot", "business_unit_ids": [apis.UNIT_ID], "max_pages": 1, **base},
        ],
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    settings = [arg for key, value in {**FAST, "LOG_LEVEL": "DEBUG"}.items() for arg in ("--setting", f"{key}={value}")]
    proc = subprocess.run(
        [sys.executable, "-m", "spiders.run", "--config", str(path), *settings, "maps", "yelp", "tp"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert "Crawled (200)" in log  # DEBUG logging was on
    db = open_db(tmp_path / "monitor.db")
    stored = json.dumps([list(row) for table in ("mentions", "crawl_runs", "source_state")
                         for row in db.execute(f"select * from {table}").fetchall()])  # fmt: skip
    for secret in apis.KEYS.values():
        assert secret not in log
        assert secret not in stored


def test_competitor_ids_tag_their_reviews_with_that_brand(server: ReviewApis, tmp_path: Path) -> None:
    base = {"base_url": server.base_url, "brand": "Acme"}
    rival = "Rival Coffee"
    path = write_config(
        tmp_path,
        [
            {"name": "ios", "type": "app_store", "app_ids": [apis.APP_ID, apis.SINGLE_APP_ID],
             "brands": {rival: [apis.SINGLE_APP_ID]}, **base},
            {"name": "maps", "type": "google_places", "place_ids": [apis.PLACE_ID, "ChIJlimited"],
             "brands": {rival: ["ChIJlimited"]}, **base},
            {"name": "yelp", "type": "yelp", "business_ids": [apis.YELP_ID, apis.RIVAL_YELP_ID],
             "brands": {rival: [apis.RIVAL_YELP_ID]}, **base},
            {"name": "tp", "type": "trustpilot", "business_unit_ids": [apis.UNIT_ID, "tp-limited"],
             "brands": {rival: ["tp-limited"]}, "max_pages": 1, **base},
        ],
    )  # fmt: skip
    result = crawl(path)
    assert {name: r["status"] for name, r in result.items()} == dict.fromkeys(("ios", "maps", "yelp", "tp"), "ok")
    db = open_db(tmp_path / "monitor.db")
    counts = db.execute("select source, brand, count(*) from mentions group by source, brand").fetchall()
    assert {(source, brand): n for source, brand, n in counts} == {
        ("ios", "Acme"): 120, ("ios", rival): 1,
        ("maps", "Acme"): 5, ("maps", rival): 5,
        ("yelp", "Acme"): 3, ("yelp", rival): 3,
        ("tp", "Acme"): 100, ("tp", rival): 3,
    }  # fmt: skip
    assert mention(db, "yelp", f"xAG4O7l-t1ubbwVAlPnD0-{apis.RIVAL_YELP_ID}")["brand"] == rival
    assert mention(db, "maps", "places/ChIJlimited/reviews/ChZDSUhNMG9nS0VJQ0FnSUQ0")["brand"] == rival


def test_yelp_times_default_to_the_locations_time_zone(server: ReviewApis, tmp_path: Path) -> None:
    base = {"type": "yelp", "base_url": server.base_url}
    path = write_config(
        tmp_path,
        [
            {"name": "by-source", "business_ids": [apis.RIVAL_YELP_ID], "location": "springfield", **base},
            {"name": "by-business", "business_ids": [apis.YELP_ID, apis.RIVAL_YELP_ID], **base},
            {"name": "explicit", "business_ids": [apis.YELP_ID], "location": "springfield", "timezone": "UTC", **base},
        ],
        locations=[
            {"id": "springfield", "timezone": "America/Chicago"},
            {"id": "eastside", "timezone": "America/New_York", "business_ids": [apis.YELP_ID]},
        ],
    )
    result = crawl(path)
    assert {name: (r["status"], r["new"]) for name, r in result.items()} == {
        "by-source": ("ok", 3), "by-business": ("ok", 6), "explicit": ("ok", 3)
    }  # fmt: skip
    db = open_db(tmp_path / "monitor.db")
    review = "xAG4O7l-t1ubbwVAlPnD0"  # time_created "2026-11-22 07:00:00", business local time
    rival_review = f"{review}-{apis.RIVAL_YELP_ID}"
    assert mention(db, "by-source", rival_review)["posted_at"] == "2026-11-22T13:00:00+00:00"  # Chicago, UTC-6
    # The location listing the business wins over the source's own: one source may span cities.
    assert mention(db, "by-business", review)["posted_at"] == "2026-11-22T12:00:00+00:00"  # New York, UTC-5
    # A business no location lists, in a source without a location: read as UTC, as before.
    assert mention(db, "by-business", rival_review)["posted_at"] == "2026-11-22T07:00:00+00:00"
    assert mention(db, "explicit", review)["posted_at"] == "2026-11-22T07:00:00+00:00"  # the option wins
