"""Trustpilot owner mode: the OAuth token for the private API, and replies to the business's reviews.

Token (Trustpilot's documented client-credentials grant): ``POST {base_url}/v1/oauth/
oauth-business-users-for-applications/accesstoken`` with ``Authorization: Basic base64(API key:API secret)``
and the form ``grant_type=client_credentials``; the answer's ``access_token`` lives ``expires_in`` seconds
(about 100 hours). Trustpilot answers 429 to clients that ask for tokens too often, so one token is kept per
process and asked for again only when it expires or is refused (401). Such a token cannot be refreshed:
a new one is requested with the same call.

Reply: ``POST {base_url}/v1/private/reviews/{reviewId}/reply`` with ``{"authorBusinessUserId", "message"}``
(the business user named by ``business_user_id`` signs it); a review has one company reply, and posting again
replaces it, which is how an edit is made. ``DELETE …/reply`` removes it. Before posting, the review is read
(``GET /v1/private/reviews/{reviewId}``): a company reply with the same text is an earlier try's, and is not
posted again.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any
from urllib.parse import quote

from monitor.config import SourceConfig
from monitor.queue.channels import ChannelError, PostedReply, ReplyRejected, register
from spiders.api_base import utc_iso
from spiders.http_reply import HttpAnswer, HttpClient, Uncertain

API = "https://api.trustpilot.com"
TOKEN_PATH = "/v1/oauth/oauth-business-users-for-applications/accesstoken"
MAX_REPLY = 4000  # Trustpilot publishes no limit; longer answers are refused here, before sending
EARLY = 300  # seconds before a token's expiry at which a new one is asked for

# (base_url, API key, API secret) -> (access token, expires at in monotonic seconds); in memory only
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}
_LOCK = threading.Lock()


def base_url(source: SourceConfig) -> str:
    return str(source.options.get("base_url") or API).rstrip("/")


def basic_auth(api_key: str, api_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")


def token_request(source: SourceConfig, api_key: str, api_secret: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """URL, headers and form of the client-credentials token request (the spider sends it through Scrapy)."""
    headers = {"Authorization": basic_auth(api_key, api_secret)}
    return base_url(source) + TOKEN_PATH, headers, {"grant_type": "client_credentials"}


def read_token(data: Any) -> tuple[str, float] | None:
    """``(access_token, lifetime in seconds)`` from the token endpoint's answer; None when it has none."""
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
        return None
    try:
        lifetime = float(data.get("expires_in") or 3600)  # Trustpilot sends it as a string
    except (TypeError, ValueError):
        lifetime = 3600.0
    return data["access_token"], lifetime


