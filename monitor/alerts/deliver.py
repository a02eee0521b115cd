"""The channels: email through the digest's SMTP code, and a webhook POST.

* **Email** — one message per run with every pending alert (plain text and HTML), to
  ``[alerts] recipients`` through the ``[digest]`` SMTP server and login (``smtp_host``, ``sender``,
  ``smtp_security``, ``smtp_user_env`` / ``smtp_password_env``). Failures are the digest's
  :class:`DigestSendError` (one line naming the server and the key; never the password).
* **Webhook** — one POST per alert of a JSON body (``render.webhook_payload``) to the URL held in
  the environment variable named by ``[alerts] webhook_url_env``. The URL is a secret (Slack's and
  Teams' carry their token in the path): errors name the variable and the host, never the URL.
  Redirects are not followed.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import threading
import urllib.error
import urllib.request
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from monitor.alerts.detect import Alert
from monitor.alerts.render import email_bodies, email_subject, inert_json, webhook_payload
from monitor.config import Config, ConfigError
from monitor.digest.send import new_message, send_digest_message, smtp_settings
from monitor.hosts import is_loopback

# One quick second try for a temporary SMTP failure; beyond that the next run tries again.
EMAIL_RETRY_DELAYS = (5.0,)
USER_AGENT = "mention-monitor-alerts/0.1"


class AlertDeliveryError(RuntimeError):
    """A channel did not take an alert; ``str()`` is one line, free of secrets.

    ``unreachable`` is true when the server could not be reached at all (the other alerts of the run
    would fail the same way); false when it answered with an error for this alert.
    """

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# ------------------------------------------------------------------ email


def alert_message(alerts: list[Alert], config: Config, now: datetime | None = None) -> EmailMessage:
    settings = smtp_settings(config.digest, config.alerts.recipients, "alerts.recipients")
    text, html = email_bodies(alerts, config.digest.brand, now)
    message = new_message(email_subject(alerts, config.digest.brand), settings.sender, settings.recipients,
                          "alert", now)  # fmt: skip
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def send_email(alerts: list[Alert], config: Config, *, ssl_context: ssl.SSLContext | None = None) -> list[str]:
    """Email ``alerts`` in one message; returns the recipients the server accepted.

    Raises :class:`ConfigError` (missing password, no recipients) or ``DigestSendError``.
    """
    settings = smtp_settings(config.digest, config.alerts.recipients, "alerts.recipients")
    return send_digest_message(alert_message(alerts, config), settings, ssl_context=ssl_context,
                               retry_delays=EMAIL_RETRY_DELAYS)  # fmt: skip


# ---------------------------------------------------------------- webhook


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None  # a 3xx then surfaces as an HTTPError


def webhook_url(config: Config) -> str:
    """The webhook URL from the environment; :class:`ConfigError` (naming the variable, not the value)."""
    name = config.alerts.webhook_url_env
    url = os.environ.get(name, "").strip() if name else ""
    if not url:
        raise ConfigError("alerts.webhook_url_env", f"environment variable {name or '(none)'} is not set")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "alerts.webhook_url_env", f"environment variable {name} does not hold an http(s) URL (value not shown)"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        # The URL is the secret (a token in its path): it must not cross the network in clear text.
        raise ConfigError("alerts.webhook_url_env", f"{name} holds a plain http:// URL to another host; use https://")
    return url


def _describe(url: str, config: Config) -> str:
    return f"webhook at {urlsplit(url).hostname} (URL from ${config.alerts.webhook_url_env}, alerts.webhook_url_env)"


def _clean(text: str, url: str) -> str:
    """One line, at most 200 characters, with the URL, its path and query, and any longer piece of
    them (tokens) removed, in case the server echoed them."""
    parts = urlsplit(url)
    pieces = [url, parts.path, parts.query, parts.password or ""]
    pieces += [p for p in re.split(r"[/?&=;]", f"{parts.path}?{parts.query}") if len(p) >= 6]
    for secret in sorted(pieces, key=len, reverse=True):
        if secret and len(secret) > 1:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text[:200]


def post_webhook(alert: Alert, config: Config, url: str | None = None) -> int:
    """POST one alert; returns the HTTP status (2xx). Raises :class:`AlertDeliveryError` otherwise."""
    url = url or webhook_url(config)
    body = inert_json(webhook_payload(alert, config.alerts.webhook_format))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
    )
    opener = urllib.request.build_opener(_NoRedirects())
    where = _describe(url, config)
    timeout = config.alerts.webhook_timeout.total_seconds()
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            with opener.open(request, timeout=timeout) as response:
                outcome["status"] = response.status
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    # urllib's timeout limits each socket read, not the call: a server trickling bytes could hold it for
    # ever. The call runs in a daemon thread and is abandoned at the deadline.
    worker = threading.Thread(target=call, name="alerts-webhook", daemon=True)
    worker.start()
    worker.join(timeout * 1.5)
    if worker.is_alive():
        raise AlertDeliveryError(f"{where} did not answer within {timeout:g}s (alerts.webhook_timeout)", True)
    try:
        if "error" in outcome:
            raise outcome["error"]
        return outcome["status"]
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(400).decode("utf-8", "replace")
        except (OSError, ValueError):
            answer = ""
        hint = " (redirects are not followed: check the URL)" if 300 <= exc.code < 400 else ""
        said = f": {_clean(answer, url)}" if answer.strip() else ""
        # Rate-limited or broken server: stop this channel for the pass instead of trying every alert.
        busy = exc.code == 429 or exc.code >= 500
        raise AlertDeliveryError(
            f"{where} answered HTTP {exc.code} {_clean(exc.reason or '', url)}{said}{hint}", busy
        ) from None
    except TimeoutError:
        raise AlertDeliveryError(f"{where} did not answer within {timeout:g}s (alerts.webhook_timeout)", True) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            message = f"{where} did not answer within {timeout:g}s (alerts.webhook_timeout)"
            raise AlertDeliveryError(message, True) from None
        if isinstance(reason, ConnectionRefusedError):
            text = "connection refused"
        elif isinstance(reason, OSError):
            text = reason.strerror or str(reason)
        else:
            text = str(reason)
        raise AlertDeliveryError(f"cannot reach {where}: {_clean(text, url)}", True) from None
    except OSError as exc:
        raise AlertDeliveryError(f"cannot talk to {where}: {_clean(exc.strerror or str(exc), url)}", True) from None
    except (http.client.HTTPException, ValueError) as exc:
        # Their messages may quote the URL (http.client.InvalidURL does): only the type is shown.
        raise AlertDeliveryError(
            f"{where} could not be called ({type(exc).__name__}); check the URL in ${config.alerts.webhook_url_env}"
        ) from None
