"""Sending a reply a person wrote: through the platform's reply channel where it has one, by hand elsewhere.

Sources whose type has a reply channel (``monitor.queue.channels``: Reddit, the owner APIs, …) post from the
tool, always on a person's action. Platforms without a reply API (or whose API the business has not
connected) get a link to the page where the business answers; the person replies there and the inbox
records the text they used. A reply made on the platform directly is recorded when a crawl sees it
(``record_platform_reply``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlite_utils

from monitor.config import Config, ConfigError, SourceConfig
from monitor.escaping import safe_url
from monitor.queue.channels import (
    ChannelError,
    PostedReply,
    ReplyChannel,
    ReplyRejected,
    channel_for,
    check_reply,
    platform_name,
)
from monitor.queue.items import QueueError, get_item, mark_replied, set_state
from monitor.queue.listing import OPEN_STATES
from monitor.store import get_mention, set_source_state, utcnow, write_transaction
from monitor.store import replies as replies_store
from monitor.store.queue_items import log_event
from monitor.store.replies import DELETED_SUFFIX

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


def platform_label(source_type: str | None) -> str:
    """What the inbox and CLI call the platform a source type replies on ("Reddit"); the type otherwise."""
    channel = channel_for(source_type)
    return platform_name(channel) if channel is not None else str(source_type or "the platform")


def platform_of_item(db: sqlite_utils.Database, config: Config, item_id: int) -> str:
    """What to call the platform a queue item's mention is on ("Reddit", "Google Play")."""
    source = replies_store.item_mention_source(db, item_id)
    return platform_label(source_type_of(config, source) if source is not None else None)


def can_post_directly(source_type: str | None) -> bool:
    """Whether replies to this source type can be posted from the tool (its type has a reply channel)."""
    return channel_for(source_type) is not None


def reply_page_url(source_type: str | None, item: dict[str, Any]) -> str:
    """The page where a person answers this mention by hand (http(s) only; ``#`` when unknown)."""
    if source_type == "hackernews":
        ident = (item.get("external_id") or "").removeprefix("hn:")
        if ident.isdigit():
            return f"https://news.ycombinator.com/reply?id={quote(ident)}"
    if source_type in OWNER_CONSOLES:
        return OWNER_CONSOLES[source_type]
    return safe_url(item.get("url"))


# Owner replies seen by a crawl before the queue has an item for the review (classification runs after the
# crawl) wait in source_state under this key prefix; ``apply_pending_platform_replies`` records them later.
PENDING_KEY = "platform_reply:"
PLATFORM_ACTOR = "platform"


def _mention(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any]:
    """The ``mentions`` row with ``raw`` decoded (a channel reads platform ids from it)."""
    mention = get_mention(db, mention_id)
    if mention is None:
        raise QueueError(f"mention {mention_id} is gone")
    try:
        raw = json.loads(mention.get("raw") or "null")
    except ValueError:
        raw = None
    mention["raw"] = raw if isinstance(raw, dict) else {}
    return mention


def _target(
    db: sqlite_utils.Database, config: Config, item_id: int
) -> tuple[dict[str, Any], dict[str, Any], SourceConfig, ReplyChannel]:
    """The item, its mention, its configured source and that source's reply channel."""
    item = get_item(db, item_id)
    mention = _mention(db, item["mention_id"])
    try:
        source = config.source(mention["source"])
    except ConfigError as exc:
        raise ReplyFailed(f"source {mention['source']!r} is no longer configured: {exc}") from None
    channel = channel_for(source.type, source)
    if channel is None:
        raise QueueError(f"queue item {item_id}: {source.type} replies are made on the platform, then marked replied")
    return item, mention, source, channel


def scrub(source: SourceConfig, message: str) -> str:
    """``message`` without the values of the source's secrets (an API may echo what it was sent)."""
    for option, env_name in source.options.items():
        if option.endswith("_env") and isinstance(env_name, str):
            value = os.environ.get(env_name) or ""
            if len(value) >= 4:
                message = message.replace(value, "[redacted]")
    return " ".join(message.split())


def _event(db: sqlite_utils.Database, item_id: int, actor: str, action: str, detail: str) -> None:
    log_event(db, item_id, actor, action, detail, utcnow())


