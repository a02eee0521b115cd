"""The small HTTP client the reply channels share (App Store Connect, Trustpilot, Mastodon, Bluesky).

Replies are posted from a person's click, one request at a time, so this is plain ``urllib`` rather than
Scrapy. What every channel needs is here once:

* a 429 is waited out (``Retry-After``, or Mastodon's ``X-RateLimit-Reset``) and the request repeated:
  the platform refused it, so repeating it cannot post twice; a wait longer than ``MAX_WAIT`` is not
  made (the message says when to try again);
* a 5xx or a dropped connection is retried only for a request that is safe to repeat (a GET, a DELETE,
  a POST carrying an idempotency key); otherwise :class:`Uncertain` is raised, because the platform may
  have posted the reply before failing, and the channel reads back before trying again;
* redirects are not followed (a reply API does not redirect; a bearer token must not travel elsewhere);
* every secret the channel used is scrubbed from every message, and no request or header is logged.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from monitor.config import ConfigError, SourceConfig, secret_from_env
from monitor.queue.channels import ChannelError
from spiders.middlewares import parse_rate_limit_reset, parse_retry_after

MAX_WAIT = 60.0  # longest rate-limit wait inside one click; longer: the person tries again later
ATTEMPTS = 3  # tries of one request (429s and safe 5xx retries together)
BACKOFF = 2.0  # seconds before the first 5xx retry; doubles
TIMEOUT = 30.0
REDACTED = "[redacted]"
MAX_DETAIL = 200

# Tests replace this to skip the waits.
sleep: Callable[[float], None] = time.sleep


class Uncertain(ChannelError):
    """The platform failed after receiving a request that is not safe to repeat: the reply may exist."""


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8", "replace")) if self.body.strip() else None
        except ValueError:
            return None

    def detail(self) -> str:
        """The platform's error message, shortened (JSON:API ``errors``, OAuth, Mastodon and XRPC shapes)."""
        data = self.json()
        text: Any = None
        if isinstance(data, dict):
            errors = data.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # App Store Connect
                text = errors[0].get("detail") or errors[0].get("title")
            fault = data.get("fault") if isinstance(data.get("fault"), dict) else {}  # Trustpilot's gateway
            for candidate in (data.get("error_description"), data.get("message"), data.get("error"),
                              fault.get("faultstring")):  # fmt: skip
                text = text or (candidate if isinstance(candidate, str) else None)
        if not isinstance(text, str):
            text = self.body[:MAX_DETAIL].decode("utf-8", "replace") if self.body else ""
        return " ".join(text.split())[:MAX_DETAIL]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx comes back as an HTTPError and is reported


_OPENER = urllib.request.build_opener(_NoRedirect())


@dataclass
class HttpClient:
    """One channel's calls for one source; ``secrets`` are scrubbed from every message it raises."""

    source: SourceConfig
    platform: str
    secrets: list[str] = field(default_factory=list)

    def secret(self, option: str) -> str:
        """A credential from the environment variable named by ``option``; ChannelError naming it when unset."""
        try:
            value = secret_from_env(self.source, option)
        except ConfigError as exc:
            raise ChannelError(str(exc)) from None
        self.secrets.append(value)
        return value

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def error(self, text: str, cls: type[ChannelError] = ChannelError) -> ChannelError:
        return cls(self.scrub(f"{self.platform} (source {self.source.name!r}): {text}"))

    def call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        safe: bool | None = None,
    ) -> HttpAnswer:
        """Send one request; returns the answer whatever its status, except as the module says for 429/5xx.

        ``safe`` says whether the request may be repeated after a 5xx (default: GET and DELETE are).
        """
        safe = method in ("GET", "DELETE") if safe is None else safe
        body: bytes | None = None
        all_headers = {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode("ascii")
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        delay = BACKOFF
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            answer = self._send(method, url, all_headers, body, safe, last)
            if answer is None:  # a safe request lost its connection: try again
                sleep(delay)
                delay *= 2
                continue
            if answer.status == 429:
                wait = rate_limit_seconds(answer.headers)
                if last or wait > MAX_WAIT:
                    when = f"; try again in {int(wait)} s" if wait else ""
                    raise self.error(f"rate limited (HTTP 429) at {_path(url)}{when}")
                sleep(wait if wait else delay)
                delay *= 2
                continue
            if answer.status >= 500:
                where = f"HTTP {answer.status} from {_path(url)}"
                if not safe:
                    raise self.error(f"{where} after the request was sent: {answer.detail()}", Uncertain)
                if last:
                    raise self.error(f"{where} (after {ATTEMPTS} tries): {answer.detail()}")
                sleep(delay)
                delay *= 2
                continue
            return answer
        raise self.error(f"could not reach {_path(url)} after {ATTEMPTS} tries")

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, safe: bool, last: bool
    ) -> HttpAnswer | None:
        request = urllib.request.Request(url, data=body, method=method)
        for name, value in headers.items():
            request.add_unredirected_header(name, value)
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                return HttpAnswer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            try:
                data = exc.read()
            except OSError:
                data = b""
            return HttpAnswer(exc.code, dict(exc.headers.items()) if exc.headers else {}, data)
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets; ValueError: a malformed URL
            reason = getattr(exc, "reason", exc)
            if safe and not last:
                return None
            cls = ChannelError if safe or _before_sending(exc) else Uncertain
            raise self.error(f"could not reach {_path(url)}: {type(exc).__name__}: {reason}", cls) from None


def _before_sending(exc: BaseException) -> bool:
    """A refused connection or a bad URL: nothing reached the platform."""
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, ConnectionRefusedError | ValueError) or isinstance(exc, ValueError)


def rate_limit_seconds(headers: dict[str, str]) -> float:
    """Seconds a 429 asks for: ``Retry-After``, else Mastodon's ``X-RateLimit-Reset`` or atproto's
    ``RateLimit-Reset`` (a time); 0 when none says."""
    lower = {name.lower(): value for name, value in headers.items()}
    wait = parse_retry_after(lower.get("retry-after"))
    if wait is None:
        wait = parse_rate_limit_reset(lower.get("x-ratelimit-reset") or lower.get("ratelimit-reset"))
    return float(wait or 0.0)


def _path(url: str) -> str:
    """The URL without its query (a token never goes in one, but a cursor is noise in a message)."""
    return url.split("?", 1)[0]
