"""The Reddit reply channel: a comment under the post or comment, posted, edited or deleted through PRAW.

The client code (account from the environment, error messages) is ``spiders.reddit``; this is the thin part
the reply queue sees. ``post_reply`` is looked up on ``spiders.reddit`` at call time, so tests that replace
it there still apply.
"""

from __future__ import annotations

from typing import Any

import prawcore
from praw.exceptions import PRAWException

from monitor.config import ConfigError, SourceConfig
from monitor.queue.channels import ChannelError, PostedReply, register

# Reddit's limit on a comment body.
MAX_COMMENT_CHARS = 10_000


class RedditChannel:
    name = "reddit"
    platform = "Reddit"
    max_length = MAX_COMMENT_CHARS
    can_edit = True
    can_delete = True

    def length(self, text: str) -> int:
        return len(text)

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        # Reddit takes no idempotency key; the queue's claim (compare-and-set) is what stops a second post.
        from spiders import reddit

        try:
            fullname = reddit.post_reply(source, mention["external_id"], text)
        except reddit.RedditReplyError as exc:
            raise ChannelError(str(exc)) from None
        return PostedReply(external_id=fullname)

    def _comment(self, source: SourceConfig, reply_id: str) -> Any:
        from spiders import reddit

        kind, _, ident = reply_id.partition("_")
        if kind != "t1" or not ident:
            raise ChannelError(f"{source.name}: {reply_id!r} is not a Reddit comment id (t1_...)")
        return reddit.make_reddit(source, **reddit._reply_auth(source)).comment(ident)

    def _call(self, source: SourceConfig, what: str, reply_id: str, action: Any) -> Any:
        from spiders import reddit

        try:
            return action()
        except ConfigError:
            raise
        except (prawcore.PrawcoreException, PRAWException) as exc:
            raise ChannelError(f"{source.name}: could not {what} {reply_id}: {reddit.describe_error(exc)}") from None

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        comment = self._comment(source, reply_id)
        self._call(source, "edit", reply_id, lambda: comment.edit(text))
        return PostedReply(external_id=reply_id)

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        comment = self._comment(source, reply_id)
        self._call(source, "delete", reply_id, comment.delete)


@register("reddit")
def reddit_channel() -> RedditChannel:
    return RedditChannel()
