"""Scrapy spiders that turn public pages and APIs into stored mentions.

Crawls run through :mod:`spiders.run` in a fresh process (see :mod:`monitor.crawl`).
"""
