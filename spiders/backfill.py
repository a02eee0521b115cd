"""Which crawled items have no trustworthy time (``mentions.backfill``; see docs/time-trust.md).

Kept free of Scrapy so the PRAW collector can use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# On a stream's first crawl, an item posted longer ago than this is history, not news.
BACKFILL_AGE = timedelta(hours=48)
ERROR_CHARS = 200


def is_backfill(posted_at: Any, first_crawl: bool, started: datetime) -> bool:
    """No trustworthy time: no date at all, or an item older than 48 h found by a stream's first crawl."""
    if not posted_at:
        return True
    if not first_crawl:
        return False
    try:
        moment = datetime.fromisoformat(str(posted_at))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment < started - BACKFILL_AGE
    except (OverflowError, ValueError):
        return True  # a time no calendar holds is no time


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line and short, for an item error (the message may quote hostile data)."""
    text = " ".join(str(exc).split())[:ERROR_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
