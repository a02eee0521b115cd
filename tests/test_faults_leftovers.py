"""Fault-campaign loose ends (issue 11): shift estimates follow a re-crawl's new time or place, untimed
queue items in the inbox, formula-safe trends CSV, control characters in a search, API keys on a
cross-origin redirect, and crawl runs a killed daemon left ``running``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.config import QueueConfig, loads_config
from monitor.escaping import csv_cell
from monitor.queue.export import formula_safe
from monitor.queue.items import refresh_queue
from monitor.queue.listing import _fts_query, list_items
from monitor.shifts import stage as shifts_stage
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import open_db, record_mentions
from monitor.trends.export import write_trends_csv
from monitor.trends.series import TrendPoint
from monitor.web.app import create_app
from tests.review_apis import crawl, write_config

SHIFTS_CONFIG = """
[storage]
path = "m.db"

[[locations]]
id = "nyc"
timezone = "America/New_York"
[[locations.shifts]]
name = "day"
start = "09:00"
end = "21:00"
"""
POSTED = "2026-11-21T15:00:00+00:00"  # 10:00 in New York: the day shift


@pytest.fixture
def shifts_setup(tmp_path):
    config = loads_config(SHIFTS_CONFIG, tmp_path / "config.toml")
    db = open_db(config.storage_path)
    yield config, db
    db.conn.close()


def _store(db, **fields: Any) -> int:
    row = {"external_id": "1", "text": "rude staff", "location": "nyc", **fields}
    [mid] = record_mentions(db, "reviews", [row]).mention_ids
    db["classifications"].insert({"mention_id": mid, "label": "complaint", "topics": "[]", "probs": "{}",
                                  "urgency": "[]"}, replace=True)  # fmt: skip
    return mid


def _estimate(db, mid: int) -> dict[str, Any]:
    return next(db.query("select * from incident_estimates where mention_id = ?", [mid]))


# ------------------------------------------------ shifts: a re-crawl's new time or place is used


def test_an_undated_backfill_mention_is_placed_once_a_recrawl_brings_its_date(shifts_setup):
    config, db = shifts_setup
    mid = _store(db, posted_at=None, backfill=True)
    estimate_and_attribute(db, config)
    assert (_estimate(db, mid)["basis"], _estimate(db, mid)["window_start"]) == ("no time", None)

    _store(db, posted_at=POSTED)  # the platform now sends the date
    assert estimate_and_attribute(db, config).estimated == 1  # was 0: the stale "no time" stayed
    estimate = _estimate(db, mid)
    assert estimate["basis"] != "no time" and estimate["window_end"] == POSTED
    shifts = db.execute("select shift, shift_date from shift_attributions where mention_id = ?", [mid]).fetchall()
    assert shifts and {s for s, _ in shifts} <= {"day", "off-shift"}
    # a revision row would reopen answered queue items as "new activity": none is written
    assert db.execute("select count(*) from mention_revisions").fetchone()[0] == 0
    assert estimate_and_attribute(db, config).estimated == 0


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"posted_at": POSTED}, {"posted_at": "2026-11-22T03:00:00+00:00"}),  # corrected post time
        ({"posted_at": POSTED}, {"posted_at": POSTED, "experienced_at": "2026-11-19"}),  # visit date filled in
        ({"posted_at": POSTED, "location": None}, {"posted_at": POSTED}),  # location filled in
    ],
)
def test_a_changed_time_or_place_is_reestimated(shifts_setup, before, after):
    config, db = shifts_setup
    mid = _store(db, **before)
    estimate_and_attribute(db, config)
    old = _estimate(db, mid)
    _store(db, **after)
    assert estimate_and_attribute(db, config).estimated == 1
    new = _estimate(db, mid)
    assert (new["location"], new["window_start"], new["window_end"]) != (
        old["location"], old["window_start"], old["window_end"])  # fmt: skip
    assert new["location"] == "nyc"


def test_a_recrawl_that_changes_nothing_keeps_the_estimate(shifts_setup):
    config, db = shifts_setup
    mid = _store(db, posted_at=POSTED, author_reach=10)
    estimate_and_attribute(db, config)
    _store(db, posted_at=POSTED, author_reach=99)  # reach refreshes silently; time and place did not move
    assert estimate_and_attribute(db, config).estimated == 0
    assert _estimate(db, mid)["window_end"] == POSTED


def test_a_time_changed_while_the_stage_was_estimating_is_not_overwritten(shifts_setup, monkeypatch):
    config, db = shifts_setup
    mid = _store(db, posted_at=POSTED)
    other = open_db(config.storage_path)  # a crawl writing while the stage computes
    real = shifts_stage._estimate_one
    moved = []

    later = {"external_id": "1", "text": "rude staff", "location": "nyc", "posted_at": "2026-11-23T03:00:00Z"}

    def estimate_then_recrawl(row, location, lag):
        result = real(row, location, lag)
        if not moved:
            moved.append(record_mentions(other, "reviews", [later]))
        return result

    monkeypatch.setattr(shifts_stage, "_estimate_one", estimate_then_recrawl)
    estimate_and_attribute(db, config)
    # The estimate from the old time was not written over the crawl's change...
    assert db.execute("select count(*) from incident_estimates where mention_id = ?", [mid]).fetchone()[0] == 0
    # ...and the next pass estimates from the new one.
    assert estimate_and_attribute(db, config).estimated == 1
    assert _estimate(db, mid)["window_end"] == "2026-11-23T03:00:00+00:00"
    other.conn.close()


@pytest.mark.sqlite_only(reason="a store from before migration 7 exists only as a SQLite file")
def test_an_old_database_without_backfill_takes_new_and_changed_mentions(tmp_path, monkeypatch):
    import monitor.store as store

    monkeypatch.setattr(store.migrations, "SCHEMA_VERSION", 6)  # before mentions.backfill
    db = store.open_db(tmp_path / "old.db")
    assert "backfill" not in db["mentions"].columns_dict
    undated = {"external_id": "1", "text": "a", "posted_at": None, "backfill": True}
    [mid] = record_mentions(db, "s", [undated]).mention_ids
    record_mentions(db, "s", [{"external_id": "1", "text": "a", "posted_at": POSTED, "location": "x"}])
    assert store.get_mention(db, mid)["posted_at"] == POSTED
    db.conn.close()


# ------------------------------------------------ inbox: an item without an SLA clock


def test_an_item_without_a_due_time_says_so_in_the_inbox(tmp_path):
    config = loads_config(f'[storage]\npath = "{tmp_path / "web.db"}"\n', tmp_path / "config.toml")
    db = open_db(config.storage_path)
    [mid] = record_mentions(db, "appstore", [{"external_id": "1", "text": "app crashes on login", "kind": "review",
                                              "backfill": True}]).mention_ids  # fmt: skip
    db["classifications"].insert({"mention_id": mid, "label": "complaint", "probs": json.dumps({"complaint": 0.9}),
                                  "topics": "[]", "urgency": "[]"})  # fmt: skip
    refresh_queue(db, QueueConfig())
    [item] = list_items(db)
    assert item["sla_due_at"] is None
    db.conn.close()
    app = create_app(config)
    app.testing = True
    client = app.test_client()
    for path in ("/", f"/items/{item['id']}"):
        page = client.get(path)
        assert page.status_code == 200, path
        html = page.get_data(as_text=True)
        # Times themselves end in their zone ("15:29 UTC"); an empty due time would read "due  UTC".
        assert "no SLA clock" in html and "None" not in html and "due  UTC" not in html


# ------------------------------------------------ CSV and search safety nets


CELLS = [" =1+1", "\n=cmd", "\u00a0@SUM(A1)", "\uff1dHYPERLINK(1)", " \uff0b1", "\u200b-2", "\u3000=1", "\ufe66x",
         "\uff20x", "\r\n+1", "=1", "\t=1"]  # fmt: skip


@pytest.mark.parametrize("cell", CELLS)
def test_csv_cell_neutralises_every_formula_start_like_the_inbox_export(cell):
    assert csv_cell(cell) == "'" + cell == formula_safe(cell)


@pytest.mark.parametrize("cell", ["Acme", "a=b", " plain", "", "'=already", 5, -2.5, None])
def test_csv_cell_leaves_ordinary_values_alone(cell):
    assert csv_cell(cell) == cell


def test_the_trends_csv_neutralises_a_brand_behind_a_space(tmp_path):
    points = [TrendPoint(brand=" =HYPERLINK(1)", period=date(2026, 11, 2), mentions=1, net_sentiment=-0.5)]
    path = write_trends_csv(tmp_path / "t.csv", points, [])
    [row] = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert row["brand"] == "' =HYPERLINK(1)" and row["net_sentiment"] == "-0.5"


@pytest.mark.parametrize("search", ["\x00", "rude\x00", "a\x00b", "\x01rude\x7f", "rude \ud800", "\x1b[31m"])
def test_control_characters_in_a_search_are_dropped(fresh_db, search):
    query = _fts_query(search)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in query)
    mention = {"external_id": "1", "text": "rude staff", "posted_at": POSTED}
    [mid] = record_mentions(fresh_db, "s", [mention]).mention_ids
    fresh_db["classifications"].insert({"mention_id": mid, "label": "complaint", "probs": "{}", "topics": "[]",
                                        "urgency": "[]"})  # fmt: skip
    refresh_queue(fresh_db, QueueConfig())
    list_items(fresh_db, search=search)  # raised "unterminated string" for a NUL before


# ------------------------------------------------ spiders: API keys and cross-origin redirects


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, redirect_to: str | None = None) -> None:
        self.hits: list[tuple[str, dict[str, str]]] = []
        self.redirect_to = redirect_to
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/robots.txt":
            self.send_response(404)
            self.end_headers()
            return
        self.server.hits.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        target = self.server.redirect_to
        if target is not None and not self.path.startswith("/moved"):
            # same-origin hops first (/moved...), then the other server
            location = f"/moved{self.path}" if target == "self" else target + self.path
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def servers(monkeypatch) -> Iterator[tuple[_Recorder, _Recorder]]:
    monkeypatch.setenv("GOOGLE_PLACES_API_KEY", "google-secret")
    monkeypatch.setenv("TRUSTPILOT_API_KEY", "trustpilot-secret")
    monkeypatch.setenv("YELP_API_KEY", "yelp-secret")
    elsewhere = _Recorder()
    api = _Recorder(redirect_to=elsewhere.url)
    yield api, elsewhere
    for server in (api, elsewhere):
        server.shutdown()
        server.server_close()


SOURCES = [
    {"name": "maps", "type": "google_places", "place_ids": ["ChIJplace"]},
    {"name": "tp", "type": "trustpilot", "business_unit_ids": ["5f0c1a2b3c4d5e6f7a8b9c0d"]},
    {"name": "yelp", "type": "yelp", "business_ids": ["acme-coffee"]},
]
SECRETS = ("google-secret", "trustpilot-secret", "yelp-secret")


def test_api_keys_do_not_follow_a_redirect_to_another_origin(servers, tmp_path):
    api, elsewhere = servers
    path = write_config(tmp_path, [{**s, "base_url": api.url} for s in SOURCES])
    crawl(path)
    assert len(api.hits) == 3  # every source asked the API, with its key...
    assert {h.get("x-goog-api-key") or h.get("apikey") or h.get("authorization") for _, h in api.hits} == {
        "google-secret", "trustpilot-secret", "Bearer yelp-secret"}  # fmt: skip
    assert len(elsewhere.hits) == 3  # ...was sent on to the other port...
    for hit_path, headers in elsewhere.hits:  # ...and the other port saw no key
        assert not any(secret in value for value in headers.values() for secret in SECRETS), (hit_path, headers)
        assert not {"x-goog-api-key", "apikey", "authorization"} & set(headers)
    google = next(h for p, h in elsewhere.hits if "/places/" in p)
    assert "x-goog-fieldmask" in google  # harmless headers still travel


def test_api_keys_still_follow_a_redirect_on_the_same_origin(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_PLACES_API_KEY", "google-secret")
    api = _Recorder(redirect_to="self")
    try:
        path = write_config(tmp_path, [{**SOURCES[0], "base_url": api.url}])
        crawl(path)
    finally:
        api.shutdown()
        api.server_close()
    assert [p.startswith("/moved") for p, _ in api.hits] == [False, True]
    assert all(h.get("x-goog-api-key") == "google-secret" for _, h in api.hits)


def test_the_redirect_middleware_is_enabled_and_judges_origins():
    from scrapy import Request

    from spiders import settings
    from spiders.middlewares import CredentialRedirectMiddleware, is_credential_header

    assert "spiders.middlewares.CredentialRedirectMiddleware" in settings.DOWNLOADER_MIDDLEWARES
    assert all(map(is_credential_header, ["X-Goog-Api-Key", "apikey", "Authorization", "X-Auth-Token", b"Cookie"]))
    assert not any(map(is_credential_header, ["Accept", "X-Goog-FieldMask", "User-Agent", "Content-Type"]))
    headers = {"apikey": "k", "Accept": "application/json"}
    cases = [
        ("http://a.example/x", "http://a.example:80/y", True),
        ("http://a.example/x", "https://a.example/y", False),
        ("http://a.example:8080/x", "http://a.example/y", False),
        ("http://a.example/x", "http://b.example/", False),
    ]
    for came_from, url, kept in cases:
        request = Request(url, headers=headers, meta={"redirect_urls": [came_from]})
        CredentialRedirectMiddleware().process_request(request)
        assert ("apikey" in request.headers) is kept and request.headers.get("Accept") == b"application/json"
    untouched = Request("http://b.example/", headers=headers)
    CredentialRedirectMiddleware().process_request(untouched)
    assert "apikey" in untouched.headers


# ------------------------------------------------ monitor run: interrupted crawl runs


def test_monitor_run_closes_runs_a_killed_crawl_left_running(tmp_path):
    from monitor.scheduler import run_daemon

    config = loads_config(f'[storage]\npath = "{tmp_path / "m.db"}"\n', tmp_path / "config.toml")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    db = open_db(config.storage_path)
    db.execute(
        "insert into crawl_runs (source, started_at, status, new, updated, unchanged, errors, messages, pid) "
        "values ('reviews', '2026-11-21T15:00:00+00:00', 'running', 0, 0, 0, 0, '[]', ?)",
        [gone.pid],
    )
    db.conn.commit()
    stop = threading.Event()
    stop.set()  # start, then stop at once: start-up is what is under test
    daemon = threading.Thread(target=run_daemon, args=(config, stop))
    daemon.start()
    daemon.join(timeout=60)
    assert not daemon.is_alive()
    status, messages = db.execute("select status, messages from crawl_runs").fetchone()
    assert status == "failed" and "crawl interrupted" in json.loads(messages)[0]
    db.conn.close()


@pytest.mark.sqlite_only(reason="a corrupt SQLite file")
def test_closing_interrupted_runs_at_start_up_survives_a_broken_database(tmp_path, caplog):
    from monitor.scheduler import close_interrupted_crawls

    (tmp_path / "m.db").write_bytes(b"not a database" * 100)
    config = loads_config(f'[storage]\npath = "{tmp_path / "m.db"}"\n', tmp_path / "config.toml")
    assert close_interrupted_crawls(config) == 0
    assert "could not close interrupted crawl runs" in caplog.text
