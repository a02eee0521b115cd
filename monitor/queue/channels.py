"""Reply channels: how a reply a person wrote leaves the tool, one per platform that allows it.

A channel checks a reply against the platform's rules before anything is sent (length, empty text, what the
platform refuses), posts it, and, where the platform allows, edits or deletes it. ``monitor.queue.replying``
does the rest the same way for every channel: it claims the queue item first (compare-and-set), so a double
click, a colleague or a retry cannot post twice; it calls the channel; it stores the platform's answer (reply
id, time); and it releases the claim if the platform refused.

Channels register by source type with ``@register("mastodon")``; spiders/ holds the platform clients (a
channel is the thin part that the queue sees). Secrets come from the source's ``*_env`` keys only.

How to add a channel (the interface the queue relies on; keep it stable):

* In the platform's module (``spiders/<type>.py``) define a class with the ``ReplyChannel`` attributes and
  methods below, decorate its factory with ``@register("<source type>")``, and add the module's dotted name to
  ``BUILTIN_CHANNEL_MODULES`` (imported lazily by ``channel_for``). Optional attribute ``platform``: the name
  the inbox shows ("Post to <platform>"); defaults to ``name`` (see ``platform_name``).
* ``post(source, mention, text, key)`` returns a ``PostedReply``; ``external_id`` must be the id the crawler
  will see for the same reply later (``replying.record_platform_reply`` matches on it, so our own reply seen
  by the next crawl is not recorded twice). Send ``key`` where the API takes an idempotency key.
* Raise ``ReplyRejected`` for a rule broken before anything was sent, ``ChannelError`` (message naming the
  source, never a secret) when the platform refused or could not be reached; the queue then gives the item
  back. ``ConfigError`` (missing credentials) is treated the same way.
* ``edit`` / ``delete`` are only called when ``can_edit`` / ``can_delete`` is true; raise ``ChannelError``.
* Entry points (``monitor.queue.replying``): ``post_reply_now(db, config, item_id, text, actor)``,
  ``edit_reply(db, config, reply_row_id, text, actor)``, ``delete_reply(db, config, reply_row_id, actor)``,
  ``record_platform_reply(db, source, external_id, reply_text, reply_id, replied_at)`` (crawlers, for an owner
  reply seen on a fetched review) and ``apply_pending_platform_replies(db)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.config import SourceConfig


class ChannelError(Exception):
    """The platform refused the reply or could not be reached; the message names the source and the reason."""


class ReplyRejected(ChannelError):
    """The reply breaks a platform rule (too long, empty, not allowed here); nothing was sent."""


@dataclass
class PostedReply:
    external_id: str  # the platform's id for the reply (a comment id, a review id when replies are 1:1, …)
    posted_at: str | None = None  # UTC ISO 8601, as the platform reported it
    url: str = ""


class ReplyChannel(Protocol):
    name: str  # what the queue records as the reply's channel, e.g. "mastodon"
    max_length: int  # characters (as the platform counts them; ``length`` says how)
    can_edit: bool
    can_delete: bool

    def length(self, text: str) -> int: ...

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        """Post ``text`` as the reply to ``mention`` (a ``mentions`` row with ``raw`` decoded). ``key`` is
        stable for this queue item and reply attempt: channels whose API takes an idempotency key send it."""
        ...

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply: ...

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None: ...


_CHANNELS: dict[str, Callable[[], ReplyChannel]] = {}


def register(source_type: str) -> Callable[[Callable[[], ReplyChannel]], Callable[[], ReplyChannel]]:
    def add(factory: Callable[[], ReplyChannel]) -> Callable[[], ReplyChannel]:
        _CHANNELS[source_type] = factory
        return factory

    return add


def channel_for(source_type: str | None, source: SourceConfig | None = None) -> ReplyChannel | None:
    """The reply channel of a source type, or None where replies are made on the platform by hand. Given the
    source, a channel that cannot post for it (Trustpilot's public mode has no reply API) is None too."""
    _load_builtin()
    factory = _CHANNELS.get(source_type or "")
    channel = factory() if factory else None
    available = getattr(channel, "available", None)
    if channel is not None and source is not None and available is not None and not available(source):
        return None
    return channel


def platform_name(channel: ReplyChannel) -> str:
    """What the inbox calls the platform ("Post to Reddit"): the channel's ``platform``, else its ``name``."""
    return str(getattr(channel, "platform", "") or channel.name)


def check_reply(channel: ReplyChannel, text: str) -> None:
    """Raise ReplyRejected when the platform would refuse ``text``; called before anything is claimed or sent."""
    if not text.strip():
        raise ReplyRejected("the reply text is empty")
    used = channel.length(text)
    if used > channel.max_length:
        limit = channel.max_length
        raise ReplyRejected(f"{channel.name} replies are limited to {limit} characters; this one has {used}")


def _load_builtin() -> None:
    """Import the modules that register channels (lazily: they pull in platform clients)."""
    import importlib
    import logging

    for module in BUILTIN_CHANNEL_MODULES:
        if module in _FAILED:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:  # one platform's missing client library costs only that platform's channel
            _FAILED.add(module)
            logging.getLogger(__name__).warning("reply channel module %s not loaded: %s", module, exc)


_FAILED: set[str] = set()


# Modules whose import registers a channel; each platform's channel lives beside its client in spiders/.
BUILTIN_CHANNEL_MODULES: list[str] = ["spiders.reddit_reply", "spiders.google_business", "spiders.google_play",
                                      "spiders.app_store_connect", "spiders.trustpilot_reply", "spiders.mastodon_reply",
                                      "spiders.bluesky_reply"]  # fmt: skip
