"""What the Google owner APIs share (Business Profile, Play Developer): credentials, tokens, and a reply client.

* Credentials come from the environment only: an OAuth 2 client and refresh token for Business Profile
  (``google.oauth2.credentials.Credentials``), a service account's JSON key file for Play
  (``google.oauth2.service_account.Credentials``). The token endpoint is the source's ``token_url``, so
  tests point it at a loopback server.
* :class:`GoogleOwnerSpider` gets an access token before the first request (in a thread: google-auth is
  blocking), sends it as ``Authorization: Bearer``, and on a 401 refreshes it once and repeats the request.
* :class:`GoogleApi` is the reply channels' client: 401 → refresh once and repeat; 429 → wait (Retry-After,
  bounded) and repeat; 5xx or a lost connection → back off and repeat. Repeating is safe because every
  Google owner reply call sets *the* reply of a review (PUT, or Play's reply that replaces the previous one)
  or deletes it: a repeat cannot create a second reply.
* No secret (client secret, refresh token, private key, access token) is logged or put in a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import requests
import scrapy
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.auth.transport.requests import Request as AuthRequest
from scrapy.http import Response

from monitor.config import ConfigError, SourceConfig, secret_from_env
from monitor.queue.channels import ChannelError
from spiders.api_base import REDACTED, ApiSpider, error_detail, meta_of

BUSINESS_SCOPE = "https://www.googleapis.com/auth/business.manage"
PLAY_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
TOKEN_URL = "https://oauth2.googleapis.com/token"
ATTEMPTS = 4  # tries of one reply call (429s and 5xx together); a 401 refresh is extra
BACKOFF = 2.0  # seconds before the first retry after a 5xx; doubles
MAX_WAIT = 60.0  # longest Retry-After waited out inside one click
TIMEOUT = 30.0

# Tests replace this to skip the waits.
sleep: Callable[[float], None] = time.sleep


class TokenError(Exception):
    """No access token: Google refused the credentials or could not be reached (message names the source)."""


def oauth_credentials(source: SourceConfig, scope: str = BUSINESS_SCOPE) -> tuple[Any, list[str]]:
    """User OAuth credentials from the env vars the source names, and the secrets to scrub from messages."""
    from google.oauth2.credentials import Credentials

    client_id = secret_from_env(source, "client_id_env")
    client_secret = secret_from_env(source, "client_secret_env")
    refresh_token = secret_from_env(source, "refresh_token_env")
    credentials = Credentials(
        token=None, refresh_token=refresh_token, client_id=client_id, client_secret=client_secret,
        token_uri=source.options.get("token_url") or TOKEN_URL, scopes=[scope],
    )  # fmt: skip
    return credentials, [client_secret, refresh_token]


def service_account_credentials(source: SourceConfig, scope: str = PLAY_SCOPE) -> tuple[Any, list[str]]:
    """Service-account credentials from the JSON key file whose path the source's ``key_file_env`` names."""
    from google.oauth2 import service_account

    path = secret_from_env(source, "key_file_env")
    key = f"{source.key}.key_file_env"
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(key, f"cannot read the service-account key file {path!r}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(key, f"the service-account key file {path!r} is not JSON") from None
    if not isinstance(info, dict) or not isinstance(info.get("private_key"), str):
        raise ConfigError(key, f"{path!r} is not a service-account JSON key (no private_key)")
    info["token_uri"] = source.options.get("token_url") or info.get("token_uri") or TOKEN_URL
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=[scope])
    except (ValueError, KeyError, GoogleAuthError) as exc:
        # The key's text never goes into the message; only what kind of problem it is.
        raise ConfigError(key, f"{path!r} is not a usable service-account key ({type(exc).__name__})") from None
    return credentials, [info["private_key"], *([info["private_key_id"]] if info.get("private_key_id") else [])]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return " ".join(text.split())


def fetch_token(credentials: Any, source: SourceConfig, secrets: list[str]) -> str:
    """A fresh access token (blocking); TokenError naming the source when Google refuses or is unreachable."""
    try:
        credentials.refresh(AuthRequest())
    except RefreshError as exc:
        # google-auth puts the token endpoint's answer in the message ("invalid_grant: Bad Request", …).
        reason = scrub(str(exc.args[0] if exc.args else exc), secrets)[:200]
        raise TokenError(f"source {source.name!r}: Google refused the credentials ({reason})") from None
    except TransportError as exc:
        reason = scrub(str(exc), secrets)[:200]
        raise TokenError(f"source {source.name!r}: could not reach Google's token endpoint ({reason})") from None
    token = credentials.token
    if not token:
        raise TokenError(f"source {source.name!r}: Google's token endpoint returned no access token")
    secrets.append(token)
    return token


# ------------------------------------------------------------------ replies


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _detail(response: requests.Response) -> str:
    return error_detail(response.content) or (response.reason or "")


