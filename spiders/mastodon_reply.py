"""Replies to Mastodon statuses: ``POST {instance}/api/v1/statuses`` with ``in_reply_to_id``.

The reply starts with the author's ``@handle`` (Mastodon threads a reply and notifies its author through
that mention, as its own clients do), keeps the status's visibility (a reply to a followers-only post stays
followers-only) and is sent with an ``Idempotency-Key`` header, so a retry of the same queue item returns
the status the instance already made instead of posting a second one. Edits go through ``PUT
/api/v1/statuses/{id}``, deletes through ``DELETE /api/v1/statuses/{id}``.

Length is counted as Mastodon counts it: 500 characters (graphemes), every URL as 23, and a remote mention
``@user@domain`` as ``@user`` only. The token (``access_token_env``) needs the ``write:statuses`` scope.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import regex

from monitor.config import SourceConfig
from monitor.queue.channels import PostedReply, ReplyRejected, register
from spiders.api_base import utc_iso
from spiders.http_reply import HttpAnswer, HttpClient

MAX_CHARS = 500  # Mastodon's default; instances may allow more, none allow less
URL_CHARS = 23  # every link counts as this many, however long
VISIBILITIES = ("public", "unlisted", "private", "direct")
# Mastodon's own patterns, simplified: a link starts a word; a mention is @user or @user@domain.
_URL = regex.compile(r"(?<![\w/])https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’]", regex.IGNORECASE)
_MENTION = regex.compile(r"(?<![\w/@])@(\w+(?:[.\-]\w+)*)(?:@[\w\-]+(?:\.[\w\-]+)+)?", regex.UNICODE)


def mastodon_length(text: str) -> int:
    """Characters as Mastodon counts them (graphemes; a URL is 23; ``@user@domain`` counts as ``@user``)."""
    counted = _URL.sub("x" * URL_CHARS, text)
    counted = _MENTION.sub(lambda m: "@" + m.group(1), counted)
    return len(regex.findall(r"\X", counted))


def author_handle(mention: dict[str, Any]) -> str:
    """The ``acct`` of the status's author (``user`` on this instance, ``user@domain`` elsewhere)."""
    raw = mention.get("raw") or {}
    account = raw.get("account") if isinstance(raw.get("account"), dict) else {}
    handle = account.get("acct") or account.get("username") or mention.get("author") or ""
    return str(handle).lstrip("@")


def with_mention(text: str, handle: str) -> str:
    """The reply as sent: the author's @handle first, unless the person already wrote it there."""
    if not handle:
        return text
    mention = "@" + handle
    first = text.lstrip().split(maxsplit=1)[:1]
    if first and first[0].lower() in (mention.lower(), "@" + handle.split("@")[0].lower()):
        return text.lstrip()
    return f"{mention} {text.lstrip()}"


@register("mastodon")
class MastodonChannel:
    name = "mastodon"
    platform = "Mastodon"
    max_length = MAX_CHARS
    can_edit = True
    can_delete = True

    def length(self, text: str) -> int:
        return mastodon_length(text)

    def _client(self, source: SourceConfig) -> tuple[HttpClient, dict[str, str], str]:
        client = HttpClient(source, "Mastodon")
        token = client.secret("access_token_env")
        return client, {"Authorization": f"Bearer {token}"}, source.options["base_url"].rstrip("/")

    def _text(self, mention: dict[str, Any], text: str) -> str:
        full = with_mention(text, author_handle(mention))
        used = mastodon_length(full)
        if used > MAX_CHARS:
            raise ReplyRejected(
                f"Mastodon replies are limited to {MAX_CHARS} characters with the author's @handle "
                f"({author_handle(mention)!r}) in front; this one has {used}"
            )
        return full

    def _check(self, client: HttpClient, answer: HttpAnswer, source: SourceConfig, what: str) -> dict[str, Any]:
        if answer.status in (401, 403):
            env = source.options["access_token_env"]
            raise client.error(
                f"HTTP {answer.status} {what}: {answer.detail()} (the token in {env} needs the write:statuses scope)"
            )
        if answer.status == 404:
            raise client.error(f"{what}: the status is gone or this account cannot see it (HTTP 404)")
        if answer.status == 422:
            raise client.error(f"the instance refused the reply: {answer.detail()}", ReplyRejected)
        if answer.status >= 400:
            raise client.error(f"HTTP {answer.status} {what}: {answer.detail()}")
        data = answer.json()
        if not isinstance(data, dict) or not data.get("id"):
            raise client.error(f"unexpected answer {what}: no status id")
        return data

    def _posted(self, data: dict[str, Any]) -> PostedReply:
        when = utc_iso(data.get("edited_at")) or utc_iso(data.get("created_at"))
        return PostedReply(external_id=str(data["id"]), posted_at=when, url=str(data.get("url") or ""))

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        full = self._text(mention, text)
        client, headers, base = self._client(source)
        raw = mention.get("raw") or {}
        visibility = raw.get("visibility") if raw.get("visibility") in VISIBILITIES else "public"
        body: dict[str, Any] = {"status": full, "in_reply_to_id": str(mention["external_id"]),
                                "visibility": visibility}  # fmt: skip
        if mention.get("lang"):
            body["language"] = mention["lang"]
        # The key makes the POST safe to repeat: the instance answers a repeat with the status it made. The
        # status id goes in too, so two installs posting from one account can never share a key.
        idempotency = f"{key}:{mention['external_id']}"
        answer = client.call("POST", f"{base}/api/v1/statuses", headers={**headers, "Idempotency-Key": idempotency},
                             json_body=body, safe=True)  # fmt: skip
        return self._posted(self._check(client, answer, source, "posting the reply"))

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        full = self._text(mention, text)
        client, headers, base = self._client(source)
        answer = client.call("PUT", f"{base}/api/v1/statuses/{quote(reply_id, safe='')}", headers=headers,
                             json_body={"status": full}, safe=True)  # fmt: skip
        return self._posted(self._check(client, answer, source, "editing the reply"))

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        client, headers, base = self._client(source)
        answer = client.call("DELETE", f"{base}/api/v1/statuses/{quote(reply_id, safe='')}", headers=headers)
        if answer.status == 404:
            return  # already gone
        if answer.status >= 300:
            self._check(client, answer, source, "deleting the reply")
