"""Replies to Bluesky posts: ``com.atproto.repo.createRecord`` with an ``app.bsky.feed.post`` record.

The record's ``reply`` names the post answered (``parent``: its ``uri`` and ``cid``) and the thread's first
post (``root``: the parent's own ``reply.root`` when the parent is itself a reply, else the parent), which is
how Bluesky threads. Links get ``app.bsky.richtext.facet#link`` facets (byte offsets in UTF-8), or they would
show as plain text. A post has at most 300 graphemes.

Login is ``com.atproto.server.createSession`` on the account's PDS (``auth_url``) with the handle and an
app password from the environment; the session is kept in this process and renewed with
``com.atproto.server.refreshSession`` when the PDS answers ``ExpiredToken`` (a new login when that fails).
createRecord has no idempotency key, so before posting, and again after a failure that may have happened
after the post was stored, the account's latest posts are read back (``com.atproto.repo.listRecords``): a
reply to the same post with the same text is the one an earlier try made, and is returned instead of a second
one. Posts cannot be edited; ``com.atproto.repo.deleteRecord`` deletes one.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import regex

from monitor.config import SourceConfig
from monitor.queue.channels import ChannelError, PostedReply, ReplyRejected, register
from spiders.api_base import utc_iso
from spiders.http_reply import HttpAnswer, HttpClient, Uncertain

MAX_GRAPHEMES = 300
POST = "app.bsky.feed.post"
READ_BACK = 50  # latest own posts searched for an earlier try's reply
_URL = regex.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’]", regex.IGNORECASE)
_EXPIRED = {"ExpiredToken", "InvalidToken"}

# (PDS, handle) -> session (accessJwt, refreshJwt, did, handle): one login serves many replies.
_SESSIONS: dict[tuple[str, str], dict[str, str]] = {}
_LOCK = threading.Lock()


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters), which is what Bluesky limits."""
    return len(regex.findall(r"\X", text))


def link_facets(text: str) -> list[dict[str, Any]]:
    """``app.bsky.richtext.facet`` link features for the URLs in ``text`` (UTF-8 byte offsets)."""
    facets = []
    for match in _URL.finditer(text):
        start = len(text[: match.start()].encode("utf-8"))
        end = start + len(match.group(0).encode("utf-8"))
        facets.append({"index": {"byteStart": start, "byteEnd": end},
                       "features": [{"$type": "app.bsky.richtext.facet#link", "uri": match.group(0)}]})  # fmt: skip
    return facets


def strong_ref(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict) and isinstance(value.get("uri"), str) and isinstance(value.get("cid"), str):
        return {"uri": value["uri"], "cid": value["cid"]}
    return None