def _utc(value: str | None) -> str | None:
    """A platform time as stored times are written (UTC, seconds); None when unreadable or in the future."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        return None  # a clock far off would make the reply look answered before it was asked
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def reply_key(db: sqlite_utils.Database, item_id: int) -> str:
    """The idempotency key of the item's next reply: stable across retries until a reply is recorded."""
    done = replies_store.reply_count(db, item_id)
    return f"monitor-{item_id}-{done + 1}"


def post_reply_now(
    db: sqlite_utils.Database,
    config: Config,
    item_id: int,
    text: str,
    actor: str,
    template: str | None = None,
) -> str:
    """Post ``text`` as the reply to the item's mention through its source's channel, then record it.

    Returns the platform's id of the reply. Called only from a person's explicit action (the inbox's
    "Post to …" button, or ``monitor queue reply --post``). The platform's rules are checked before
    anything else; the item is claimed (compare-and-set) before the platform is called, so a double
    click, a colleague or a retry cannot post twice; a refusal gives the item back.
    """
    item, mention, source, channel = _target(db, config, item_id)
    if not text.strip():
        raise QueueError(f"queue item {item_id}: the reply text is empty")
    try:
        check_reply(channel, text)
    except ReplyRejected as exc:
        raise ReplyFailed(f"{source.name}: {exc}") from None
    if item["state"] not in OPEN_STATES:
        raise QueueError(f"queue item {item_id} is {item['state']}; reopen it before replying again")
    platform = platform_name(channel)
    key = reply_key(db, item_id)
    previous = item["state"]
    set_state(db, item_id, previous, "replied", actor, f"posting a reply to {platform}")
    try:
        posted = channel.post(source, mention, text, key)
    except (ChannelError, ConfigError) as exc:
        reason = scrub(source, str(exc))
        set_state(db, item_id, "replied", previous, actor, f"reply not posted: {reason}")
        raise ReplyFailed(reason) from None
    except BaseException:
        set_state(db, item_id, "replied", previous, actor, "reply not posted: unexpected error")
        raise
    mark_replied(
        db, item_id, text, actor=actor, channel=channel.name, template=template, external_id=posted.external_id,
        expected="replied",
    )  # fmt: skip
    _record_answer(db, item_id, actor, platform, posted)
    return posted.external_id


def _record_answer(db: sqlite_utils.Database, item_id: int, actor: str, platform: str, posted: PostedReply) -> None:
    """The platform's answer (reply id, its time, link) in the item's history."""
    detail = f"{platform} reply {posted.external_id}"
    if posted.posted_at:
        detail += f" at {posted.posted_at}"
    if posted.url:
        detail += f" · {safe_url(posted.url)}"
    with write_transaction(db):
        _event(db, item_id, actor, "posted", detail)


def _reply_target(
    db: sqlite_utils.Database, config: Config, reply_id: int
) -> tuple[dict[str, Any], dict[str, Any], SourceConfig, ReplyChannel]:
    reply = replies_store.get_reply(db, reply_id)
    if reply is None:
        raise QueueError(f"no reply {reply_id}")
    _item, mention, source, channel = _target(db, config, reply["queue_item_id"])
    if reply["channel"] != channel.name or not reply["external_id"]:
        raise QueueError(f"reply {reply_id} was not posted from here; change it on the platform")
    return reply, mention, source, channel


