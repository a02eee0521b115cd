"""Alerts in words: a plain-text and an HTML email, and a webhook's JSON body.

Mention text, authors and brands are written by strangers:

* plain text keeps them as they are (already one line, control characters removed, truncated);
* HTML escapes them (Jinja2 autoescape) and links only http(s) URLs;
* the webhook ``text`` escapes ``&``, ``<`` and ``>`` the way Slack (and Mattermost) require, so a
  mention cannot ping ``<!channel>`` or dress up a link;
* the JSON body writes ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same JSON
  value), so it stays inert even if something pastes it into a page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from monitor.alerts.detect import Alert

if TYPE_CHECKING:
    from monitor.config import Config

KIND_LABELS = {"urgent_item": "Urgent", "incident": "Incident", "spike": "Spike", "sla_breach": "SLA"}

_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.4; color: #222;">
<h1 style="font-size: 1.2em;">{{ heading }}</h1>
{% for alert in alerts %}
<div style="border-left: 4px solid #c0392b; padding: 0.2em 0.8em; margin: 1em 0;">
<h2 style="font-size: 1.05em; margin: 0.2em 0;">[{{ kind_labels.get(alert.kind, alert.kind) }}] {{ alert.title }}</h2>
<table style="border-collapse: collapse;">
{% for label, value in alert.facts %}<tr><th style="{{ th }}">{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
{% for text in alert.excerpts if text %}<blockquote style="margin: 0.5em 0; color: #444;">{{ text }}</blockquote>
{% endfor %}
{% if alert.links %}<p>{% for label, url in alert.links %}<a href="{{ url }}">{{ label }}</a>
{{- " · " if not loop.last }}{% endfor %}</p>{% endif %}
</div>
{% endfor %}
<p style="color: #888; font-size: 0.85em;">{{ footer }}</p>
</body></html>
"""
_TH_STYLE = "text-align: left; padding-right: 1em; font-weight: normal; color: #666;"
_environment = Environment(autoescape=True, keep_trailing_newline=True)
_html_template = _environment.from_string(_HTML)

FOOTER = "Sent by mention monitor. Each alert is sent once; what is configured is in docs/alerts.md."


def alert_text(alert: Alert) -> str:
    """One alert as plain text: a title line, indented facts, quoted excerpts, links."""
    lines = [f"[{KIND_LABELS.get(alert.kind, alert.kind)}] {alert.title}"]
    lines += [f"  {label}: {value}" for label, value in alert.facts]
    lines += [f"  “{text}”" for text in alert.excerpts if text]
    lines += [f"  {label}: {url}" for label, url in alert.links]
    return "\n".join(lines)


def email_subject(alerts: list[Alert], brand: str = "") -> str:
    """E.g. ``Acme Coffee alert: Safety / health: complaint on yelp at Downtown (+2 more)``."""
    name = " ".join((brand or "Mention monitor").split())
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return " ".join(f"{name} alert: {alerts[0].title}{more}".split())


def _heading(alerts: list[Alert], brand: str, now: datetime) -> str:
    count = "1 alert" if len(alerts) == 1 else f"{len(alerts)} alerts"
    return f"{brand or 'Mention monitor'}: {count} — {now.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}"


def email_bodies(alerts: list[Alert], brand: str = "", now: datetime | None = None) -> tuple[str, str]:
    """(plain text, HTML) of one email carrying ``alerts``."""
    now = now or datetime.now(UTC)
    heading = _heading(alerts, brand, now)
    text = heading + "\n\n" + "\n\n".join(alert_text(a) for a in alerts) + f"\n\n-- \n{FOOTER}\n"
    html = _html_template.render(subject=email_subject(alerts, brand), heading=heading, alerts=alerts,
                                 kind_labels=KIND_LABELS, footer=FOOTER, th=_TH_STYLE)  # fmt: skip
    return text, html


def slack_escape(text: str) -> str:
    """Slack's (and Mattermost's) required escaping of message text; shown as the plain characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inert_json(payload: Any) -> bytes:
    """JSON whose bytes contain no ``<``, ``>`` or ``&`` (each is a ``\\u`` escape: the same JSON value)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


_WORD_JOINER = "\u2060"


def neutralise_chat_markup(text: str) -> str:
    """Mention text must not ping a channel or become a disguised link in a chat that renders Markdown:
    a word joiner after ``@`` breaks ``@channel`` / ``@here`` / ``@all``, and one between ``]`` and ``(``
    breaks ``[text](url)``. The words read the same."""
    return text.replace("@", "@" + _WORD_JOINER).replace("](", "]" + _WORD_JOINER + "(")


def webhook_payload(alert: Alert, fmt: str = "text") -> dict[str, Any]:
    """``{"text": ...}`` (Slack / Teams / Mattermost / Google Chat incoming webhooks); ``full`` adds the alert."""
    payload: dict[str, Any] = {"text": slack_escape(neutralise_chat_markup(alert_text(alert)))}
    if fmt == "full":
        payload["alert"] = alert.as_dict()
    return payload


def no_channel_reason(config: Config) -> str:
    """Why no alert can go: alerts off, or no channel configured."""
    if not config.alerts.enabled:
        return "alerts are switched off ([alerts] enabled = false)"
    return "no alert channel is configured (set [alerts] recipients or webhook_url_env)"


def no_channel_summary(config: Config, reason: str, count: int, dry_run: bool) -> str:
    """The line `monitor alerts` prints when no channel is configured."""
    from monitor.queue.metrics import human_minutes

    if not dry_run:
        return f"nothing sent: {reason}; `monitor alerts --dry-run` lists what would go"
    if count:
        return f"{count} alert(s) would be sent, but {reason}"
    window = human_minutes(config.alerts.max_age.total_seconds() / 60)
    return f"nothing would be sent now (no alert in the last {window}, [alerts] max_age); and {reason}"