class TrustpilotAuth:
    """The private API's bearer token for one source, shared by every reply in this process."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.client = HttpClient(source, "Trustpilot")
        self.api_key = self.client.secret("api_key_env")
        self.api_secret = self.client.secret("api_secret_env")
        self.key = (base_url(source), self.api_key, self.api_secret)

    def token(self, fresh: bool = False) -> str:
        with _LOCK:
            cached = _TOKENS.get(self.key)
            if fresh:
                _TOKENS.pop(self.key, None)
        if cached and not fresh and cached[1] > time.monotonic():
            self.client.secrets.append(cached[0])
            return cached[0]
        url, headers, form = token_request(self.source, self.api_key, self.api_secret)
        answer = self.client.call("POST", url, headers=headers, form=form, safe=True)
        if answer.status in (400, 401, 403):
            names = f"{self.source.options['api_key_env']} / {self.source.options['api_secret_env']}"
            raise self.client.error(f"the token request was refused (HTTP {answer.status}): {answer.detail()}; "
                                    f"check {names}")  # fmt: skip
        token = read_token(answer.json()) if answer.status < 300 else None
        if token is None:
            raise self.client.error(f"no access token from {TOKEN_PATH} (HTTP {answer.status})")
        self.client.secrets.append(token[0])
        with _LOCK:
            _TOKENS[self.key] = (token[0], time.monotonic() + max(0.0, token[1] - EARLY))
        return token[0]

    def call(self, method: str, path: str, **kwargs: Any) -> HttpAnswer:
        """A private-API call; a 401 gets a new token and one more try."""
        url = base_url(self.source) + path
        answer = self.client.call(method, url, headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        if answer.status == 401:
            answer = self.client.call(method, url, headers={"Authorization": f"Bearer {self.token(fresh=True)}"},
                                      **kwargs)  # fmt: skip
        return answer


@register("trustpilot")
class TrustpilotChannel:
    """Company replies to Trustpilot reviews (owner mode: ``owner = true`` and OAuth credentials)."""

    name = "trustpilot"
    platform = "Trustpilot"
    max_length = MAX_REPLY
    can_edit = True
    can_delete = True

    def length(self, text: str) -> int:
        return len(text)

    def available(self, source: SourceConfig) -> bool:
        """Only owner-mode sources can reply from the tool; public-mode ones reply on Trustpilot."""
        return bool(source.options.get("owner"))

    def _auth(self, source: SourceConfig) -> TrustpilotAuth:
        if not source.options.get("owner"):
            raise ChannelError(
                f"{source.key}.owner: source {source.name!r} reads the public API; set owner = true (with "
                "api_secret_env and business_user_id) to reply from here, or reply on Trustpilot"
            )
        return TrustpilotAuth(source)

    def _fail(self, auth: TrustpilotAuth, answer: HttpAnswer, what: str) -> ChannelError:
        if answer.status in (401, 403):
            return auth.client.error(
                f"HTTP {answer.status} {what}: {answer.detail()} (is the business user in business_user_id "
                "allowed to reply, and the application connected to this business unit?)"
            )
        if answer.status in (400, 422):
            return auth.client.error(f"Trustpilot refused {what}: {answer.detail()}", ReplyRejected)
        return auth.client.error(f"HTTP {answer.status} {what}: {answer.detail()}")

    def current(self, auth: TrustpilotAuth, review_id: str) -> dict[str, Any] | None:
        """The review's company reply now (``{text, createdAt, updatedAt}``), or None."""
        answer = auth.call("GET", f"/v1/private/reviews/{quote(review_id, safe='')}")
        if answer.status >= 300:
            raise self._fail(auth, answer, "reading the review back")
        reply = (answer.json() or {}).get("companyReply")
        return reply if isinstance(reply, dict) and reply.get("text") else None

    def _posted(self, review_id: str, reply: dict[str, Any] | None) -> PostedReply:
        reply = reply or {}
        when = utc_iso(reply.get("updatedAt")) or utc_iso(reply.get("createdAt"))
        # One reply per review: the review id is the reply's id.
        return PostedReply(external_id=review_id, posted_at=when)

    def post(self, source: SourceConfig, mention: dict[str, Any], text: str, key: str) -> PostedReply:
        auth = self._auth(source)
        self._author(auth)  # before anything is read or sent
        review_id = str(mention["external_id"])
        existing = self.current(auth, review_id)
        if existing and existing["text"].strip() == text.strip():
            return self._posted(review_id, existing)
        return self._send(auth, review_id, text)

    def _author(self, auth: TrustpilotAuth) -> str:
        user = str(auth.source.options.get("business_user_id") or "")
        if not user:
            raise auth.client.error(f"{auth.source.key}.business_user_id is empty; replies need the business "
                                    "user who signs them (Trustpilot Business, your user profile)")  # fmt: skip
        return user

    def _send(self, auth: TrustpilotAuth, review_id: str, text: str) -> PostedReply:
        user = self._author(auth)
        path = f"/v1/private/reviews/{quote(review_id, safe='')}/reply"
        body = {"authorBusinessUserId": user, "message": text}
        try:
            answer = auth.call("POST", path, json_body=body)
        except Uncertain:
            existing = self.current(auth, review_id)
            if existing and existing["text"].strip() == text.strip():
                return self._posted(review_id, existing)
            answer = auth.call("POST", path, json_body=body)
        if answer.status >= 300:
            raise self._fail(auth, answer, "the reply")
        data = answer.json() or {}
        reply = data.get("reply") if isinstance(data.get("reply"), dict) else data
        return self._posted(review_id, reply if isinstance(reply, dict) else None)

    def edit(self, source: SourceConfig, mention: dict[str, Any], reply_id: str, text: str) -> PostedReply:
        return self._send(self._auth(source), str(mention["external_id"]), text)

    def delete(self, source: SourceConfig, mention: dict[str, Any], reply_id: str) -> None:
        auth = self._auth(source)
        answer = auth.call("DELETE", f"/v1/private/reviews/{quote(str(mention['external_id']), safe='')}/reply")
        if answer.status >= 300 and answer.status != 404:
            raise self._fail(auth, answer, "deleting the reply")
