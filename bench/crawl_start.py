"""What one crawl costs before it fetches anything: a Scrapy child process per crawl, for deployment sizing.

    python bench/crawl_start.py [--sources 10] [--rounds 3]

A worker crawls a source in a child process (``monitor.crawl.crawl_scrapy_sources`` starts ``spiders.run``), so a
deployment watching thousands of sources every 15 minutes pays the child's start-up (interpreter, Scrapy, the
Twisted reactor, the store) once per crawl. This times, on loopback, with the Hacker News mock of
``tests/social_apis.py`` (250 hits for the query, one page of them per crawl):

* the floor: a child that only imports the crawl process's modules (``python -c "import spiders.run"``);
* one source per child, first crawl (the page's items are new) and then incremental crawls (the watermark
  asks only for newer items: nothing new, the usual 15-minute case);
* every source in one child (``crawl_scrapy_sources`` with all of them), the same two ways.

Each row: wall seconds and CPU seconds (user + system of the children, from ``getrusage``) per child and per
source, median over the rounds. CPU seconds per source give the sizing: one core runs ``900 / cpu`` source
crawls per 15 minutes.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crawl import RELAXED  # noqa: E402  (politeness off on loopback: a delay only measures the delay)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(run) -> tuple[float, float]:
    """(wall s, children's CPU s) of ``run()``, which must wait for its children."""
    cpu, began = children_cpu(), time.perf_counter()
    run()
    return time.perf_counter() - began, children_cpu() - cpu


def write_config(folder: Path, base_url: str, sources: int) -> Path:
    body = '[storage]\npath = "monitor.db"\n'
    for i in range(sources):
        body += (f'\n[[sources]]\nname = "hn-{i}"\ntype = "hackernews"\nsearch = ["acme"]\n'
                 f'base_url = "{base_url}/hn"\nmax_pages = 1\n')  # fmt: skip
    path = folder / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10, help="sources in the config (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement (median reported)")
    args = parser.parse_args(argv)

    from monitor.config import load_config
    from monitor.crawl import crawl_scrapy_sources
    from tests.social_apis import SocialApis

    rows: dict[str, list[tuple[float, float, int]]] = {}  # name -> [(wall, cpu, children)]

    def add(name: str, wall: float, cpu: float, children: int) -> None:
        rows.setdefault(name, []).append((wall, cpu, children))

    def crawl(config, sources) -> None:
        results = crawl_scrapy_sources(config, sources, settings=RELAXED, timeout=300)
        failed = {name: r["messages"] for name, r in results.items() if r["status"] != "ok"}
        if failed:
            raise SystemExit(f"crawl failed: {failed}")

    floor = [sys.executable, "-c", "import spiders.run"]
    with SocialApis() as server:
        for _ in range(args.rounds):
            wall, cpu = timed(lambda: subprocess.run(floor, cwd=ROOT, check=True))
            add("floor: a child that imports the crawl process, nothing else", wall, cpu, 1)
            for together in (False, True):
                with tempfile.TemporaryDirectory(prefix="crawl-start-") as tmp:
                    config = load_config(write_config(Path(tmp), server.base_url, args.sources))
                    how = "all sources in one child" if together else "one source per child"
                    for phase in ("first crawl (items new)", "incremental crawl (nothing new)"):
                        if together:
                            wall, cpu = timed(lambda c=config: crawl(c, c.sources))
                            add(f"{how}, {phase}", wall, cpu, 1)
                        else:
                            wall, cpu = timed(lambda c=config: [crawl(c, [s]) for s in c.sources])
                            add(f"{how}, {phase}", wall, cpu, len(config.sources))

    print(f"bench/crawl_start.py --sources {args.sources} --rounds {args.rounds}  ({datetime.now(UTC):%Y-%m-%d %H:%M} "
          "UTC)\n")  # fmt: skip
    print(f"Hacker News mock on 127.0.0.1, {args.sources} sources of one page each, SQLite store; median of "
          f"{args.rounds} rounds\n")  # fmt: skip
    print("| what | children | wall s per child | CPU s per child | CPU s per source | crawls per core per 15 min |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in rows.items():
        children = runs[0][2]
        wall = statistics.median(r[0] for r in runs) / children
        cpu = statistics.median(r[1] for r in runs) / children
        per_source = cpu if children > 1 or name.startswith("floor") else cpu / args.sources
        print(f"| {name} | {children} | {wall:.2f} | {cpu:.2f} | {per_source:.3f} | {900 / per_source:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
