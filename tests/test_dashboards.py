"""The dashboard pages (/trends, /shifts, /sources, the /metrics chart) through Flask's test client."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.config import loads_config
from monitor.queue.items import mark_replied, refresh_queue
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import UpsertCounts, finish_crawl_run, open_db, record_mentions, start_crawl_run
from monitor.web.app import create_app
from monitor.web.dashboard_data import in_words, interval_words, rate_sentence, topic_name

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_BRAND = '<img src=x onerror="window.__pwned=6">Rival'
HOSTILE_LOCATION = "<script>window.__pwned=5</script>Café"
ZONE = "Europe/Berlin"
CONFIG = """
[storage]
path = "{db}"
[trends]
timezone = "Europe/Berlin"
min_spike_complaints = 4
[schedule]
timezone = "Europe/Berlin"
[shifts]
roster = "roster.csv"
min_shift_mentions = 5
min_shift_complaints = 3

[[locations]]
id = "downtown"
name = '{hostile_location}'
timezone = "Europe/Berlin"
[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"
[[locations.shifts]]
name = "evening"
start = "14:00"
end = "22:00"

[[locations]]
id = "beijing"
name = "北京三里屯"
timezone = "Asia/Shanghai"
[[locations.shifts]]
name = "day"
start = "08:00"
end = "20:00"

[[sources]]
name = "reviews-downtown"
type = "yelp"
business_ids = ["acme-downtown"]
brand = "Acme"
location = "downtown"

[[sources]]
name = "rival-feed"
type = "feed"
urls = ["https://rival.example/feed"]
brand = '{hostile_brand}'
"""


def _local(days_ago: int, hour: int, minute: int = 0, zone: str = ZONE) -> str:
    day = datetime.now(UTC).astimezone(ZoneInfo(zone)).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC).isoformat()


def _add(db, source, ext, text, label, posted, topics=(), **fields):
    [mid] = record_mentions(db, source, [{"external_id": ext, "text": text, "posted_at": posted, "author": "pat",
                                          "kind": "review", **fields}]).mention_ids  # fmt: skip
    db["classifications"].insert(
        {"mention_id": mid, "label": label, "topics": json.dumps(list(topics)), "probs": "{}", "urgency": "[]",
         "score": 0.9, "lang": "en", "model": "test", "classified_at": posted},
        replace=True,
    )  # fmt: skip
    return mid


def build(tmp_path, with_data: bool = True):
    """A store with three weeks of two brands, a complaint spike, a flagged evening shift, an incident, a
    crawl history with errors, replies, and hostile text in mention text, author, location and brand names."""
    (tmp_path / "roster.csv").write_text(
        "date,location,shift,staff\n"
        + "".join(f"{(date.today() - timedelta(days=d)).isoformat()},downtown,evening,Sam; Ana\n" for d in range(10))
    )
    text = CONFIG.format(db=tmp_path / "dash.db", hostile_location=HOSTILE_LOCATION, hostile_brand=HOSTILE_BRAND)
    config = loads_config(text, tmp_path / "config.toml")
    db = open_db(config.storage_path)
    if with_data:
        n = 0
        for days_ago in range(1, 22):
            for hour, label, topics in ((9, "praise", ()), (11, "neutral", ()), (16, "complaint", ["wait_time"]),
                                        (19, "complaint", ["staff_attitude"]), (20, "praise", ())):  # fmt: skip
                n += 1
                _add(db, "reviews-downtown", f"a{n}", "ok", label, _local(days_ago, hour), topics, brand="Acme",
                     location="downtown")  # fmt: skip
            n += 1
            _add(db, "rival-feed", f"r{n}", "fine", "praise" if days_ago % 3 else "complaint", _local(days_ago, 12),
                 ["price_billing"], brand=HOSTILE_BRAND)  # fmt: skip
        for i in range(8):  # a spike two days ago, and an incident: many complaints in one evening
            _add(db, "reviews-downtown", f"spike{i}", f"cold coffee again {i}", "complaint", _local(2, 17, i * 5),
                 ["product_quality"], brand="Acme", location="downtown")  # fmt: skip
        _add(db, "reviews-downtown", "hostile", HOSTILE, "complaint", _local(2, 18), ["wait_time"], brand="Acme",
             location="downtown", author=HOSTILE)  # fmt: skip
        _add(db, "reviews-downtown", "bj", "服务很差", "complaint", _local(3, 13, zone="Asia/Shanghai"), ["wait_time"],
             brand="Acme", location="beijing")  # fmt: skip
        db.execute("insert into mentions (source, external_id, text, brand, backfill, first_seen_at) "
                   "values ('rival-feed', 'undated', 'old', ?, 1, ?)", [HOSTILE_BRAND, _local(1, 10)])  # fmt: skip
        estimate_and_attribute(db, config)
        refresh_queue(db, config.queue)
        for (item_id,) in db.execute("select id from queue_items order by id limit 12").fetchall():
            mark_replied(db, item_id, "Sorry about that", actor="dana")
        ok = start_crawl_run(db, "reviews-downtown")
        finish_crawl_run(db, ok, UpsertCounts(new=7), [])
        failed = start_crawl_run(db, "rival-feed")
        error = f"rival-feed: HTTP 500 from https://rival.example/feed {HOSTILE}"
        finish_crawl_run(db, failed, UpsertCounts(), [error])
    db.conn.close()
    return config


def client_for(config):
    app = create_app(config, users={})
    app.testing = True
    return app.test_client()


@pytest.fixture
def client(tmp_path):
    return client_for(build(tmp_path))


@pytest.fixture
def empty(tmp_path):
    return client_for(build(tmp_path, with_data=False))


PAGES = ("/trends", "/shifts", "/sources", "/metrics")


def _images(html: str) -> list[str]:
    return [src.replace("&amp;", "&") for src in re.findall(r'<img[^>]* src="([^"]+)"', html)]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_with_charts_that_are_svg(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "img-src 'self'" in response.headers["Content-Security-Policy"]
    images = _images(html)
    assert images, "no chart on " + path
    for src in images:
        chart = client.get(src)
        assert chart.status_code == 200 and chart.mimetype == "image/svg+xml", src
        body = chart.get_data(as_text=True)
        assert "viewBox=" in body and "<script" not in body, src


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_on_an_empty_store(empty, path):
    response = empty.get(path)
    assert response.status_code == 200
    for src in _images(response.get_data(as_text=True)):
        assert empty.get(src).status_code == 200, src


def test_nav_links_to_every_page(client):
    html = client.get("/").get_data(as_text=True)
    for path in PAGES:
        assert f'href="{path}"' in html


@pytest.mark.parametrize("path", [*PAGES, "/trends?brand=Acme", "/shifts?location=downtown"])
def test_hostile_text_is_escaped(client, path):
    html = client.get(path).get_data(as_text=True)
    assert "<script>window" not in html and "<img src=x" not in html
    assert 'onerror="' not in html


def test_hostile_text_shows_as_text(client):
    assert "&lt;script&gt;window.__pwned=5&lt;/script&gt;Café" in client.get("/shifts").get_data(as_text=True)
    trends = client.get("/trends").get_data(as_text=True)
    assert "&lt;img src=x onerror=&#34;window.__pwned=6&#34;&gt;Rival" in trends
    sources = client.get("/sources").get_data(as_text=True)
    assert "HTTP 500 from https://rival.example/feed &lt;script&gt;" in sources


def test_trends_shows_brands_spike_topics_and_undated(client):
    html = client.get("/trends").get_data(as_text=True)
    assert "Acme" in html and "Rival" in html
    spikes = html.split('id="spikes"')[1].split("</ul>")[0]
    assert "Acme" in spikes and "complaints, usually about" in spikes
    assert "Waiting time" in html and "wait_time" not in html  # human topic names
    assert "+ 1 undated" in html


def test_trends_pickers_filter(client):
    only = client.get("/trends?brand=Acme").get_data(as_text=True)
    summary = only.split('id="brand-summary"')[1].split("</table>")[0]
    assert "Acme" in summary and "Rival" not in summary
    assert 'value="Acme" checked' in only
    today = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()
    old = (today - timedelta(days=200)).isoformat()
    before = client.get(f"/trends?from={old}&to={(today - timedelta(days=190)).isoformat()}").get_data(as_text=True)
    assert "No mentions in this range" in before
    weekly = client.get("/trends?by=week").get_data(as_text=True)
    assert 'value="week" selected' in weekly
    assert client.get("/trends?from=garbage&to=2026-13-45").status_code == 200


def test_trends_downloads(client):
    csv_text = client.get("/trends.csv?brand=Acme").get_data(as_text=True)
    assert csv_text.startswith("period,brand,mentions") and "Acme" in csv_text and "Rival" not in csv_text
    png = client.get("/trends.png")
    assert png.mimetype == "image/png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/trends.exe").status_code == 404
    assert client.get("/trends/chart/nope.svg").status_code == 404


def test_shifts_shows_rates_in_words_flags_roster_and_incidents(client):
    html = client.get("/shifts").get_data(as_text=True)
    assert "北京三里屯" in html
    evening = html.split("<strong>evening</strong>")[1].split("</li>")[0]
    assert "flagged: clearly above the other shifts" in evening
    assert "mentions a complaint" in evening and "likely between" in evening
    assert "no complaints" in html.split("<strong>morning</strong>")[1].split("</li>")[0]
    assert "Staff: Ana (10), Sam (10)" in evening or "Staff: Ana" in evening
    incidents = html.split('id="incidents"')[1]
    assert "incident" in incidents and "cold coffee again" in incidents
    assert re.search(r'href="/items/\d+"', incidents)
    assert "Product quality" in incidents


def test_shifts_location_picker_filters(client):
    html = client.get("/shifts?location=beijing").get_data(as_text=True)
    assert 'id="location-beijing"' in html and 'id="location-downtown"' not in html
    assert "cold coffee again" not in html  # the downtown incident
    assert client.get("/shifts?location=nowhere").status_code == 200  # unknown: all locations
    assert client.get("/shifts/heatmap/nowhere.svg").status_code == 404


def test_heatmap_draws_chinese_glyphs_not_boxes(client):
    from monitor.shifts.png import cjk_font_family

    if cjk_font_family() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei)")
    body = client.get("/shifts/heatmap/beijing.svg").get_data(as_text=True)
    assert "Asia/Shanghai" in body  # the axis label names the zone


def test_sources_shows_health_and_caps(client):
    html = client.get("/sources").get_data(as_text=True)
    downtown = html.split("<strong>reviews-downtown</strong>")[1].split("</li>\n")[0]
    assert "3 review excerpts per business" in downtown and ">ok<" in downtown and "7 new items" in downtown
    rival = html.split("<strong>rival-feed</strong>")[1]
    assert ">failed<" in rival and "never" in rival and "1 failed crawl" in rival


def test_metrics_page_has_the_chart(client):
    html = client.get("/metrics?days=7").get_data(as_text=True)
    assert "/metrics/chart.svg?days=7" in html
    assert client.get("/metrics/chart.svg?days=90").status_code == 200  # weekly points


def test_dashboards_need_the_login(tmp_path):
    from monitor.web.auth import hash_password

    app = create_app(build(tmp_path, with_data=False), users={"dana": hash_password("pw-long-enough")})
    app.testing = True
    client = app.test_client()
    for path in (*PAGES, "/trends/chart/net.svg", "/shifts/heatmap/downtown.svg", "/sources/chart.svg",
                 "/metrics/chart.svg", "/trends.csv"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_words_for_rates():
    assert in_words(0.33) == "about 1 in 3" and in_words(0.5) == "about 1 in 2"
    assert in_words(0.68) == "about 2 in 3" and in_words(0.04) == "about 1 in 25"
    assert in_words(0) == "none" and in_words(1.0) == "all" and in_words(None) == "no data"
    assert interval_words(0.2, 0.5) == "likely between 1 in 5 and 1 in 2"
    assert interval_words(0.0, 0.08) == "likely between 0 and 1 in 12"
    assert in_words(0.708) == "about 7 in 10" and in_words(0.14) == "about 1 in 7"
    assert rate_sentence(0.66) == "about 2 in 3 mentions a complaint" and rate_sentence(0) == "no complaints"
    assert topic_name("wait_time") == "Waiting time" and topic_name("brand_new_topic") == "Brand new topic"


def test_a_period_still_filling_up_is_drawn_dotted():
    from datetime import date

    from monitor.web import charts

    points = {"Acme": [(date(2026, 11, d), 10) for d in range(20, 26)] + [(date(2026, 11, 26), 1)]}
    whole = charts.line_chart(points, "mentions", {"Acme": "#1f77b4"}).decode()
    partial = charts.line_chart(points, "mentions", {"Acme": "#1f77b4"}, partial_from=date(2026, 11, 26)).decode()
    assert "stroke-dasharray" not in whole and "stroke-dasharray" in partial
    assert partial.count("Acme") == whole.count("Acme")  # one legend entry either way


def test_incidents_lead_to_the_shifts_page(client):
    response = client.get("/incidents?from=2026-11-01&to=2026-11-20&location=downtown&x=<script>")
    assert response.status_code == 302
    target = response.headers["Location"]
    assert target.startswith("/shifts?") and target.endswith("#incidents")
    assert "location=downtown" in target and "from=2026-11-01" in target and "script" not in target
