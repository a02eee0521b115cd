"""Scrapy commands of this project (``COMMANDS_MODULE`` in spiders/settings.py)."""
