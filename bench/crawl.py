"""Crawl throughput: a 10,000-item paginated source on loopback, our crawler against a bare Scrapy spider.

    python bench/crawl.py [--runs 3]

The source is the Hacker News mock of ``tests/social_apis.py`` (query ``bench``:
10,000 Algolia hits, 100 a page, 100 pages, pre-generated so the server is
not what is timed). *Ours* is a ``hackernews`` source crawled the way the app
crawls it: :func:`monitor.crawl.crawl_scrapy_sources` starts ``spiders.run`` in
a child process, the spider maps every hit, checks stored ids and watermarks,
and the store pipeline upserts batches into a fresh SQLite database (through
its writer process). The clock stops when that child has exited, i.e. after
every batch is committed and the crawl run recorded; afterwards the script
checks that every item is stored with its raw JSON and search index. *Bare* is
a minimal ``scrapy.Spider`` in its own child process that pages through the
same URLs and only parses the JSON (no pipeline). Both get the same politeness
relaxation (no AutoThrottle, no download delay, no robots.txt, same concurrency)
and both are timed as whole child processes, interpreter start included. The
target: ours within 1.5x of the bare spider's time. For information, a third
row runs the bare spider with the process settings our crawl process uses
(see ``run_bare``), so what is left between it and ours is the pipeline's own cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ITEMS = 10_000
PAGES = 100
TARGET_RATIO = 1.5
# Politeness relaxed equally for both crawlers: on loopback a delay only measures the delay.
RELAXED = {
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "ROBOTSTXT_OBEY": False,
    "CONCURRENT_REQUESTS": 8,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "LOG_LEVEL": "WARNING",
}


def page_url(base_url: str, page: int) -> str:
    return f"{base_url}/hn/api/v1/search_by_date?query=bench&tags=%28story%2Ccomment%29&hitsPerPage=100&page={page}"


# ------------------------------------------------------------- bare spider


def run_bare(base_url: str, tuned: bool = False) -> None:
    """Child process: page through the source with a spider that only parses; print the item count.

    ``tuned`` gives it the process-level settings our crawl process uses (no per-response
    generator lint, no per-item DEBUG records, startup objects frozen out of the GC), so the
    gap to ours is what the pipeline itself costs: mapping, storing, bookkeeping.
    """
    import gc
    import logging

    import scrapy
    from scrapy.crawler import CrawlerProcess

    class BareSpider(scrapy.Spider):
        name = "bare"

        async def start(self) -> Any:
            yield scrapy.Request(page_url(base_url, 0), cb_kwargs={"page": 0})

        def parse(self, response: Any, page: int) -> Any:
            data = json.loads(response.body)
            yield from data["hits"]
            if page + 1 < data["nbPages"]:
                yield scrapy.Request(page_url(base_url, page + 1), cb_kwargs={"page": page + 1})

    process = CrawlerProcess({**RELAXED, **({"WARN_ON_GENERATOR_RETURN_VALUE": False} if tuned else {})})
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler)
    if tuned:
        logging.getLogger("scrapy").setLevel(RELAXED["LOG_LEVEL"])
        gc.freeze()
    process.start()
    print(json.dumps({"items": crawler.stats.get_value("item_scraped_count", 0)}))


def time_bare(base_url: str, tuned: bool = False) -> tuple[float, int]:
    started = time.perf_counter()
    command = [sys.executable, __file__, "--bare", base_url, *(["--tuned"] if tuned else [])]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(proc.stdout.strip().splitlines()[-1])["items"]


# -------------------------------------------------------------------- ours


def time_ours(base_url: str) -> tuple[float, int]:
    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources

    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(
            '[storage]\npath = "monitor.db"\n\n[[sources]]\nname = "hn-bench"\ntype = "hackernews"\n'
            f'search = ["bench"]\nbase_url = "{base_url}/hn"\nmax_pages = {PAGES}\n',
            encoding="utf-8",
        )
        config = load_config(config_path)
        started = time.perf_counter()
        result = crawl_scrapy_sources(config, config.sources, settings=RELAXED, timeout=600)["hn-bench"]
        elapsed = time.perf_counter() - started
        check_stored(Path(tmp) / "monitor.db", result)
    if result["status"] != "ok":
        raise SystemExit(f"our crawl failed: {result}")
    return elapsed, result["new"]


def check_stored(db_path: Path, result: dict[str, Any]) -> None:
    """After the clock stops: every item is really in the store (row, raw JSON, search index, watermark)."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        rows, raws = conn.execute("select count(*), count(raw) from mentions").fetchone()
        indexed = conn.execute("select count(*) from mentions_fts").fetchone()[0]
        watermark = conn.execute("select value from source_state where key = 'newest:search:bench'").fetchone()
    finally:
        conn.close()
    if not (rows == raws == indexed == ITEMS == result["new"]) or watermark is None:
        raise SystemExit(f"incomplete store: {rows} rows, {raws} raw, {indexed} indexed, watermark {watermark}")


# -------------------------------------------------------------------- main


def warm_up(base_url: str) -> None:
    """Have the server build and cache every page, so neither crawler pays for that."""
    for page in range(PAGES):
        with urllib.request.urlopen(page_url(base_url, page), timeout=60) as response:
            response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each crawler (median reported)")
    parser.add_argument("--bare", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        run_bare(args.bare, args.tuned)
        return 0

    from tests.social_apis import SocialApis

    bare_times: list[float] = []
    tuned_times: list[float] = []
    our_times: list[float] = []
    with SocialApis() as server:
        warm_up(server.base_url)
        for _ in range(args.runs):  # alternated, so background load hits all alike
            for tuned, times in ((False, bare_times), (True, tuned_times)):
                seconds, items = time_bare(server.base_url, tuned)
                assert items == ITEMS, f"bare spider scraped {items} items"
                times.append(seconds)
            seconds, items = time_ours(server.base_url)
            assert items == ITEMS, f"our crawl stored {items} items"
            our_times.append(seconds)

    bare, tuned, ours = (statistics.median(t) for t in (bare_times, tuned_times, our_times))
    ratio = ours / bare
    print(f"{ITEMS:,} items, {PAGES} pages of 100 on loopback; median of {args.runs} runs each\n")
    print("| crawler | seconds | items/s | ratio |")
    print("|---|---|---|---|")
    print(f"| bare Scrapy spider (parse only) | {bare:.2f} | {ITEMS / bare:,.0f} | 1.00 |")
    print(f"| bare, with our crawl process's settings | {tuned:.2f} | {ITEMS / tuned:,.0f} | {tuned / bare:.2f} |")
    print(f"| ours (`hackernews` spider + store pipeline → SQLite) | {ours:.2f} | {ITEMS / ours:,.0f} | {ratio:.2f} |")
    runs = {"bare": bare_times, "tuned bare": tuned_times, "ours": our_times}
    print("\nall runs (s): " + ", ".join(f"{name} {[round(t, 2) for t in times]}" for name, times in runs.items()))
    print(f"ours vs the tuned bare spider (the pipeline's own cost): {ours / tuned:.2f}x")
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"target: ours within {TARGET_RATIO}x of bare: {verdict} ({ratio:.2f}x)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
