"""One alerts pass: detect, leave out what each channel already got, deliver, record.

Channels are independent: a webhook that is down does not stop the email, and each channel's
ledger rows are its own, so the next run retries only what failed where it failed. Each channel's
alerts are claimed in the ledger before they go (``ledger.claim``), so two processes running a pass
at once never send one alert twice.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from monitor.alerts.deliver import AlertDeliveryError, post_webhook, send_email, webhook_url
from monitor.alerts.detect import Alert, detect_alerts
from monitor.alerts.ledger import claim, mark_sent, pending, release
from monitor.config import Config, ConfigError
from monitor.digest.send import DigestSendError

log = logging.getLogger("monitor.alerts")


@dataclass
class ChannelResult:
    channel: str
    pending: list[Alert] = field(default_factory=list)  # not yet delivered here when the run started
    delivered: list[Alert] = field(default_factory=list)  # of those, what this run delivered
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.delivered)

    @property
    def failed(self) -> int:
        return len(self.pending) - self.sent

    def as_dict(self) -> dict[str, Any]:
        return {"pending": len(self.pending), "sent": self.sent, "failed": self.failed, "errors": self.errors}


@dataclass
class AlertsRun:
    alerts: list[Alert]  # everything the triggers raise now, sent before or not
    channels: dict[str, ChannelResult]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not any(result.errors for result in self.channels.values())

    def summary(self) -> dict[str, Any]:
        return {"alerts": len(self.alerts), **{name: r.as_dict() for name, r in self.channels.items()}}


def _email(db: sqlite_utils.Database, config: Config, result: ChannelResult, ssl_context) -> None:
    alerts = result.pending
    try:
        sent_to = send_email(alerts, config, ssl_context=ssl_context)
    except DigestSendError as exc:
        result.errors.append(str(exc))
        if exc.sent_to:  # some recipients have it; sending again would repeat it to them
            mark_sent(db, alerts, "email")
            result.delivered = list(alerts)
            log.error("alerts: email reached only %s: %s", ", ".join(exc.sent_to), exc)
        else:
            log.error("alerts: email failed, %d alert(s) will be tried again on the next run: %s", len(alerts), exc)
        return
    except ConfigError as exc:
        result.errors.append(f"config error: {exc}")
        log.error("alerts: email not sent, %d alert(s) wait: config error: %s", len(alerts), exc)
        return
    mark_sent(db, alerts, "email")
    result.delivered = list(alerts)
    log.info("alerts: emailed %d alert(s) to %s", len(alerts), ", ".join(sent_to))


def _webhook(db: sqlite_utils.Database, config: Config, result: ChannelResult) -> None:
    try:
        url = webhook_url(config)
    except ConfigError as exc:
        result.errors.append(f"config error: {exc}")
        log.error("alerts: webhook not called, %d alert(s) wait: config error: %s", len(result.pending), exc)
        return
    for alert in result.pending:
        try:
            post_webhook(alert, config, url)
        except AlertDeliveryError as exc:
            result.errors.append(str(exc))
            log.error("alerts: webhook failed for %s %s, it will be tried again on the next run: %s",
                      alert.kind, alert.key, exc)  # fmt: skip
            if exc.unreachable:
                break  # the rest would fail the same way
            continue
        mark_sent(db, [alert], "webhook")  # at once: a crash later must not resend this one
        result.delivered.append(alert)
    if result.sent:
        log.info("alerts: posted %d alert(s) to the webhook", result.sent)


def run_alerts(
    config: Config,
    db: sqlite_utils.Database,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> AlertsRun:
    """Detect alerts and deliver each channel's pending ones (``dry_run``: only say what would go)."""
    now = now or datetime.now(UTC)
    channels = config.alerts.channels
    alerts = detect_alerts(db, config, now) if channels or dry_run else []
    run = AlertsRun(alerts=alerts, channels={}, dry_run=dry_run)
    for channel in channels:
        if dry_run:
            run.channels[channel] = ChannelResult(channel, pending(db, alerts, channel))
            continue
        # What another process is sending right now is left to it (it releases what it fails to send).
        result = run.channels[channel] = ChannelResult(channel, claim(db, alerts, channel))
        if not result.pending:
            continue
        try:
            if channel == "email":
                _email(db, config, result, ssl_context)
            else:
                _webhook(db, config, result)
        except Exception as exc:  # a bug in one channel must not keep the other from going
            # Only the type: an unexpected message could quote the webhook URL. The traceback is at debug level.
            log.error("alerts: %s channel failed unexpectedly (%s)", channel, type(exc).__name__)
            log.debug("alerts: %s channel traceback", channel, exc_info=True)
            result.errors.append(f"unexpected {type(exc).__name__}")
        finally:
            delivered = {(a.kind, a.key) for a in result.delivered}
            release(db, [a for a in result.pending if (a.kind, a.key) not in delivered], channel)
    return run
