"""`scrapy crawl TYPE -a source=NAME -a config=PATH` (Scrapyd-style) runs the crawl `monitor crawl NAME` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scrapy.crawler import Crawler
from scrapy.settings import Settings

from monitor.config import load_config
from monitor.crawl import crawl_scrapy_sources
from monitor.store import open_db
from spiders.registry import spider_class
from spiders.run import (
    CommandLineSpider,
    RegistrySpiderLoader,
    SpiderArgumentError,
    base_settings,
    source_from_arguments,
    source_settings,
)
from spiders.schema_org import SchemaOrgSpider
from tests.mockserver import MockServer

REPO = Path(__file__).resolve().parents[1]
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0", "-s", "LOG_LEVEL=WARNING"]
FIELDS = ("external_id", "url", "kind", "author", "title", "text", "rating", "posted_at", "brand", "backfill")


@pytest.fixture(scope="module")
def server() -> Any:
    with MockServer() as mock:
        yield mock


def write_config(directory: Path, base_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(
        '[storage]\npath = "monitor.db"\n\n'
        f'[[sources]]\nname = "mock"\ntype = "schema_org"\nbrand = "Acme"\nurls = ["{base_url}/reviews?page=1"]\n\n'
        '[[sources]]\nname = "reddit-acme"\ntype = "reddit"\nsearch = ["acme"]\n',
        encoding="utf-8",
    )
    return path


def scrapy_crawl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MONITOR_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", *args, *FAST],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stored(db_path: Path) -> list[tuple[Any, ...]]:
    db = open_db(db_path)
    try:
        return [tuple(row[f] for f in FIELDS) for row in db.query("select * from mentions order by external_id")]
    finally:
        db.conn.close()


def test_scrapy_crawl_stores_what_monitor_crawl_stores_and_closes_its_run(server: MockServer, tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "scrapy", server.base_url)
    # Scrapyd adds its own -a _job=...; other arguments pass through to the spider as Scrapy's do.
    result = scrapy_crawl("schema_org", "-a", "source=mock", "-a", f"config={config_path}", "-a", "_job=abc123")
    assert result.returncode == 0, result.stderr[-2000:]

    db = open_db(tmp_path / "scrapy" / "monitor.db")  # [storage] path, relative to the config file
    [run] = list(db.query("select * from crawl_runs"))
    assert (run["source"], run["status"], run["new"], run["errors"]) == ("mock", "ok", 4, 0)
    assert run["finished_at"] and run["pid"] and json.loads(run["messages"]) == []
    db.conn.close()

    # The same source crawled the way `monitor crawl mock` does it stores the same mentions.
    other = write_config(tmp_path / "monitor", server.base_url)
    config = load_config(other)
    crawled = crawl_scrapy_sources(config, [config.source("mock")], settings={"DOWNLOAD_DELAY": 0}, timeout=60)
    assert crawled["mock"]["new"] == 4
    mine = stored(tmp_path / "scrapy" / "monitor.db")
    assert len(mine) == 4 and mine == stored(tmp_path / "monitor" / "monitor.db")

    # A second run of the same crawl finds nothing new (watermarks and upserts work the same way).
    again = scrapy_crawl("schema_org", "-a", "source=mock", "-a", f"config={config_path}")
    assert again.returncode == 0, again.stderr[-2000:]
    db = open_db(tmp_path / "scrapy" / "monitor.db")
    last = list(db.query("select * from crawl_runs order by id"))[-1]
    assert (last["status"], last["new"], last["unchanged"]) == ("ok", 0, 4)
    assert db.execute("select count(*) from mentions").fetchone()[0] == 4
    db.conn.close()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["schema_org", "-a", "config={config}"], "scrapy crawl schema_org: -a source: missing"),
        (["schema_org", "-a", "source=nope", "-a", "config={config}"], "-a source: no source named 'nope'"),
        (["feed", "-a", "source=mock", "-a", "config={config}"],
         "-a source: source 'mock' has type 'schema_org', not 'feed'; crawl it with `scrapy crawl schema_org`"),
        (["schema_org", "-a", "source=reddit-acme", "-a", "config={config}"], "`monitor crawl reddit-acme`"),
        (["schema_org", "-a", "source=mock", "-a", "config={missing}"], "-a config: "),
        (["schema_org", "-a", "source=mock", "-a", "config={bad}"], "-a config: config.toml: invalid TOML"),
        (["schema_org", "-a", "source=mock", "-a", "config={folder}"], "-a config: "),
        (["nosuch", "-a", "source=mock", "-a", "config={config}"], "scrapy crawl: no spider 'nosuch'"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_store_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    config = write_config(tmp_path / "ok", "http://127.0.0.1:9")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.toml").write_text("[storage\n", encoding="utf-8")
    paths = {"config": config, "missing": tmp_path / "missing.toml", "bad": tmp_path / "bad" / "config.toml",
             "folder": tmp_path / "ok"}  # fmt: skip
    result = scrapy_crawl(*[arg.format(**paths) for arg in args])
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("scrapy crawl")]
    assert len(ours) == 1 and expected in ours[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ok" / "monitor.db").exists() and not (tmp_path / "bad" / "monitor.db").exists()


def test_loader_names_are_source_types_and_spiders_still_take_objects(tmp_path: Path) -> None:
    loader = RegistrySpiderLoader.from_settings(None)  # type: ignore[arg-type]
    assert "schema_org" in loader.list() and "reddit" not in loader.list()
    cls = loader.load("schema_org")
    assert issubclass(cls, SchemaOrgSpider) and issubclass(cls, CommandLineSpider) and cls.name == "schema_org"
    assert loader.load("schema_org") is cls
    with pytest.raises(KeyError, match="Spider not found: reddit"):
        loader.load("reddit")
    config_path = write_config(tmp_path, "http://127.0.0.1:9")
    config, source = source_from_arguments("schema_org", {"source": "mock", "config": str(config_path)})
    assert source.name == "mock" and config.path == config_path.resolve()
    with pytest.raises(SpiderArgumentError, match="^-a source: missing"):
        source_from_arguments("schema_org", {"source": " ", "config": str(config_path)})


@pytest.mark.parametrize("source_type", ["schema_org", "hackernews", "feed"])
def test_settings_match_what_spiders_run_gives_the_same_source(tmp_path: Path, source_type: str) -> None:
    options = {"schema_org": 'urls = ["http://127.0.0.1:9/"]\nobey_robots = true', "hackernews": 'search = ["acme"]',
               "feed": 'urls = ["http://127.0.0.1:9/feed"]'}[source_type]  # fmt: skip
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\npath = "m.db"\n[[sources]]\nname = "s"\ntype = "{source_type}"\n{options}\n'
                    'user_agent = "AcmeBot/1.0"\n', encoding="utf-8")  # fmt: skip
    config = load_config(path)
    # spiders.run: Crawler(class, source_settings(...)); scrapy crawl: project settings, then from_crawler.
    expected = Crawler(spider_class(source_type), source_settings(base_settings(config), config.source("s"))).settings
    project = Settings()
    project.setmodule("spiders.settings", priority="project")
    cls = RegistrySpiderLoader().load(source_type)
    crawler = Crawler(cls, project)
    spider = cls.from_crawler(crawler, source="s", config=str(path))
    assert spider.source == config.source("s") and spider.locations == config.locations
    for key in ("MONITOR_DB_PATH", "USER_AGENT", "ROBOTSTXT_OBEY", "ITEM_PIPELINES"):
        assert crawler.settings.get(key) == expected.get(key), key
    assert crawler.settings.getbool("ROBOTSTXT_OBEY") is (source_type != "hackernews")  # API spiders: never
