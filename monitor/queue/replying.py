"""Sending a reply a person wrote: through PRAW on Reddit, by hand elsewhere.

Platforms without a reply API (or whose API the business has not connected)
get a link to the page where the business answers; the person replies there
and the inbox records the text they used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import sqlite_utils

from monitor.config import Config, ConfigError
from monitor.escaping import safe_url
from monitor.queue.items import QueueError, get_item, mark_replied, set_state

# Where a business answers a review when the review's own page is not the place.
OWNER_CONSOLES = {
    "app_store": "https://appstoreconnect.apple.com/apps",
    "yelp": "https://biz.yelp.com/",
    "google_places": "https://business.google.com/reviews",
    "trustpilot": "https://businessapp.b2b.trustpilot.com/reviews",
}


class ReplyFailed(QueueError):
    """The platform refused or could not be reached; nothing was recorded."""


def source_type_of(config: Config, source: str) -> str | None:
    for candidate in config.sources:
        if candidate.name == source:
            return candidate.type
    return None


def can_post_directly(source_type: str | None) -> bool:
    return source_type == "reddit"


def reply_page_url(source_type: str | None, item: dict[str, Any]) -> str:
    """The page where a person answers this mention by hand (http(s) only; ``#`` when unknown)."""
    if source_type == "hackernews":
        ident = (item.get("external_id") or "").removeprefix("hn:")
        if ident.isdigit():
            return f"https://news.ycombinator.com/reply?id={quote(ident)}"
    if source_type in OWNER_CONSOLES:
        return OWNER_CONSOLES[source_type]
    return safe_url(item.get("url"))


def post_reply_now(
    db: sqlite_utils.Database,
    config: Config,
    item_id: int,
    text: str,
    actor: str,
    template: str | None = None,
) -> str:
    """Post ``text`` under the item's Reddit post or comment, then record it; returns the new comment's id.

    Called only from a person's explicit action (the inbox's "Post to Reddit" button, or the CLI).
    """
    item = get_item(db, item_id)
    rows = list(db.query("select source, external_id from mentions where id = ?", [item["mention_id"]]))
    source_name, external_id = rows[0]["source"], rows[0]["external_id"]
    try:
        source = config.source(source_name)
    except ConfigError as exc:
        raise ReplyFailed(f"source {source_name!r} is no longer configured: {exc}") from None
    if source.type != "reddit":
        raise QueueError(f"queue item {item_id}: {source.type} replies are made on the platform, then marked replied")
    if not text.strip():
        raise QueueError(f"queue item {item_id}: the reply text is empty")
    if item["state"] not in ("new", "assigned"):
        raise QueueError(f"queue item {item_id} is {item['state']}; reopen it before replying again")
    # Claim the item first (compare-and-set), so a double click or a colleague cannot post a second reply.
    previous = item["state"]
    set_state(db, item_id, previous, "replied", actor, "posting a reply to Reddit")
    from spiders.reddit import RedditReplyError, post_reply

    try:
        comment_id = post_reply(source, external_id, text)
    except (RedditReplyError, ConfigError) as exc:
        set_state(db, item_id, "replied", previous, actor, f"reply not posted: {exc}")
        raise ReplyFailed(str(exc)) from None
    except BaseException:
        set_state(db, item_id, "replied", previous, actor, "reply not posted: unexpected error")
        raise
    mark_replied(
        db, item_id, text, actor=actor, channel="reddit", template=template, external_id=comment_id, expected="replied"
    )
    return comment_id
