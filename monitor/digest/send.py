"""Email the daily digest over SMTP.

The message is multipart/alternative: a text/plain part (the plain-text rendering, written
for reading) and a multipart/related part holding the HTML rendering and its charts as PNG
images referenced by Content-ID, all built from the same gathered data as the digest file.
The file is always written first, so a failed send never loses the digest.

SMTP settings come from ``[digest]`` (docs/config.md); the login and password only from the
environment variables named by ``smtp_user_env`` / ``smtp_password_env``. Every failure is
one :class:`DigestSendError` whose message names the server and the config key to check and
never contains the password.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.config import Config, ConfigError, DigestConfig
from monitor.digest.build import gather_digest, render_digest, save_digest
from monitor.hosts import is_loopback

log = logging.getLogger(__name__)

# Waits before the second and third attempt, for temporary failures only (timeouts, dropped
# connections, 4xx replies). Refused connections, bad logins and 5xx replies fail at once.
RETRY_DELAYS = (5.0, 30.0)
_sleep = time.sleep  # tests patch this


class DigestSendError(RuntimeError):
    """Sending failed; ``str()`` is one line naming the server and the config key to check.

    ``path`` is the digest file, already written (set by :func:`deliver_digest`); ``sent_to``
    lists the recipients the server accepted when it refused only some of them.
    """

    def __init__(self, message: str, sent_to: list[str] | None = None) -> None:
        super().__init__(message)
        self.path: Path | None = None
        self.sent_to = sent_to or []


@dataclass
class SmtpSettings:
    """``[digest]`` SMTP settings with the credentials read from the environment."""

    host: str
    port: int
    security: str  # starttls | tls | none
    timeout: float
    sender: str  # as configured, possibly "Name <addr>"
    recipients: list[str]  # bare addresses
    user: str | None = None
    password: str | None = None
    recipients_key: str = "digest.recipients"  # named in errors about refused recipients
    purpose: str = "digest"  # what is being sent, for the log

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSettings(server={self.server!r}, security={self.security!r}, user={self.user!r})"


def smtp_settings(
    digest: DigestConfig, recipients: list[str] | None = None, recipients_key: str = "digest.recipients"
) -> SmtpSettings:
    """Check that ``[digest]`` can send and read the credentials; raises :class:`ConfigError` naming the key.

    Alerts reuse the ``[digest]`` server with their own ``recipients`` (named ``recipients_key`` in errors).
    """
    recipients = digest.recipients if recipients is None else recipients
    if not recipients:
        raise ConfigError(recipients_key, 'no recipients configured; set e.g. recipients = ["manager@acme.example"]')
    if not digest.smtp_host:
        raise ConfigError("digest.smtp_host", "no SMTP server configured")
    if not digest.sender:
        raise ConfigError("digest.sender", 'no From address configured; set e.g. sender = "digest@acme.example"')
    user = os.environ.get(digest.smtp_user_env) if digest.smtp_user_env else None
    password = None
    if user:
        password = os.environ.get(digest.smtp_password_env) if digest.smtp_password_env else None
        if password and not password.isascii():
            # smtplib would fail with an error quoting the offending character; name only the variable.
            raise ConfigError(
                "digest.smtp_password_env",
                f"the password in {digest.smtp_password_env} has non-ASCII characters, which SMTP AUTH cannot send",
            )
        if not password:
            missing = digest.smtp_password_env or "(digest.smtp_password_env is empty)"
            raise ConfigError(
                "digest.smtp_password_env",
                f"environment variable {missing} is not set, but {digest.smtp_user_env} is (SMTP login {user!r})",
            )
        if digest.smtp_security == "none" and not is_loopback(digest.smtp_host.lower()):
            raise ConfigError(
                "digest.smtp_security",
                f'"none" would send the SMTP password to {digest.smtp_host} unencrypted; use "starttls" or "tls"',
            )
    return SmtpSettings(
        host=digest.smtp_host,
        port=digest.smtp_port,
        security=digest.smtp_security,
        timeout=digest.smtp_timeout.total_seconds(),
        sender=digest.sender,
        recipients=[parseaddr(r)[1] or r for r in recipients],
        user=user or None,
        password=password,
        recipients_key=recipients_key,
        purpose=recipients_key.partition(".")[0],
    )


# ------------------------------------------------------------------ message


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def digest_subject(data: dict[str, Any]) -> str:
    """E.g. ``Acme Coffee digest — Sun 22 Nov: 12 complaints, 3 overdue`` (the day as the digest writes it)."""
    brand = " ".join(str(data.get("brand") or "Mention monitor").split())  # no line breaks in a header
    complaints = data["counts"].get("complaint", 0)
    overdue = data.get("overdue_total", len(data["overdue"]))
    day = date.fromisoformat(data["day"]).strftime("%a %d %b")
    return f"{brand} digest — {day}: {_plural(complaints, 'complaint')}, {overdue} overdue"


def new_message(
    subject: str, sender: str, recipients: list[str], id_tag: str, now: datetime | None = None
) -> EmailMessage:
    """An automated email's headers (no body yet); ``id_tag`` goes into the Message-ID."""
    name, addr = parseaddr(sender)
    domain = addr.rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # one line, whatever went into it
    message["From"] = Address(display_name=name, addr_spec=addr) if name else addr
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(id_tag, domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["X-Auto-Response-Suppress"] = "All"
    return message


def build_message(
    data: dict[str, Any], sender: str, recipients: list[str], now: datetime | None = None
) -> EmailMessage:
    """The digest as an email: multipart/alternative of the plain text (written for reading, not Markdown)
    and a multipart/related HTML part whose charts are PNG parts it shows by Content-ID (``cid:``).

    Attached, not data: URIs: Gmail and Outlook do not show data: images in mail.
    """
    message = new_message(digest_subject(data), sender, recipients, f"digest.{data['day']}", now)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    # Short ids: a Content-ID header longer than a line gets folded, which some mail clients do not unfold.
    charts = [replace(chart, cid=f"<{chart.name}.{secrets.token_hex(6)}@{domain}>") for chart in data.get("charts", [])]
    data = {**data, "charts": charts}
    message.set_content(render_digest(data, "text"), subtype="plain", charset="utf-8")
    message.add_alternative(render_digest(data, "html", images="cid"), subtype="html", charset="utf-8")
    html = message.get_body(("html",))
    for chart in charts:
        html.add_related(chart.png, "image", "png", cid=chart.cid, disposition="inline", filename=f"{chart.name}.png")
    return message


# ------------------------------------------------------------------ sending


def _reply_text(code: int | None, text: bytes | str | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join((text or "").split())
    return f"{code} {text}".strip() if code else text


def _redact(message: str, settings: SmtpSettings) -> str:
    """Remove the password (and the forms AUTH sends it in) from anything a server echoed back."""
    if not settings.password:
        return message
    user = settings.user or ""
    secrets = [
        settings.password,
        base64.b64encode(settings.password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{settings.password}".encode()).decode(),
    ]
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _connect(settings: SmtpSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    if settings.security == "tls":
        return smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DigestSendError(
                    f'SMTP server {settings.server} does not offer STARTTLS (digest.smtp_security = "starttls"); '
                    'use "tls" for an implicit-TLS port such as 465'
                )
            smtp.starttls(context=context)
            smtp.ehlo()
    except BaseException:
        smtp.close()
        raise
    return smtp


def _send_once(message: EmailMessage, settings: SmtpSettings, context: ssl.SSLContext) -> list[str]:
    smtp = _connect(settings, context)
    try:
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        sender = parseaddr(settings.sender)[1]
        refused = smtp.send_message(message, from_addr=sender, to_addrs=settings.recipients)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    accepted = [r for r in settings.recipients if r not in refused]
    if refused:
        detail = "; ".join(f"{r} ({_reply_text(*reply)})" for r, reply in refused.items())
        raise DigestSendError(
            f"SMTP server {settings.server} refused recipient(s) {detail} (check {settings.recipients_key}); "
            f"sent to {', '.join(accepted)}",
            sent_to=accepted,
        )
    return accepted


def _explain(exc: BaseException, settings: SmtpSettings) -> tuple[str, bool]:
    """(one-line message, temporary?) for an exception raised while sending."""
    server = settings.server
    where = f"SMTP server {server} (digest.smtp_host, digest.smtp_port)"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"SMTP server {server} refused the login for user {settings.user!r} "
            f"({_reply_text(exc.smtp_code, exc.smtp_error)}); check the environment variables named by "
            "digest.smtp_user_env and digest.smtp_password_env",
            False,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        what = "login (AUTH)" if settings.user else "this request"
        return f"SMTP server {server} does not support {what}: {exc}; check digest.smtp_security", False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.items())
        detail = "; ".join(f"{r} ({_reply_text(*reply)})" for r, reply in replies)
        temporary = all(400 <= reply[0] < 500 for _r, reply in replies)
        return f"SMTP server {server} refused every recipient: {detail}; check {settings.recipients_key}", temporary
    if isinstance(exc, smtplib.SMTPSenderRefused):
        reply = _reply_text(exc.smtp_code, exc.smtp_error)
        return f"SMTP server {server} refused the sender {exc.sender} ({reply}); check digest.sender", (
            400 <= exc.smtp_code < 500
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__  # smtplib reports a read timeout as a disconnect
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"SMTP server {server} closed the connection unexpectedly ({exc or 'no reason given'})", True
    if isinstance(exc, smtplib.SMTPResponseException):
        temporary = 400 <= exc.smtp_code < 500
        return f"SMTP server {server} answered {_reply_text(exc.smtp_code, exc.smtp_error)}", temporary
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate of SMTP server {server} is not trusted: {exc.verify_message or exc}", False
    if isinstance(exc, ssl.SSLError):
        hint = '465 usually needs "tls", 587 "starttls"'
        return (
            f"TLS with SMTP server {server} failed ({exc.reason or exc}); digest.smtp_security is "
            f'"{settings.security}" ({hint})',
            False,
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused", False
    if isinstance(exc, socket.gaierror):
        return f"cannot connect to {where}: unknown host {settings.host!r}", False
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {settings.timeout:g}s (digest.smtp_timeout)", True
    if isinstance(exc, OSError):
        return f"cannot talk to {where}: {exc.strerror or exc}", True
    return f"sending to {where} failed: {exc}", False


def send_digest_message(
    message: EmailMessage,
    settings: SmtpSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    retry_delays: tuple[float, ...] | None = None,
) -> list[str]:
    """Send ``message`` to every recipient; returns the addresses the server accepted.

    Temporary failures are tried again after ``retry_delays`` (default :data:`RETRY_DELAYS`); anything
    else, or the last temporary failure, raises :class:`DigestSendError`.
    """
    context = ssl_context or ssl.create_default_context()
    delays = RETRY_DELAYS if retry_delays is None else retry_delays
    attempts = len(delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            return _send_once(message, settings, context)
        except DigestSendError as exc:
            raise DigestSendError(_redact(str(exc), settings), sent_to=exc.sent_to) from None
        except (smtplib.SMTPException, OSError) as exc:
            text, temporary = _explain(exc, settings)
            text = _redact(text, settings)
            if not temporary or attempt == attempts:
                suffix = f" (after {attempts} attempts)" if temporary else ""
                raise DigestSendError(text + suffix) from None
            delay = delays[attempt - 1]
            log.warning("%s: %s; trying again in %gs", settings.purpose, text, delay)
            _sleep(delay)
    raise AssertionError("unreachable")


def _claim_key(day: date, recipients: list[str]) -> tuple[Any, str]:
    """The ledger entry of one day's digest to one set of recipients: ``alerts_sent`` kind ``digest``."""
    from monitor.alerts.detect import Alert

    people = sorted({r.strip().lower() for r in recipients})
    alert = Alert(kind="digest", key=day.isoformat(), title=f"digest for {day.isoformat()}",
                  detail={"day": day.isoformat(), "recipients": people})  # fmt: skip
    return alert, "digest:" + ",".join(people)


def claim_digest(db: sqlite_utils.Database, day: date, recipients: list[str]) -> tuple[Any, str] | None:
    """Claim sending ``day``'s digest to ``recipients`` (``BEGIN IMMEDIATE``, monitor/alerts/ledger.py); None when
    another process sent it or is sending it. The caller settles the claim with :func:`settle_digest_claim`."""
    from monitor.alerts import ledger

    alert, channel = _claim_key(day, recipients)
    return (alert, channel) if ledger.claim(db, [alert], channel) else None


def settle_digest_claim(db: sqlite_utils.Database, claim: tuple[Any, str], delivered: bool) -> None:
    """Record the claimed digest as sent, or give the claim up so a later run sends it."""
    from monitor.alerts import ledger

    alert, channel = claim
    (ledger.mark_sent if delivered else ledger.release)(db, [alert], channel)


def deliver_digest(
    config: Config,
    db: sqlite_utils.Database,
    day: date,
    output: Path | None = None,
    *,
    send: bool | None = None,
    ssl_context: ssl.SSLContext | None = None,
    once: bool = False,
) -> tuple[Path, list[str]]:
    """Write the digest for ``day``, then email it; returns ``(path, recipients it was sent to)``.

    ``output`` defaults to ``[digest] output_dir``/digest-DAY.html. ``send=None`` sends when
    ``[digest] recipients`` is set (what the scheduler wants); ``send=True`` requires it. The
    file is written before anything is sent; a failed send raises :class:`DigestSendError`
    (or :class:`ConfigError` for missing credentials) with the file left in place and on
    ``DigestSendError.path``.

    ``once`` (the scheduler's send) claims the day and recipients in the ledger first: a digest
    another process sent, or is sending, is not sent again (the file is still written). The claim
    is released when nothing was delivered, so a later run can send it.
    """
    from monitor.cycle import default_digest_path

    send = bool(config.digest.recipients) if send is None else send
    data = gather_digest(db, day, config.digest.brand, config)
    path = save_digest(data, output or default_digest_path(config, day))
    if not send:
        return path, []
    settings = smtp_settings(config.digest)
    claim = claim_digest(db, day, settings.recipients) if once else None
    if once and claim is None:
        log.info("digest for %s already sent (or being sent) to %s by another process; not sent again", day,
                 ", ".join(settings.recipients))  # fmt: skip
        return path, []
    delivered = False
    try:
        sent_to = send_digest_message(build_message(data, settings.sender, settings.recipients), settings,
                                      ssl_context=ssl_context)  # fmt: skip
        delivered = True
    except DigestSendError as exc:
        exc.path = path
        # Some recipients have it: sending again would give them a second copy.
        delivered = bool(exc.sent_to)
        raise
    finally:
        if claim is not None:
            settle_digest_claim(db, claim, delivered)
    log.info("digest for %s emailed to %s via %s", day, ", ".join(sent_to), settings.server)
    return path, sent_to
