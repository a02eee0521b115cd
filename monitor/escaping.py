"""Escaping helpers for places autoescape does not cover."""

from __future__ import annotations

from urllib.parse import urlsplit

SAFE_SCHEMES = {"http", "https"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_url(url: str | None) -> str:
    """Return ``url`` if it is http(s), else an inert ``#``: blocks ``javascript:`` links from scraped data."""
    if not url:
        return "#"
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return "#"
    return url.strip() if scheme in SAFE_SCHEMES else "#"


def csv_cell(value: object) -> object:
    """Neutralise spreadsheet formula injection in an exported cell."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