def reply_refs(mention: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{"root", "parent"}`` strong refs for a reply to this stored post (its ``postView`` in ``raw``)."""
    raw = mention.get("raw") or {}
    parent = strong_ref(raw)
    if parent is None:
        raise ChannelError(f"Bluesky: the stored post {mention.get('external_id')!r} has no uri and cid to reply to")
    record = raw.get("record") if isinstance(raw.get("record"), dict) else {}
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    root = strong_ref(reply.get("root")) or parent
    return {"root": root, "parent": parent}


def web_url(handle: str, uri: str) -> str:
    return f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}" if handle else ""


class _Session:
    """Authenticated XRPC calls to one source's PDS."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.client = HttpClient(source, "Bluesky")
        self.pds = source.options["auth_url"].rstrip("/")
        self.handle = self.client.secret("handle_env")
        self.password = self.client.secret("app_password_env")
        self.key = (self.pds, self.handle)

    def _remember(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("accessJwt", "did")):
            raise self.client.error("unexpected answer to the login: no accessJwt / did")
        session = {"accessJwt": data["accessJwt"], "refreshJwt": str(data.get("refreshJwt") or ""),
                   "did": data["did"], "handle": str(data.get("handle") or self.handle)}  # fmt: skip
        self.client.secrets.extend([session["accessJwt"], session["refreshJwt"]])
        with _LOCK:
            _SESSIONS[self.key] = session
        return session

    def login(self) -> dict[str, str]:
        login = {"identifier": self.handle, "password": self.password}
        answer = self.client.call("POST", f"{self.pds}/xrpc/com.atproto.server.createSession", json_body=login,
                                  safe=True)  # fmt: skip
        if answer.status in (400, 401):
            names = f"{self.source.options['handle_env']} / {self.source.options['app_password_env']}"
            raise self.client.error(f"login refused (HTTP {answer.status}): {answer.detail()}; check {names}")
        if answer.status >= 300:
            raise self.client.error(f"login failed (HTTP {answer.status}): {answer.detail()}")
        return self._remember(answer.json())

    def session(self) -> dict[str, str]:
        with _LOCK:
            session = _SESSIONS.get(self.key)
        if session:
            self.client.secrets.extend([session["accessJwt"], session["refreshJwt"]])
            return session
        return self.login()

    def refresh(self, session: dict[str, str]) -> dict[str, str]:
        """A new access token from the refresh token; a fresh login when that is refused too."""
        if session.get("refreshJwt"):
            headers = {"Authorization": f"Bearer {session['refreshJwt']}"}
            answer = self.client.call("POST", f"{self.pds}/xrpc/com.atproto.server.refreshSession", headers=headers,
                                      safe=True)  # fmt: skip
            if answer.status < 300:
                return self._remember(answer.json())
        with _LOCK:
            _SESSIONS.pop(self.key, None)
        return self.login()

    def call(self, method: str, nsid: str, *, params: dict[str, Any] | None = None, body: Any = None) -> HttpAnswer:
        """An XRPC call with the session's token; an expired token is refreshed and the call made again."""
        session = self.session()
        url = f"{self.pds}/xrpc/{nsid}" + (f"?{urlencode(params)}" if params else "")
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {session['accessJwt']}"}
            answer = self.client.call(method, url, headers=headers, json_body=body)
            error = (answer.json() or {}).get("error") if answer.status in (400, 401) else None
            if attempt == 1 and (error in _EXPIRED or (answer.status == 401 and error is None)):
                session = self.refresh(session)
                continue
            return answer
        return answer  # pragma: no cover - the loop always returns

    def fail(self, answer: HttpAnswer, what: str) -> ChannelError:
        if answer.status in (401, 403):
            names = f"{self.source.options['handle_env']} / {self.source.options['app_password_env']}"
            return self.client.error(f"HTTP {answer.status} {what}: {answer.detail()} (check {names})")
        if answer.status == 400:
            return self.client.error(f"Bluesky refused {what}: {answer.detail()}", ReplyRejected)
        return self.client.error(f"HTTP {answer.status} {what}: {answer.detail()}")


@register("bluesky")
class BlueskyChannel:
    name = "bluesky"
    platform = "Bluesky"
    max_length = MAX_GRAPHEMES
    can_edit = False  # Bluesky has no post edits
    can_delete = True

    def length(self, text: str) -> int:
        return graphemes(text)

    def find_earlier(self, session: _Session, parent_uri: str, text: str) -> PostedReply | None:
        """Our own recent reply to ``parent_uri`` with this text, if an earlier try posted it."""
        did = session.session()["did"]
        answer = session.call("GET", "com.atproto.repo.listRecords",
                              params={"repo": did, "collection": POST, "limit": READ_BACK})  # fmt: skip
        if answer.status >= 300:
            raise session.fail(answer, "reading back our latest posts")
        records = (answer.json() or {}).get("records")
        for entry in records if isinstance(records, list) else []:
            value = entry.get("value") if isinstance(entry, dict) else None
            if not isinstance(value, dict):
                continue
            parent = ((value.get("reply") or {}).get("parent") or {}).get("uri")
            if parent == parent_uri and (value.get("text") or "").strip() == text.strip():
                return self._posted(session, str(entry.get("uri") or ""), value.get("createdAt"))
        return None

    def _posted(self, session: _Session, uri: str, created: Any) -> PostedReply:
        handle = session.session().get("handle", "")
        return PostedReply(external_id=uri, posted_at=utc_iso(created), url=web_url(handle, uri))

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        used = graphemes(text)
        if used > MAX_GRAPHEMES:
            raise ReplyRejected(f"Bluesky posts are limited to {MAX_GRAPHEMES} characters; this one has {used}")
        refs = reply_refs(mention)
        session = _Session(source)
        earlier = self.find_earlier(session, refs["parent"]["uri"], text)
        if earlier is not None:
            return earlier
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": created, "reply": refs}
        facets = link_facets(text)
        if facets:
            record["facets"] = facets
        if mention.get("lang"):
            record["langs"] = [mention["lang"]]
        body = {"repo": session.session()["did"], "collection": POST, "record": record}
        try:
            answer = session.call("POST", "com.atproto.repo.createRecord", body=body)
        except Uncertain:
            earlier = self.find_earlier(session, refs["parent"]["uri"], text)
            if earlier is not None:
                return earlier
            answer = session.call("POST", "com.atproto.repo.createRecord", body=body)
        if answer.status >= 300:
            raise session.fail(answer, "the reply")
        data = answer.json() or {}
        if not isinstance(data.get("uri"), str):
            raise session.client.error("unexpected answer to createRecord: no uri")
        return self._posted(session, data["uri"], created)

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        raise ReplyRejected("Bluesky posts cannot be edited; delete the reply and post a new one")

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        session = _Session(source)
        did = session.session()["did"]
        prefix = f"at://{did}/{POST}/"
        if not reply_id.startswith(prefix):
            raise session.client.error(f"{reply_id!r} is not a post of this account; delete it on Bluesky")
        answer = session.call("POST", "com.atproto.repo.deleteRecord",
                              body={"repo": did, "collection": POST, "rkey": reply_id[len(prefix):]})  # fmt: skip
        if answer.status >= 300:
            raise session.fail(answer, "deleting the reply")
