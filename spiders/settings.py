"""Scrapy settings shared by every mention-monitor crawler.

:mod:`spiders.run` loads this module and then applies per-source values
(user agent, robots.txt) and any ``--setting KEY=VALUE`` overrides.
"""

BOT_NAME = "mention-monitor"
# Empty on purpose: spiders.run picks spider classes itself (spiders.registry); loading every
# spider module would import extruct, PRAW and friends on every crawl (~0.6 s).
SPIDER_MODULES: list[str] = []
# `scrapy crawl TYPE -a source=NAME -a config=PATH` (Scrapyd-style): names are source types, resolved lazily.
SPIDER_LOADER_CLASS = "spiders.run.RegistrySpiderLoader"
# Its `crawl` checks -a source / -a config before Scrapy starts (one line naming the argument, exit code 2).
COMMANDS_MODULE = "spiders.commands"

# --- Politeness: we read other people's sites, so behave like a good citizen.
ROBOTSTXT_OBEY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 0.5
COOKIES_ENABLED = False

# --- Resilience: transient failures are retried; what still fails becomes a crawl-run message.
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
# Scrapy's RetryMiddleware, extended to honour Retry-After on 429 / 503 (see spiders/middlewares.py).
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "spiders.middlewares.RetryAfterMiddleware": 550,
    # Scrapy 2.19's robots.txt check lets the 3rd+ concurrent request through unchecked; ours does not.
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "spiders.middlewares.SharedRobotsTxtMiddleware": 100,
    # API keys in custom headers (X-Goog-Api-Key, apikey) do not follow a redirect to another origin;
    # Scrapy itself only drops Authorization and Cookie. Before the downloader, after every header is set.
    "spiders.middlewares.CredentialRedirectMiddleware": 950,
}
# Longest Retry-After we wait out inside one crawl; longer waits are left to the next scheduled crawl.
MONITOR_MAX_RETRY_AFTER = 300
DOWNLOAD_TIMEOUT = 30
# A review page is small; anything huge is not what we came for.
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024

# --- Process hygiene: the crawl runs unattended from the scheduler.
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19 starts a local server that runs Python code sent to it; an unattended crawler needs none.
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
# A development lint: Scrapy re-reads and parses the callback's source for every response (its
# cache is keyed on the short-lived bound method), about 8 % of a loopback crawl's CPU.
# tests/ covers our callbacks instead.
WARN_ON_GENERATOR_RETURN_VALUE = False
# Scrapy 2.19 no longer has REQUEST_FINGERPRINTER_IMPLEMENTATION; its default fingerprinter is current.

# --- Storage: every item goes to SQLite through the store pipeline.
ITEM_PIPELINES = {"spiders.pipelines.StorePipeline": 300}
# Items are written in batches of this size (and when the spider closes).
MONITOR_BATCH_SIZE = 200
# Set by spiders.run from the config's [storage] path.
MONITOR_DB_PATH = None