class GoogleApi:
    """A reply channel's calls for one source, with the token refreshed once on a 401."""

    def __init__(self, source: SourceConfig, platform: str, credentials: Any, secrets: list[str]) -> None:
        self.source, self.platform, self.credentials, self.secrets = source, platform, credentials, secrets

    def error(self, text: str) -> ChannelError:
        return ChannelError(scrub(f"{self.platform} (source {self.source.name!r}): {text}", self.secrets))

    def _token(self, fresh: bool = False) -> str:
        if fresh or not self.credentials.token:
            try:
                return fetch_token(self.credentials, self.source, self.secrets)
            except TokenError as exc:
                raise ChannelError(str(exc)) from None
        return self.credentials.token

    def call(self, method: str, url: str, body: Any = None) -> Any:
        """Send one reply call; returns the decoded JSON answer (None when empty) or raises ChannelError."""
        token, refreshed, delay = self._token(), False, BACKOFF
        attempt = 0
        while True:
            attempt += 1
            try:
                response = requests.request(
                    method, url, json=body, timeout=TIMEOUT, allow_redirects=False,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )  # fmt: skip
            except requests.RequestException as exc:
                if attempt >= ATTEMPTS:
                    raise self.error(f"could not reach {url}: {type(exc).__name__}") from None
                sleep(delay)
                delay *= 2
                continue
            status = response.status_code
            if status == 401 and not refreshed:
                refreshed, attempt = True, attempt - 1  # an expired token: one refresh, not a retry
                token = self._token(fresh=True)
                continue
            if status == 429 and attempt < ATTEMPTS:
                wait = _retry_after(response.headers.get("Retry-After"))
                wait = delay if wait is None else wait
                if wait > MAX_WAIT:
                    raise self.error(f"rate limited; try again in {wait:.0f} s")
                sleep(wait)
                delay *= 2
                continue
            if status >= 500 and attempt < ATTEMPTS:
                sleep(delay)
                delay *= 2
                continue
            if 200 <= status < 300:
                try:
                    return response.json() if response.content.strip() else None
                except ValueError:
                    return None
            raise self.error(f"HTTP {status} from {url}: {_detail(response)}")


# ------------------------------------------------------------------ spiders


class GoogleOwnerSpider(ApiSpider):
    """An owner-API spider: a Bearer token from google-auth, refreshed once when a request gets a 401."""

    credentials: Any = None
    token: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (review id, reply text, reply id, reply time) of owner replies on fetched reviews, recorded at close.
        self.owner_replies: list[tuple[str, str, str, str | None]] = []

    def saw_owner_reply(self, external_id: str, text: Any, reply_id: str, replied_at: str | None) -> None:
        if isinstance(text, str) and text.strip():
            self.owner_replies.append((external_id, text, reply_id, replied_at))

    def closed(self, reason: str) -> None:
        # After the pipeline stored the reviews (Scrapy closes the pipeline first), before the base class
        # records stream state and closes the store.
        db = self.db
        if db is not None:
            try:
                self.before_close(db, reason)
                from monitor.queue.replying import apply_pending_platform_replies, record_platform_reply

                apply_pending_platform_replies(db, self.source.name)
                for external_id, text, reply_id, replied_at in self.owner_replies:
                    record_platform_reply(db, self.source.name, external_id, text, reply_id, replied_at)
            except Exception as exc:  # noqa: BLE001 - a store problem here must not keep the run open
                self.report(f"could not record owner replies: {type(exc).__name__}: {exc}")
        super().closed(reason)

    def before_close(self, db: Any, reason: str) -> None:
        """Subclasses record their own state here (the store is still open)."""

    def make_credentials(self) -> tuple[Any, list[str]]:
        raise NotImplementedError

    def first_requests(self) -> Iterator[scrapy.Request]:
        raise NotImplementedError

    async def start(self) -> AsyncIterator[scrapy.Request]:
        try:
            self.credentials, secrets = self.make_credentials()
        except ConfigError as exc:
            self.report(str(exc))
            return
        self._secrets.extend(secrets)
        if not await self.refresh():
            return
        for request in self.first_requests():
            yield request

    async def refresh(self) -> bool:
        """Get a new access token without blocking the crawl; False (reported) when there is none."""
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet import threads

        try:
            self.token = await maybe_deferred_to_future(
                threads.deferToThread(fetch_token, self.credentials, self.source, self._secrets)
            )
        except TokenError as exc:
            self.report(str(exc))
            return False
        return True

    def api_request(self, url: str, callback: Any, stream: str, meta: dict[str, Any]) -> scrapy.Request:
        # 401 reaches the callback (not the errback): it is answered by one token refresh.
        return self.request(url, callback, stream=stream, headers=self.auth_headers(),
                            meta={**meta, "handle_httpstatus_list": [401]})  # fmt: skip

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    async def parse(self, response: Response, **kwargs: Any) -> AsyncIterator[dict[str, Any] | scrapy.Request]:
        """A 401 refreshes the token and repeats the request; any other page goes to ``parse_page``."""
        if response.status == 401:
            async for request in self.unauthorized(response):
                yield request
            return
        for item in self.parse_page(response):
            yield item

    def parse_page(self, response: Response) -> Iterator[dict[str, Any] | scrapy.Request]:
        raise NotImplementedError

    async def unauthorized(self, response: Response) -> AsyncIterator[scrapy.Request]:
        """A 401: refresh the token once and repeat the request; a second 401 is reported."""
        meta = meta_of(response)
        stream = meta.get("stream")
        if meta.get("refreshed") or response.request is None:
            detail = error_detail(response.body)
            self.report(f"HTTP 401 from {response.url} after a token refresh" + (f": {detail}" if detail else ""))
            self.page_failed(stream)
            return
        if not await self.refresh():
            self.page_failed(stream)
            return
        request = response.request
        headers = {k.decode(): v[0].decode() for k, v in request.headers.items() if k.lower() != b"authorization"}
        yield request.replace(headers={**headers, **self.auth_headers()}, meta={**request.meta, "refreshed": True},
                              dont_filter=True)  # fmt: skip