def editable(source_type: str | None, reply: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the inbox offers (edit, delete) for a stored reply: posted from here, still live, allowed."""
    channel = channel_for(source_type)
    if channel is None or reply.get("channel") != channel.name or not reply.get("external_id"):
        return False, False
    return bool(channel.can_edit), bool(channel.can_delete)


def edit_reply(db: sqlite_utils.Database, config: Config, reply_id: int, text: str, actor: str) -> str:
    """Change a reply posted from here, on the platform and in the record; returns the reply's platform id."""
    reply, mention, source, channel = _reply_target(db, config, reply_id)
    if not channel.can_edit:
        raise QueueError(f"{platform_name(channel)} replies cannot be edited once posted")
    try:
        check_reply(channel, text)
    except ReplyRejected as exc:
        raise ReplyFailed(f"{source.name}: {exc}") from None
    try:
        posted = channel.edit(source, mention, reply["external_id"], text)
    except (ChannelError, ConfigError) as exc:
        raise ReplyFailed(scrub(source, str(exc))) from None
    with write_transaction(db):
        replies_store.update_reply_text(db, reply_id, text, posted.external_id or reply["external_id"])
        _event(db, reply["queue_item_id"], actor, "reply_edited",
               f"{platform_name(channel)} reply {reply['external_id']} edited; it said: {reply['text']}")  # fmt: skip
    return posted.external_id or reply["external_id"]


def delete_reply(db: sqlite_utils.Database, config: Config, reply_id: int, actor: str) -> None:
    """Delete a reply posted from here on the platform; the record stays (marked deleted) and the item reopens."""
    reply, mention, source, channel = _reply_target(db, config, reply_id)
    if not channel.can_delete:
        raise QueueError(f"{platform_name(channel)} replies cannot be deleted from here")
    try:
        channel.delete(source, mention, reply["external_id"])
    except (ChannelError, ConfigError) as exc:
        raise ReplyFailed(scrub(source, str(exc))) from None
    item_id = reply["queue_item_id"]
    with write_transaction(db):
        replies_store.set_reply_channel(db, reply_id, channel.name + DELETED_SUFFIX)
        _event(db, item_id, actor, "reply_deleted", f"{platform_name(channel)} reply {reply['external_id']} deleted")
        live = replies_store.live_reply_count(db, item_id)
        state = get_item(db, item_id)["state"]
        if not live and state == "replied":
            # The customer sees no answer any more: the item is work again.
            set_state(db, item_id, "replied", "new", actor, "our reply was deleted")


def record_platform_reply(
    db: sqlite_utils.Database,
    source: str,
    external_id: str,
    reply_text: str | None,
    reply_id: str | None,
    replied_at: str | None,
) -> str:
    """A crawl saw an owner reply on a review: mark its queue item replied with that text.

    Called by crawlers after the page's mentions are stored. Does nothing for our own reply (same
    reply id, or the same text as a reply we recorded), or for an item already handled (no second
    record, no reopen). A review not in the queue yet (it is classified after the crawl) is kept
    pending and recorded by ``apply_pending_platform_replies``. Returns what happened: ``recorded``,
    ``ours``, ``handled``, ``pending`` or ``ignored``.
    """
    text = (reply_text or "").strip()
    if not text:
        return "ignored"
    target = replies_store.platform_reply_target(db, source, external_id)
    if target is None or target["item_id"] is None:
        if target is not None and target["classified"]:
            return "ignored"  # classified and not queued: it needs no reply
        payload = {"text": text, "reply_id": reply_id, "replied_at": replied_at}
        set_source_state(db, source, PENDING_KEY + external_id, json.dumps(payload, ensure_ascii=False))
        return "pending"
    item_id, state = target["item_id"], target["state"]
    ours = replies_store.reply_ids_and_texts(db, item_id)
    if any((reply_id and r["external_id"] == reply_id) or (r["text"] or "").strip() == text for r in ours):
        return "ours"
    if state not in OPEN_STATES:
        return "handled"  # replied (or being posted right now) or dismissed: nothing to reopen or add
    try:
        mark_replied(db, item_id, text, actor=PLATFORM_ACTOR, channel="platform", external_id=reply_id,
                     expected=state)  # fmt: skip
    except QueueError:
        return "handled"  # someone acted on the item meanwhile
    when = _utc(replied_at)
    if when:
        # Response times count from when the reply was made, not from when a crawl noticed it.
        with write_transaction(db):
            replies_store.backdate_latest_reply(db, item_id, when)
    return "recorded"


def apply_pending_platform_replies(db: sqlite_utils.Database, source: str | None = None) -> int:
    """Record owner replies seen before their review was queued; returns how many were recorded.

    Runs when a crawler closes (and may run after the queue refresh); an entry stays until its review
    is queued, and goes once the review turns out to need no reply.
    """
    recorded = 0
    for row in replies_store.source_state_with_prefix(db, PENDING_KEY, source):
        try:
            payload = json.loads(row["value"])
        except ValueError:
            payload = {}
        external_id = row["key"][len(PENDING_KEY) :]
        outcome = record_platform_reply(
            db, row["source"], external_id, payload.get("text"), payload.get("reply_id"), payload.get("replied_at")
        ) if isinstance(payload, dict) else "ignored"  # fmt: skip
        recorded += outcome == "recorded"
        if outcome != "pending":
            with write_transaction(db):
                replies_store.delete_source_state(db, row["source"], row["key"])
    return recorded
