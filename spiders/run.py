"""Crawl entry point: ``python -m spiders.run --config PATH SOURCE [SOURCE...]``.

Runs one :class:`~scrapy.crawler.CrawlerProcess` with one crawler per named
``schema_org`` source, then exits. Meant to be started as a fresh process by
:func:`monitor.crawl.crawl_scrapy_sources` (Twisted's reactor cannot restart).
Results go to the database's ``crawl_runs`` table; a source that cannot be
crawled (unknown name, wrong type) gets a failed run naming the problem.

The same spiders also run under Scrapy's own command line (Scrapyd-style deployment), from a
directory with the repository's ``scrapy.cfg``::

    scrapy crawl schema_org -a source=acme-reviews -a config=/etc/monitor/config.toml

The spider name is the source's ``type``; :class:`RegistrySpiderLoader` resolves it and
:class:`CommandLineSpider` turns the two string arguments into what :func:`run` passes
(the source's config, the locations, the database path and per-source settings), so the
crawl stores and records its ``crawl_runs`` row exactly as ``monitor crawl`` does.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from typing import Any

from scrapy import Spider
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.settings import BaseSettings, Settings

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
    settings.set("MONITOR_DB_PATH", str(config.storage_target), priority="project")
    for key, value in overrides:
        settings.set(key, value, priority="cmdline")
    return settings


def apply_source_settings(settings: BaseSettings, source: SourceConfig) -> None:
    """Per-source values, at ``spider`` priority: command-line overrides still win."""
    if source.user_agent:
        settings.set("USER_AGENT", source.user_agent, priority="spider")
    settings.set("ROBOTSTXT_OBEY", bool(source.options.get("obey_robots", True)), priority="spider")


def source_settings(base: Settings, source: SourceConfig) -> Settings:
    """Per-source values; command-line overrides still win (they have a higher priority)."""
    settings = base.copy()
    apply_source_settings(settings, source)
    return settings


def _record_failure(config: Config, name: str, message: str) -> None:
    db = open_db(config.storage_target)
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


# ------------------------------------------------- scrapy crawl SPIDER -a source=NAME -a config=PATH


class SpiderArgumentError(ValueError):
    """A ``scrapy crawl`` argument that names no crawlable source; ``str()`` is one line naming the argument."""


def source_from_arguments(spider_name: str, kwargs: dict[str, Any]) -> tuple[Config, SourceConfig]:
    """Pop ``source`` and ``config`` from ``-a`` arguments and find that source; raises SpiderArgumentError.

    ``config`` defaults as ``monitor --config`` does ($MONITOR_CONFIG, then ./config.toml).
    """
    name = kwargs.pop("source", None)
    config_path = kwargs.pop("config", None)
    if not isinstance(name, str) or not name.strip():
        raise SpiderArgumentError("-a source: missing; pass -a source=NAME, a [[sources]] name from the config")
    try:
        config = load_config(config_path or None)
    except ConfigError as exc:
        raise SpiderArgumentError(f"-a config: {exc}") from None
    try:
        source = config.source(name)
    except ConfigError as exc:
        raise SpiderArgumentError(f"-a source: {exc.message} in {config.path}") from None
    if source.type != spider_name:
        how = f"scrapy crawl {source.type}" if source.type in SCRAPY_TYPES else f"monitor crawl {name}"
        raise SpiderArgumentError(
            f"-a source: source {name!r} has type {source.type!r}, not {spider_name!r}; crawl it with `{how}`"
        )
    return config, source


class CommandLineSpider:
    """Mixed in front of a registry spider by :class:`RegistrySpiderLoader`: builds it from string arguments.

    ``spiders.run`` passes a :class:`SourceConfig`; ``scrapy crawl`` (and Scrapyd) can only pass strings.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Spider:
        if isinstance(kwargs.get("source"), SourceConfig):
            return super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        # `scrapy crawl` checked the arguments already (spiders/commands/crawl.py); a script that starts this
        # spider by name gets the same one-line SpiderArgumentError, before anything is opened or stored.
        config, source = source_from_arguments(cls.name, kwargs)  # type: ignore[attr-defined]
        # The settings are frozen only after the spider is built, so the database and per-source values
        # set here are what the store pipeline and the middlewares see, as in spiders.run.
        # At project priority, like base_settings(): a `-s MONITOR_DB_PATH=...` on the command line still wins.
        crawler.settings.set("MONITOR_DB_PATH", str(config.storage_target), priority="project")
        apply_source_settings(crawler.settings, source)
        # The spider class's own settings win over the source's, as in run(), where Crawler() applies them
        # after source_settings() (API spiders never fetch robots.txt from an API host).
        cls.update_settings(crawler.settings)  # type: ignore[attr-defined]
        logging.getLogger("scrapy").setLevel(crawler.settings.get("LOG_LEVEL"))  # see run(): per-item cost
        return super().from_crawler(crawler, *args, source=source, locations=config.locations, **kwargs)  # type: ignore[misc]


class RegistrySpiderLoader:
    """``SPIDER_LOADER_CLASS``: spider names are the Scrapy source types of :mod:`spiders.registry`.

    Each is imported only when crawled (``SPIDER_MODULES`` stays empty, see spiders/settings.py).
    """

    def __init__(self, settings: BaseSettings | None = None) -> None:
        self._classes: dict[str, type[Spider]] = {}

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RegistrySpiderLoader:
        return cls(settings)

    def load(self, spider_name: str) -> type[Spider]:
        if spider_name not in SCRAPY_TYPES:
            raise KeyError(f"Spider not found: {spider_name} (spiders are source types: {', '.join(self.list())})")
        if spider_name not in self._classes:
            base = spider_class(spider_name)
            namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__, "__doc__": base.__doc__}
            self._classes[spider_name] = type(base.__name__, (CommandLineSpider, base), namespace)
        return self._classes[spider_name]

    def list(self) -> list[str]:
        return sorted(SCRAPY_TYPES)

    def find_by_request(self, request: Any) -> list[str]:
        return []  # a URL does not say which configured source it belongs to


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
