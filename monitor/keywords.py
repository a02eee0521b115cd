"""Keyword rules per source: ``exclude`` cuts noise from ambiguous names, ``require`` narrows a broad source."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from monitor.config import SourceConfig


@lru_cache(maxsize=256)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    # Whole words, case-insensitive; internal whitespace matches any run of whitespace.
    parts = [r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in phrases]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


def passes_keyword_rules(source: SourceConfig, mention: dict[str, Any]) -> bool:
    """True when the mention survives the source's ``exclude`` and ``require`` rules."""
    text = f"{mention.get('title') or ''}\n{mention.get('text') or ''}"
    excluded = _phrase_pattern(tuple(source.exclude))
    if excluded is not None and excluded.search(text):
        return False
    required = _phrase_pattern(tuple(source.require))
    return required is None or required.search(text) is not None
