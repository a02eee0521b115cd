"""Crawl entry point: ``python -m spiders.run --config PATH SOURCE [SOURCE...]``.

Runs one :class:`~scrapy.crawler.CrawlerProcess` with one crawler per named
``schema_org`` source, then exits. Meant to be started as a fresh process by
:func:`monitor.crawl.crawl_scrapy_sources` (Twisted's reactor cannot restart).
Results go to the database's ``crawl_runs`` table; a source that cannot be
crawled (unknown name, wrong type) gets a failed run naming the problem.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.settings import Settings

from monitor.config import Config, ConfigError, SourceConfig, load_config
from monitor.store import UpsertCounts, finish_crawl_run, open_db, start_crawl_run
from spiders.registry import SCRAPY_TYPES, spider_class


def parse_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def base_settings(config: Config, overrides: Sequence[tuple[str, str]] = ()) -> Settings:
    """Project settings from :mod:`spiders.settings`, the database path, then command-line overrides."""
    settings = Settings()
    settings.setmodule("spiders.settings", priority="project")
    settings.set("MONITOR_DB_PATH", str(config.storage_path), priority="project")
    for key, value in overrides:
        settings.set(key, value, priority="cmdline")
    return settings


def source_settings(base: Settings, source: SourceConfig) -> Settings:
    """Per-source values; command-line overrides still win (they have a higher priority)."""
    settings = base.copy()
    if source.user_agent:
        settings.set("USER_AGENT", source.user_agent, priority="spider")
    settings.set("ROBOTSTXT_OBEY", bool(source.options.get("obey_robots", True)), priority="spider")
    return settings


def _record_failure(config: Config, name: str, message: str) -> None:
    db = open_db(config.storage_path)
    try:
        finish_crawl_run(db, start_crawl_run(db, name), UpsertCounts(), [message])
    finally:
        db.conn.close()


def run(config: Config, names: Sequence[str], overrides: Sequence[tuple[str, str]] = ()) -> int:
    """Crawl the named sources in this process; returns the number of sources that could not start."""
    base = base_settings(config, overrides)
    process = CrawlerProcess(base)
    failed = 0
    started = 0
    for name in dict.fromkeys(names):
        try:
            source = config.source(name)
        except ConfigError as exc:
            failed += 1
            print(f"spiders.run: {exc}", file=sys.stderr)
            _record_failure(config, name, str(exc))
            continue
        spider_cls = spider_class(source.type) if source.type in SCRAPY_TYPES else None
        if spider_cls is None:
            failed += 1
            message = f"{source.key}.type: source {name!r} has type {source.type!r}, not crawled by Scrapy here"
            print(f"spiders.run: {message}", file=sys.stderr)
            _record_failure(config, name, message)
            continue
        # The first crawler installs the reactor; the others reuse it.
        crawler = Crawler(spider_cls, source_settings(base, source), init_reactor=started == 0)
        process.crawl(crawler, source=source, locations=config.locations)
        started += 1
    if started:
        # Scrapy leaves its loggers at NOTSET and filters in the root handler, so every scraped
        # item builds a DEBUG record only to drop it; a logger level skips that per-item work.
        logging.getLogger("scrapy").setLevel(base.get("LOG_LEVEL"))
        # Everything built so far (modules, settings, crawlers) lives until exit. Frozen, it is
        # left out of the cyclic GC's full collections, which otherwise rescan those ~100,000
        # objects again and again while a big crawl allocates items (~0.3 s on a 10,000-item crawl).
        gc.freeze()
        process.start()
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spiders.run",
        description="Crawl Scrapy-based sources (every type but reddit) and store their mentions.",
        epilog="example: python -m spiders.run --config config.toml acme-reviews",
    )
    parser.add_argument("--config", required=True, help="path to config.toml")
    parser.add_argument(
        "--setting",
        action="append",
        type=parse_setting,
        default=[],
        metavar="KEY=VALUE",
        help="override a Scrapy setting (repeatable), e.g. --setting DOWNLOAD_DELAY=0",
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="source names from the config")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"spiders.run: {exc}", file=sys.stderr)
        return 2
    failed = run(config, args.sources, args.setting)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
