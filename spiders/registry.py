"""Which Scrapy spider crawls which source type.

Reddit is absent on purpose: PRAW collects it in-process (``spiders/reddit.py``).
Spiders are imported lazily so ``monitor`` can list types without importing Scrapy.
"""

from __future__ import annotations

import importlib
from typing import Any

SPIDER_CLASSES: dict[str, str] = {
    "schema_org": "spiders.schema_org:SchemaOrgSpider",
    "app_store": "spiders.app_store:AppStoreSpider",
    "app_store_connect": "spiders.app_store_connect:AppStoreConnectSpider",
    "google_places": "spiders.google_places:GooglePlacesSpider",
    "yelp": "spiders.yelp:YelpSpider",
    "trustpilot": "spiders.trustpilot:TrustpilotSpider",
    "hackernews": "spiders.hackernews:HackerNewsSpider",
    "mastodon": "spiders.mastodon:MastodonSpider",
    "bluesky": "spiders.bluesky:BlueskySpider",
    "feed": "spiders.feed:FeedSpider",
    "google_business": "spiders.google_business:GoogleBusinessSpider",
    "google_play": "spiders.google_play:GooglePlaySpider",
}

SCRAPY_TYPES = frozenset(SPIDER_CLASSES)


def spider_class(source_type: str) -> Any:
    module_name, _, class_name = SPIDER_CLASSES[source_type].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
