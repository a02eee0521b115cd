"""Brand per search term or id: one source can watch our brand and a competitor's.

A source's ``brand`` tags every mention it finds. Its optional ``brands`` table
maps other brand names to the search terms, tags, subreddits or platform ids
(of that same source) that belong to them, e.g.::

    brand = "Acme"
    search = ["acme coffee", "rival coffee", "rivalcoffee"]
    brands = { "Rival Coffee" = ["rival coffee", "rivalcoffee"] }

A mention found through ``rival coffee`` is then Rival Coffee's, the rest stay
Acme's. Spiders ask :func:`brand_for` with the term or id a page was read for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import SourceConfig

# monitor.config imports this module for its checkers, so ConfigError is imported where it is raised.

# The options whose entries a ``brands`` table may name, per source type.
TERM_OPTIONS: dict[str, tuple[str, ...]] = {
    "reddit": ("search", "subreddits"),
    "hackernews": ("search",),
    "mastodon": ("search", "tags"),
    "bluesky": ("search",),
    "app_store": ("app_ids",),
    "google_places": ("place_ids",),
    "yelp": ("business_ids",),
    "trustpilot": ("business_unit_ids",),
}


def term_key(term: str) -> str:
    """How terms are compared: case, surrounding space, a tag's ``#`` and a subreddit's ``r/`` do not matter."""
    return term.strip().lstrip("#").removeprefix("/").removeprefix("r/").strip("/").casefold()


def check_brand_table(key: str, value: Any) -> dict[str, list[str]]:
    """Config checker for ``brands``: a table of brand name -> list of terms, no term under two brands."""
    from monitor.config import ConfigError

    if not isinstance(value, dict):
        raise ConfigError(key, 'expected a table like { "Rival Coffee" = ["rival coffee"] }')
    owner: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for brand, terms in value.items():
        if not brand.strip():
            raise ConfigError(key, "a brand name must not be empty")
        if not isinstance(terms, list) or not terms:
            raise ConfigError(f"{key}.{brand}", f"expected a non-empty list of search terms or ids, got {terms!r}")
        for j, term in enumerate(terms):
            if not isinstance(term, str) or not term.strip():
                raise ConfigError(f"{key}.{brand}[{j}]", f"expected a search term or id, got {term!r}")
            other = owner.setdefault(term_key(term), brand)
            if other != brand:
                raise ConfigError(f"{key}.{brand}[{j}]", f"{term!r} is already listed under brand {other!r}")
        out[brand] = list(terms)
    return out


def check_brand_terms(source: SourceConfig) -> None:
    """Every term a source's ``brands`` table names must be one the source actually reads."""
    from monitor.config import ConfigError

    brands = source.options.get("brands") or {}
    options = TERM_OPTIONS.get(source.type, ())
    known = {term_key(term) for option in options for term in source.options.get(option) or []}
    for brand, terms in brands.items():
        for j, term in enumerate(terms):
            if term_key(term) not in known:
                where = " or ".join(f"`{option}`" for option in options) or "search terms"
                raise ConfigError(
                    f"{source.key}.brands.{brand}[{j}]",
                    f"{term!r} is not in this source's {where}; list it there as well (source {source.name!r})",
                )


def brand_for(source: SourceConfig, term: str) -> str:
    """The brand of the term or id that found a mention: its ``brands`` entry, else the source's ``brand``."""
    brands = source.options.get("brands")
    if brands:
        wanted = term_key(term)
        for brand, terms in brands.items():
            if any(term_key(t) == wanted for t in terms):
                return brand
    return source.brand
