"""``scrapy crawl TYPE -a source=NAME -a config=PATH``: Scrapy's own command, with the arguments checked first.

A missing or unknown source, a source of another type or an unreadable config stops here with one line
naming the ``-a`` argument and exit code 2, before Scrapy builds a crawler: nothing is crawled or stored.
The crawl itself is Scrapy's; :class:`spiders.run.CommandLineSpider` builds the spider from the arguments.
"""

from __future__ import annotations

import argparse
import sys

from scrapy.commands.crawl import Command as ScrapyCrawl

from spiders.run import SpiderArgumentError, source_from_arguments

USAGE_EXIT = 2  # as `monitor` exits on a config error


class Command(ScrapyCrawl):
    def short_desc(self) -> str:
        return "Crawl one configured source: scrapy crawl TYPE -a source=NAME -a config=PATH"

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) == 1 and self.crawler_process is not None:
            name = args[0]
            known = self.crawler_process.spider_loader.list()
            if name not in known:
                print(f"scrapy crawl: no spider {name!r}; spiders are source types: {', '.join(known)}",
                      file=sys.stderr)  # fmt: skip
                self.exitcode = USAGE_EXIT
                return
            try:
                source_from_arguments(name, dict(opts.spargs))
            except SpiderArgumentError as exc:
                print(f"scrapy crawl {name}: {exc}", file=sys.stderr)
                self.exitcode = USAGE_EXIT
                return
        super().run(args, opts)
