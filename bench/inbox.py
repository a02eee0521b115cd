"""Inbox latency on a large store: 1,000,000 mentions, the real app over real HTTP.

    python bench/inbox.py [--mentions 1000000] [--requests 200] [--rebuild]

Builds (once, cached under bench/.cache/) a store with N mentions across 8 sources,
3 locations and 3 brands, every one classified, and a queue item for each complaint
and question (about 60 % of mentions; most of them already handled, as in a team that
keeps up, a few thousand open). Then it serves the inbox with waitress on 127.0.0.1
and times, one request after another:

* the first page of the inbox (open items by priority), and
* filtered searches: a full-text term combined with a filter (location, label, topic,
  SLA status, source or brand), rotating over 45 combinations, and
* the page of an open item (its thread, history and the author's other mentions),

each ``--requests`` times, and prints p50 / p95 / p99. Baselines in the same run:
``/healthz`` (the HTTP + WSGI floor) and the same two queries run directly on SQLite.
The target is p95 < 150 ms for the inbox's two pages.

``--dashboards`` also times the dashboard pages (/trends, /shifts, /sources, /metrics) and their
SVG charts, target p95 < 300 ms (charts timed after their page, see ``time_dashboards``). The store then
needs what those pages read besides mentions:
incident-time estimates and shift attributions for every mention, an incident a day per location and
a month of crawl runs; they are added to the cached store once (``add_dashboard_data``), and the dashboard
rollups (store migration 8) are recounted before timing (``refresh_rollups_timed``). Opening the cached store
applies newer migrations first (9: the author and response-metrics indexes, a few seconds). Pages cache
their numbers for a minute, so every timed page request starts with that cache emptied: the times are
those of the first look, the worst case.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import loads_config  # noqa: E402
from monitor.queue.listing import InboxFilter, list_items  # noqa: E402
from monitor.store import open_db  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
SOURCES = [("reviews-downtown", "review"), ("reviews-airport", "review"), ("google", "review"),
           ("yelp", "review"), ("trustpilot", "review"), ("reddit", "post"), ("mastodon", "post"),
           ("hackernews", "comment")]  # fmt: skip
LOCATIONS = ["downtown", "airport", "harbour"]
BRANDS = ["Acme Coffee", "Rival Roasters", "Bean Co"]
TOPICS = ["wait_time", "staff_attitude", "product_quality", "price_billing", "cleanliness_ambience",
          "delivery_logistics", "app_website", "not_resolved"]  # fmt: skip
COMPLAINT = ["waited forever for a latte", "the barista was rude to my kid", "coffee was cold and bitter",
             "charged twice for one muffin", "tables were sticky and the floor dirty", "delivery came an hour late",
             "the app crashed at checkout", "still no refund after three emails", "burnt croissant again",
             "nobody answered the phone", "wrong order two days in a row", "milk tasted sour"]  # fmt: skip
PRAISE = ["lovely staff and great flat white", "best cinnamon roll in town", "quick service even at rush hour",
          "cosy corner to work in", "friendly barista remembered my order"]  # fmt: skip
NEUTRAL = ["does the airport store open before six", "they changed the menu", "anyone tried the new oat latte",
           "parking near the harbour store", "is there wifi at downtown"]  # fmt: skip
FILLER = ["today", "yesterday", "morning", "evening", "weekend", "honestly", "again", "really", "just", "also",
          "still", "though", "maybe", "friend", "family", "work", "train", "rain", "sunny", "busy", "quiet", "music",
          "table", "window", "counter", "queue", "line", "order", "espresso", "cappuccino", "mocha", "tea", "scone",
          "bagel", "sandwich", "salad", "cookie", "brownie"]  # fmt: skip
# Common words (5-50 % of mentions) and two-word searches that match 1-2 %.
SEARCH_TERMS = ["latte", "rude", "refund", "cold", "app", "delivery", "sticky", "phone", "croissant", "order",
                "cold latte", "burnt croissant", "sour milk", "rude kid", "refund emails"]  # fmt: skip
SHIFTS = (("morning", "06:00", "14:00"), ("evening", "14:00", "22:00"), ("night", "22:00", "06:00"))
CONFIG = '[storage]\npath = "{db}"\n' + "".join(
    f'[[locations]]\nid = "{loc}"\ntimezone = "UTC"\n'
    + "".join(f'[[locations.shifts]]\nname = "{name}"\nstart = "{a}"\nend = "{b}"\n' for name, a, b in SHIFTS)
    for loc in LOCATIONS
)  # fmt: skip
DASHBOARD_TARGET_MS = 300


def build_store(path: Path, n: int, seed: int = 11) -> None:
    """Write ``n`` classified mentions and their queue items with plain SQL (fast, same schema)."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    db = open_db(path)
    now = datetime.now(UTC).replace(microsecond=0)
    db.execute("PRAGMA synchronous = OFF")
    mentions, classes, items = [], [], []
    queue_id = 0

    def flush() -> None:
        db.conn.executemany(
            "insert into mentions (id, source, external_id, url, kind, author, author_reach, title, text, rating, "
            "lang, posted_at, location, brand, first_seen_at, updated_at, raw) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'en', ?, ?, ?, ?, ?, '{}')",
            mentions,
        )
        db.conn.executemany(
            "insert into classifications (mention_id, label, score, probs, topics, urgency, lang, model, "
            "classified_at) values (?, ?, ?, ?, ?, ?, 'en', 'bench', ?)",
            classes,
        )
        db.conn.executemany(
            "insert into queue_items (id, mention_id, state, priority, reason, sla_due_at, assignee, created_at, "
            "updated_at, first_replied_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            items,
        )
        db.conn.commit()
        mentions.clear(), classes.clear(), items.clear()

    for i in range(1, n + 1):
        source, kind = SOURCES[i % len(SOURCES)]
        roll = rng.random()
        label = "complaint" if roll < 0.35 else "praise" if roll < 0.6 else "neutral"
        pool = COMPLAINT if label == "complaint" else PRAISE if label == "praise" else NEUTRAL
        text = " ".join([rng.choice(pool), *rng.choices(FILLER, k=rng.randint(8, 30)), rng.choice(pool)])
        # Older mentions are mostly handled; the last few days' are the open queue.
        age = timedelta(minutes=int((n - i) * 525_600 / n) + rng.randint(0, 60))
        posted = (now - age).isoformat()
        rating = None if kind != "review" else (rng.choice([1, 1, 2, 3]) if label == "complaint" else 5)
        mentions.append((i, source, f"x{i}", f"https://example.com/r/{i}", kind, f"user{rng.randint(1, 50000)}",
                         rng.randint(0, 5000), None, text, rating, posted, LOCATIONS[i % 3], BRANDS[(i // 3) % 3],
                         posted, posted))  # fmt: skip
        topics = json.dumps(rng.sample(TOPICS, rng.randint(1, 2)) if label == "complaint" else [])
        question = label == "neutral" and text.startswith(("does", "is", "anyone"))
        urgency = json.dumps(["question"] if question else [])
        probs = json.dumps({"complaint": 0.8 if label == "complaint" else 0.1, "neutral": 0.1, "praise": 0.1})
        classes.append((i, label, 0.8, probs, topics, urgency, posted))
        if label == "complaint" or question:
            queue_id += 1
            sla = timedelta(hours=24 if kind == "review" else 1)
            due = (now - age + sla).isoformat()
            if age < timedelta(days=3):
                state, replied = rng.choice(["new", "new", "assigned"]), None
            else:
                state = "replied" if rng.random() < 0.85 else "dismissed"
                replied = (
                    (now - age + timedelta(minutes=rng.randint(5, 2000))).isoformat() if state == "replied" else None
                )
            assignee = rng.choice(["dana", "sam", "lee"]) if state != "new" else None
            items.append((queue_id, i, state, round(rng.uniform(0, 8), 4), "complaint" if label == "complaint"
                          else "question", due, assignee, posted, posted, replied))  # fmt: skip
        if len(mentions) >= 20_000:
            flush()
            print(f"\r  {i:,} / {n:,} mentions", end="", file=sys.stderr, flush=True)
    flush()
    db.execute("ANALYZE")
    db.conn.close()
    print(file=sys.stderr)


def add_dashboard_data(db, seed: int = 13) -> None:
    """Estimates, shift attributions, incidents and crawl runs for a store built by :func:`build_store`
    (or an older cached one), with set-based SQL: an estimate window of the two hours before each post,
    the shift (UTC, as in ``CONFIG``) that the post time falls in, one incident a day per location."""
    if db.execute("select count(*) from shift_attributions").fetchone()[0]:
        return
    rng = random.Random(seed)
    began = time.perf_counter()
    db.execute(
        "insert into incident_estimates (mention_id, location, window_start, window_end, basis, estimated_at) "
        "select id, location, strftime('%Y-%m-%dT%H:%M:%S+00:00', posted_at, '-2 hours'), posted_at, 'lag', posted_at "
        "from mentions where posted_at is not null"
    )
    db.execute(
        "insert into shift_attributions (mention_id, location, shift, shift_date, weight) "
        "select id, location, case when h >= 6 and h < 14 then 'morning' when h >= 14 and h < 22 then 'evening' "
        "else 'night' end, date(posted_at, case when h < 6 then '-1 day' else '+0 days' end), 1.0 "
        "from (select id, location, posted_at, cast(substr(posted_at, 12, 2) as integer) as h from mentions "
        "where posted_at is not null)"
    )
    days = [row[0] for row in db.execute("select distinct substr(posted_at, 1, 10) from mentions order by 1")]
    for day in days:
        for location in LOCATIONS:
            ids = [r[0] for r in db.execute(
                "select m.id from mentions m join classifications c on c.mention_id = m.id where m.location = ? "
                "and c.label = 'complaint' and m.posted_at >= ? and m.posted_at < ? limit 3",
                [location, f"{day}T18:00", f"{day}T22:00"])]  # fmt: skip
            if len(ids) < 3:
                continue
            incident = db.execute(
                "insert into incidents (location, window_start, window_end, shift, shift_date, complaints, sources, "
                "topic, detected_at) values (?, ?, ?, 'evening', ?, 3, '[\"yelp\"]', 'wait_time', ?)",
                [location, f"{day}T18:00:00+00:00", f"{day}T21:00:00+00:00", day, f"{day}T22:00:00+00:00"],
            ).lastrowid
            db.conn.executemany("insert into incident_mentions (incident_id, mention_id) values (?, ?)",
                                [(incident, m) for m in ids])  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    runs = []
    for hours_ago in range(30 * 24, 0, -1):
        started = now - timedelta(hours=hours_ago)
        for source, _kind in SOURCES:
            status = rng.choices(["ok", "partial", "failed"], [0.9, 0.07, 0.03])[0]
            errors = [] if status == "ok" else [f"{source}: HTTP 503 from https://example.com/api"]
            runs.append((source, started.isoformat(), (started + timedelta(seconds=40)).isoformat(), status,
                         0 if status == "failed" else rng.randint(0, 60), len(errors), json.dumps(errors)))  # fmt: skip
    db.conn.executemany("insert into crawl_runs (source, started_at, finished_at, status, new, updated, unchanged, "
                        "errors, messages) values (?, ?, ?, ?, ?, 0, 0, ?, ?)", runs)  # fmt: skip
    db.conn.commit()
    db.execute("ANALYZE")
    print(f"  added dashboard data in {time.perf_counter() - began:.0f} s", file=sys.stderr)


def refresh_rollups_timed(db) -> None:
    """Recount what the store's triggers marked dirty (after a build: everything) before any page is timed; a
    running store recounts only the hours and shift dates a crawl or a classify pass touched since."""
    from monitor.shifts.report import refresh_shift_rollups
    from monitor.trends.series import refresh_rollups

    began = time.perf_counter()
    dirty = db.execute("select (select count(*) from trend_dirty), (select count(*) from shift_dirty)").fetchone()
    refresh_rollups(db)
    refresh_shift_rollups(db)
    if any(dirty):
        print(f"  recounted {dirty[0]:,} hours and {dirty[1]:,} shift dates of the dashboard rollups in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)  # fmt: skip


def dashboard_urls(base: str) -> list[tuple[str, list[str]]]:
    """(name, URLs rotated over): each dashboard page with a few filters, and its charts."""
    from monitor.web.dashboards import TREND_CHARTS

    today = datetime.now(UTC).date()
    ranges = [{"from": (today - timedelta(days=d - 1)).isoformat(), "to": today.isoformat()} for d in (30, 7, 90)]
    trends = [{**r, **b} for r in ranges for b in ({}, {"brand": BRANDS[0]}, {"by": "week"})]
    shifts = [{**r, **loc} for r in ranges for loc in ({}, {"location": LOCATIONS[0]})]
    q = urllib.parse.urlencode
    return [
        ("/trends", [f"{base}/trends?{q(p)}" for p in trends]),
        ("/trends charts (each)", [f"{base}/trends/chart/{c}.svg?{q(p)}" for p in trends for c in TREND_CHARTS]),
        ("/shifts", [f"{base}/shifts?{q(p)}" for p in shifts]),
        ("/shifts heatmap (each)", [f"{base}/shifts/heatmap/{loc}.svg?{q(r)}" for r in ranges for loc in LOCATIONS]),
        ("/sources", [f"{base}/sources"]),
        ("/sources chart", [f"{base}/sources/chart.svg"]),
        ("/metrics", [f"{base}/metrics?days={d}" for d in (30, 7, 90)]),
        ("/metrics chart", [f"{base}/metrics/chart.svg?days={d}" for d in (30, 7, 90)]),
    ]


def time_dashboards(base: str, requests: int) -> list[tuple[str, float, float, float]]:
    """Each dashboard URL family, ``requests`` times. Pages start with their one-minute cache emptied; a chart
    is timed after its page has computed the numbers (as a browser asks for it), so it times the drawing."""
    from monitor.web.dashboards import cache  # imported here: the plain inbox bench needs no matplotlib

    rows = []
    for name, urls in dashboard_urls(base):
        chart = name.endswith(("chart", "(each)"))
        cache.clear()
        for url in urls[: min(requests, len(urls))] if chart else urls[:1]:
            time_http(url)  # a chart: its page's numbers; a page: the code paths (imports, fonts)
        samples = []
        for i in range(requests):
            if not chart:
                cache.clear()
            samples.append(time_http(urls[i % len(urls)]))
        rows.append((name, *percentiles(samples)))
    return rows


def filtered_searches(rng: random.Random) -> list[dict[str, str]]:
    """45 realistic combinations of a search term and one inbox filter."""
    extra = [
        {"location": "downtown"}, {"location": "airport"}, {"label": "complaint"}, {"topic": "wait_time"},
        {"topic": "staff_attitude"}, {"sla": "overdue"}, {"source": "yelp"}, {"brand": "Rival Roasters"},
        {"state": "replied"}, {"assignee": "dana"},
    ]  # fmt: skip
    return [{"q": SEARCH_TERMS[i % len(SEARCH_TERMS)], **extra[rng.randrange(len(extra))]} for i in range(45)]


def _filter_from(params: dict[str, str]) -> InboxFilter:
    state = params.get("state")
    return InboxFilter(
        states=(state,) if state else ("new", "assigned"),
        **{k: params[k] for k in ("source", "location", "brand", "label", "topic", "assignee", "sla") if k in params},
        search=params.get("q"),
    )


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return statistics.median(ordered), at(0.95), at(0.99)


def time_http(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        assert response.status == 200 and body
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    parser.add_argument("--dashboards", action="store_true", help="also time /trends, /shifts, /sources, /metrics")
    args = parser.parse_args()

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"inbox-{args.mentions}.db"
    if args.rebuild or not path.exists():
        began = time.perf_counter()
        print(f"building a store with {args.mentions:,} mentions (cached in {path})", file=sys.stderr)
        build_store(path, args.mentions)
        print(f"  built in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    db = open_db(path)  # migrates a cache built by an older schema
    if args.dashboards:
        add_dashboard_data(db)
        refresh_rollups_timed(db)
    counts = {row["state"]: row["n"] for row in db.query("select state, count(*) as n from queue_items group by 1")}
    mentions = db.execute("select count(*) from mentions").fetchone()[0]
    print(f"store: {mentions:,} mentions, {sum(counts.values()):,} queue items "
          f"({counts.get('new', 0) + counts.get('assigned', 0):,} open)")  # fmt: skip

    config = loads_config(CONFIG.format(db=path), CACHE / "config.toml")
    from waitress.server import create_server

    from monitor.web.app import create_app

    server = create_server(create_app(config, users={}), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    rng = random.Random(5)
    searches = filtered_searches(rng)

    for _ in range(10):  # warm the page cache and the app
        time_http(base + "/")
        time_http(base + "/?" + urllib.parse.urlencode(searches[_]))

    # Item pages of open items: the page looks up the author's other mentions (store migration 9 indexes it).
    item_ids = [row[0] for row in db.execute(
        "select id from queue_items where state in ('new', 'assigned') order by priority desc limit 45")]  # fmt: skip
    rows = []
    for name, make_url in (
        ("GET /healthz (floor)", lambda i: base + "/healthz"),
        ("inbox first page", lambda i: base + "/"),
        ("filtered search", lambda i: base + "/?" + urllib.parse.urlencode(searches[i % len(searches)])),
        ("item page", lambda i: f"{base}/items/{item_ids[i % len(item_ids)]}"),
    ):
        samples = [time_http(make_url(i)) for i in range(args.requests)]
        rows.append((name, *percentiles(samples)))

    for name, make_filter in (
        ("first page, SQL only", lambda i: InboxFilter()),
        ("filtered search, SQL only", lambda i: _filter_from(searches[i % len(searches)])),
    ):
        samples = []
        for i in range(args.requests):
            began = time.perf_counter()
            list_items(db, filters=make_filter(i), limit=50)
            samples.append((time.perf_counter() - began) * 1000)
        rows.append((name, *percentiles(samples)))
    dashboards = time_dashboards(base, args.requests) if args.dashboards else []
    server.close()

    print(f"\n{args.requests} requests each, one at a time, waitress on 127.0.0.1 (target: p95 < 150 ms)\n")
    print(f"| {'what':<28} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for name, p50, p95, p99 in rows:
        print(f"| {name:<28} | {p50:>7.1f} | {p95:>7.1f} | {p99:>7.1f} |")
    worst = max(p95 for name, _p50, p95, _p99 in rows[1:3])
    print(f"\nworst page p95 {worst:.1f} ms: {'meets' if worst < 150 else 'MISSES'} the 150 ms target")
    if dashboards:
        print(f"\ndashboards, {args.requests} requests each, cache emptied before each (target: p95 < "
              f"{DASHBOARD_TARGET_MS} ms)\n")  # fmt: skip
        print(f"| {'what':<28} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} |")
        print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
        for name, p50, p95, p99 in dashboards:
            print(f"| {name:<28} | {p50:>7.1f} | {p95:>7.1f} | {p99:>7.1f} |")
        slow = [name for name, _p50, p95, _p99 in dashboards if p95 >= DASHBOARD_TARGET_MS]
        verdict = f"MISSES the {DASHBOARD_TARGET_MS} ms target: {', '.join(slow)}" if slow else "meets the target"
        print(f"\n{verdict}")


if __name__ == "__main__":
    main()
