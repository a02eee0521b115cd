"""Escaping helpers for places autoescape does not cover."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

SAFE_SCHEMES = {"http", "https"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_CHARS = ("=", "+", "-", "@")


def safe_url(url: str | None) -> str:
    """Return ``url`` if it is http(s), else an inert ``#``: blocks ``javascript:`` links from scraped data."""
    if not url:
        return "#"
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return "#"
    return url.strip() if scheme in SAFE_SCHEMES else "#"


def _ignored_lead(ch: str) -> bool:
    """A character a spreadsheet may skip or trim before it looks for a formula: whitespace of any kind
    (line feed, NBSP, ideographic space), controls and invisible format characters (zero-width, BOM)."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def csv_cell(value: object) -> object:
    """Neutralise spreadsheet formula injection in an exported cell: a leading ``'`` when a spreadsheet
    could read it as a formula.

    Besides ``= + - @`` (and tab / carriage return) at the start, that covers a formula character after
    leading whitespace or invisible characters, and the full-width and small forms (＝ ＋ － ＠ ﹦ …),
    which NFKC folds onto the ASCII ones and some spreadsheets accept in their place. This is the one
    implementation: ``monitor.queue.export.formula_safe`` (the inbox export) and the trends export use it.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    for ch in value:
        if _ignored_lead(ch):
            continue
        if unicodedata.normalize("NFKC", ch)[:1] in FORMULA_CHARS:
            return "'" + value
        break
    return value
