"""Load and validate ``config.toml`` into typed objects.

The schema below is data, not code paths, so tests can check that every key
is documented in ``docs/config.md`` and in the example ``config.toml``. Any
problem raises :class:`ConfigError` naming the key path, e.g.
``sources[2].every: expected a duration like "15m" or "1h", got "often"``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.brands import check_brand_table, check_brand_terms

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "MONITOR_CONFIG"

LABELS = ("complaint", "neutral", "praise")


def _short_line(text: str, limit: int) -> str:
    """``text`` on one line and at most ``limit`` characters: messages quote values, which can be anything."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ConfigError(ValueError):
    """A bad config value; ``str()`` is one line naming the key path."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{_short_line(key, 120)}: {_short_line(message, 300)}")


# ------------------------------------------------------------------ checkers
# Each checker takes (key_path, value) and returns the converted value or raises.

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_type_name(value)} {value!r}")
    return value


def _nonempty_str(key: str, value: Any) -> str:
    value = _str(key, value)
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {_type_name(value)} {value!r}")
    return value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"expected a positive integer, got {value!r}")
    return value


def _port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(key, f"expected a port number 1-65535, got {value!r}")
    return value


def _str_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        raise ConfigError(key, f'expected a list of strings like ["{value}"], got a string')
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list of strings, got {_type_name(value)}")
    for i, item in enumerate(value):
        _nonempty_str(f"{key}[{i}]", item)
    return list(value)


def _url(key: str, value: Any) -> str:
    value = _str(key, value)
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(key, f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/") if value.count("/") > 3 else value


def _url_list(key: str, value: Any) -> list[str]:
    items = _str_list(key, value)
    return [_url(f"{key}[{i}]", item) for i, item in enumerate(items)]


def _env_name(key: str, value: Any) -> str:
    value = _str(key, value)
    if not _ENV_NAME.match(value):
        raise ConfigError(key, f"expected the name of an environment variable (e.g. REDDIT_CLIENT_ID), got {value!r}")
    return value


def _storage_url(key: str, value: Any) -> str:
    """A ``postgresql://`` URL without a password (that comes from the environment); "" means SQLite."""
    from monitor.db.url import StorageURLError, check_url

    value = _str(key, value).strip()
    if not value:
        return ""
    try:
        return check_url(value)
    except StorageURLError as exc:
        raise ConfigError(key, str(exc)) from None  # the message never repeats the value: it may hold a password


def _broker_url(key: str, value: Any) -> str:
    """A Redis URL for the job broker (``[workers] broker``), without a password; "" means no broker."""
    value = _str(key, value).strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(key, f'expected a Redis URL like "redis://127.0.0.1:6379/0", got scheme {parts.scheme!r}')
    if parts.password is not None:
        # Secrets come from the environment only; the message never repeats the URL (it holds the password).
        raise ConfigError(key, "the URL contains a password; set MONITOR_BROKER_PASSWORD in the environment instead")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(key, f"expected a host in the Redis URL, got {value!r}")
    try:
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        raise ConfigError(key, f"expected a port number in the Redis URL, got {value!r}") from None
    return value


# Longer than any interval, SLA or lifetime makes sense for, and far from timedelta's and datetime's limits:
# "now + duration" must never overflow.
MAX_DURATION = timedelta(days=3660)


class DurationTooLong(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    amount, unit = int(match.group(1)), match.group(2)
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise DurationTooLong(text)
    return timedelta(seconds=seconds)


def _duration(key: str, value: Any) -> timedelta:
    if isinstance(value, str):
        try:
            result = parse_duration(value)
        except DurationTooLong:
            raise ConfigError(key, f'{value.strip()!r} is too long (at most "{MAX_DURATION.days}d")') from None
        except ValueError:
            pass
        else:
            if result > timedelta(0):
                return result
    raise ConfigError(key, f'expected a duration like "15m" or "1h", got {value!r}')


def _cron(key: str, value: Any) -> str:
    value = _str(key, value)
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ConfigError(key, f'expected a cron expression like "*/15 * * * *", got {value!r} ({exc})') from None
    return value


def _overlap(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(key, f"expected a whole number of items (0 or more), got {value!r}")
    return value


def _timezone(key: str, value: Any) -> str:
    value = _nonempty_str(key, value)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        shown = value if len(value) <= 60 else value[:60] + "…"
        raise ConfigError(key, f'unknown IANA time zone {shown!r} (e.g. "Europe/London")') from None
    return value


def _label_map(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table mapping model labels to {'/'.join(LABELS)}")
    for model_label, ours in value.items():
        if ours not in LABELS:
            raise ConfigError(f"{key}.{model_label}", f"expected one of {', '.join(LABELS)}, got {ours!r}")
    return dict(value)


MULTILINGUAL_DEFAULT = ("zh", "es", "de", "fr", "it", "pt", "ar", "hi")


def _lang_codes(key: str, value: Any) -> list[str]:
    codes = _str_list(key, value)
    for i, code in enumerate(codes):
        if not re.match(r"^[a-z]{2,3}$", code):
            raise ConfigError(f"{key}[{i}]", f"expected an ISO 639-1 language code like en or zh, got {code!r}")
    return codes


def _model_device(key: str, value: Any) -> str:
    if value not in ("auto", "cpu", "cuda") and not (isinstance(value, str) and re.match(r"^cuda:\d+$", value)):
        raise ConfigError(key, f'expected "auto", "cpu" or "cuda", got {_short_line(repr(value), 60)}')
    return value


def _model_quantize(key: str, value: Any) -> str:
    if value not in ("none", "int8"):
        raise ConfigError(key, f'expected "none" or "int8", got {_short_line(repr(value), 60)}')
    return value


def _lang_models(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(key, 'expected a table like { zh = "path/to/model" }')
    for lang, model in value.items():
        if not re.match(r"^[a-z]{2,3}$", lang):
            raise ConfigError(f"{key}.{lang}", "expected an ISO 639-1 language code like en or zh")
        _nonempty_str(f"{key}.{lang}", model)
    return dict(value)


_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(key: str, value: Any) -> int:
    """Parse "HH:MM" into minutes after midnight."""
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(key, f'expected "HH:MM", got {value!r}')
    return int(match.group(1)) * 60 + int(match.group(2))


def _weekdays(key: str, value: Any) -> tuple[int, ...]:
    """["mon", "tue"] -> (0, 1), Monday = 0 like ``date.weekday()``; full names are accepted too."""
    items = _str_list(key, value)
    if not items:
        raise ConfigError(key, "must list at least one weekday")
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    days = set()
    for i, item in enumerate(items):
        word = item.strip().lower()
        if word in WEEKDAYS:
            days.add(WEEKDAYS.index(word))
        elif word in full:
            days.add(full.index(word))
        else:
            raise ConfigError(f"{key}[{i}]", f"expected one of {', '.join(WEEKDAYS)}, got {item!r}")
    return tuple(sorted(days))


def _count_at_least(minimum: int):
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    return check


def _host(key: str, value: Any) -> str:
    value = _nonempty_str(key, value)
    if any(c.isspace() for c in value):
        raise ConfigError(key, f"expected a host name or IP address, got {value!r}")
    return value


_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")


def _email(key: str, value: Any) -> str:
    """An address like ``a@b.example`` or ``Acme Digest <a@b.example>`` (one address, no line breaks)."""
    from email.utils import parseaddr

    value = _str(key, value).strip()
    addr = parseaddr(value)[1] if "<" in value else value
    if "\r" in value or "\n" in value or not _EMAIL.match(addr) or (value.count("@") != 1):
        raise ConfigError(key, f'expected an email address like "manager@acme.example", got {value!r}')
    if not addr.isascii():
        # smtplib cannot send to these without SMTPUTF8; say so now, not at 8 a.m. tomorrow.
        raise ConfigError(key, f"non-ASCII email addresses are not supported, got {value!r}")
    return value


def _email_list(key: str, value: Any) -> list[str]:
    items = _str_list(key, value)
    return [_email(f"{key}[{i}]", item) for i, item in enumerate(items)]


def _sender(key: str, value: Any) -> str:
    return _email(key, value) if value != "" else ""


def _optional_host(key: str, value: Any) -> str:
    return _host(key, value) if value != "" else ""


def _optional_env_name(key: str, value: Any) -> str:
    return _env_name(key, value) if value != "" else ""


SMTP_SECURITY = ("starttls", "tls", "none")


def _smtp_security(key: str, value: Any) -> str:
    if value not in SMTP_SECURITY:
        raise ConfigError(key, f"expected one of {', '.join(SMTP_SECURITY)}, got {value!r}")
    return value


def _webhook_format(key: str, value: Any) -> str:
    if value not in ("text", "full"):
        raise ConfigError(key, f"expected one of text, full, got {value!r}")
    return value


def _optional_url(key: str, value: Any) -> str:
    return _url(key, value) if value != "" else ""


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(key, f"expected a number 0 or more, got {value!r}")
    return float(value)


URGENCY_FLAGS = ("safety_health", "legal_threat", "churn_threat", "high_reach", "question")


def _urgency_flags(key: str, value: Any) -> list[str]:
    items = _str_list(key, value)
    for i, item in enumerate(items):
        if item not in URGENCY_FLAGS:
            raise ConfigError(f"{key}[{i}]", f"expected one of {', '.join(URGENCY_FLAGS)}, got {item!r}")
    return items


# -------------------------------------------------------------------- schema
# key -> (checker, default, description). A default of REQUIRED means required.

REQUIRED = object()

SECTIONS: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "storage": {
        "path": (_nonempty_str, "monitor.db", "SQLite database file, relative to the config file"),
        "url": (_storage_url, "", 'PostgreSQL: "postgresql://user@host/db" (password from PGPASSWORD)'),
    },
    "model": {
        "default": (_nonempty_str, "bundled", '"bundled" (models/sentiment-en), a local model directory, or a hub id'),
        "label_map": (_label_map, None, "map the model's labels to complaint/neutral/praise"),
        "languages": (_lang_models, {}, 'per-language models, e.g. { zh = "models/sentiment-zh" }'),
        "batch_size": (_positive_int, 32, "texts per inference batch"),
        "max_length": (_positive_int, 256, "tokens per text; longer text keeps its head and tail"),
        "threads": (_positive_int, 2, "CPU threads for inference"),
        "multilingual": (_str, "bundled", '"bundled" (models/sentiment-multi), a model directory, or "" for none'),
        "multilingual_languages": (_lang_codes, list(MULTILINGUAL_DEFAULT), "languages the multilingual model takes"),
        "device": (_model_device, "auto", '"auto" (a GPU when there is one), "cpu" or "cuda"'),
        "quantize": (_model_quantize, "none", '"none" or "int8" (dynamic int8 on CPU: faster, slightly less exact)'),
    },
    "queue": {
        "sla_social": (_duration, timedelta(hours=1), "time to answer a complaint on social platforms"),
        "sla_review": (_duration, timedelta(hours=24), "time to answer a review"),
        "complaint_threshold": (None, 0.5, "minimum complaint probability to queue a mention"),
        "sla_by_source": (
            None,
            {},
            'SLA per source type or name, e.g. { yelp = "12h", "reddit-acme" = "30m" } (overrides the two above)',
        ),
        "sla_urgent": (
            _duration,
            timedelta(minutes=30),
            "SLA for items flagged safety_health or legal_threat (when shorter than their normal SLA)",
        ),
        "templates_dir": (_str, "", 'folder of suggested-reply templates (*.toml); "" uses the bundled English set'),
        "contact": (_str, "", "contact channel offered in suggested replies as {contact}, e.g. care@acme.example"),
        "auto_assign": (
            _bool,
            False,
            "assign each new item to the [[team]] member who covers it and has the fewest open items",
        ),
    },
    "digest": {
        "output_dir": (_nonempty_str, "digests", "where digest files are written, relative to the config file"),
        "brand": (_str, "", "own brand shown in the digest title"),
        "recipients": (_email_list, [], "who `monitor digest --send` and `monitor run` email the digest to"),
        "sender": (_sender, "", 'From address, e.g. "Acme Digest <digest@acme.example>" (required with recipients)'),
        "smtp_host": (_optional_host, "", "SMTP server host name (required with recipients)"),
        "smtp_port": (_port, 587, "SMTP server port (587 for starttls, 465 for tls, 25 for none)"),
        "smtp_security": (
            _smtp_security,
            "starttls",
            "starttls, tls (implicit TLS) or none (plain: local relays only)",
        ),
        "smtp_user_env": (_optional_env_name, "MONITOR_SMTP_USER", "env var with the SMTP login (unset: no login)"),
        "smtp_password_env": (_optional_env_name, "MONITOR_SMTP_PASSWORD", "env var with the SMTP password"),
        "smtp_timeout": (_duration, timedelta(seconds=30), "give up on an unresponsive SMTP server after this"),
        "inbox_url": (_optional_url, "", "the inbox's address, for links in the digest (default: alerts.inbox_url)"),
    },
    "web": {
        "host": (_host, "127.0.0.1", "address the inbox binds to"),
        "port": (_port, 8080, "port the inbox listens on"),
        "users_env": (
            _env_name,
            "MONITOR_USERS",
            "environment variable listing inbox users as name:password-hash pairs, comma-separated "
            "(`monitor hash-password` makes a hash); login is required when users are set and off loopback",
        ),
        "session_lifetime": (_duration, timedelta(hours=12), "how long an inbox login lasts"),
        "cookie_secure": (_bool, False, "mark the session cookie Secure (set it when a TLS proxy is in front)"),
        "proxies": (
            _count_at_least(0),
            0,
            "reverse proxies in front of the inbox whose X-Forwarded-For/-Proto/-Host/-Prefix are trusted (ProxyFix)",
        ),
    },
    "shifts": {
        "default_visit_lag": (_duration, timedelta(hours=2), "assumed time from visit to post when nothing says"),
        "incident_min_complaints": (_count_at_least(2), 3, "complaints at one location that make an incident"),
        "incident_window": (_duration, timedelta(hours=3), "time span those complaints must fall within"),
        "min_shift_mentions": (_count_at_least(1), 20, "mentions a shift needs before it can be flagged"),
        "min_shift_complaints": (_count_at_least(1), 5, "complaints a shift needs before it can be flagged"),
        "alpha": (None, 0.05, "significance level of the flag test, Bonferroni-corrected per location"),
        "roster": (_str, "", "optional CSV of who worked which shift (date, location, shift, staff)"),
    },
    "trends": {
        "timezone": (_timezone, "UTC", "IANA time zone whose calendar days (and Monday weeks) trends count in"),
        "baseline_periods": (
            _count_at_least(3),
            14,
            "past days (or weeks) a brand's normal complaint count is taken from",
        ),
        "spike_alpha": (
            None,
            0.001,
            "a period is a spike when a normal period reaches its count with lower probability",
        ),
        "min_spike_complaints": (_count_at_least(1), 5, "complaints a period needs before it can be a spike"),
    },
    "schedule": {
        "default_every": (_duration, timedelta(hours=1), "crawl interval of sources with neither every nor cron"),
        "process_every": (
            _duration,
            timedelta(minutes=5),
            "how often `monitor run` classifies, places on shifts and refreshes queue priorities",
        ),
        "digest_at": (_clock, 8 * 60, 'local time the daily digest (for the day before) is written, "HH:MM"'),
        "crawl_group": (
            _count_at_least(1),
            1,
            "sources on the same every / cron crawled by one job in one process (each crawl's start-up paid once)",
        ),
        "timezone": (_timezone, "UTC", "IANA time zone of digest_at and of the digest's day"),
    },
    "alerts": {
        "enabled": (_bool, True, "send alerts (they also need recipients or webhook_url_env)"),
        "every": (_duration, timedelta(minutes=5), "how often `monitor run` checks for alerts"),
        "urgent_items": (_bool, True, "alert on a new queue item carrying one of `flags`"),
        "flags": (_urgency_flags, ["safety_health", "legal_threat"], "urgency flags that alert"),
        "incidents": (_bool, True, "alert on a new incident ([shifts] incident_min_complaints in incident_window)"),
        "spikes": (_bool, True, "alert on a complaint spike for a brand today ([trends])"),
        "spike_brands": (_str_list, [], "brands whose spikes alert (empty: every brand)"),
        "sla_breaches": (_bool, False, "alert when an open item has just passed its SLA"),
        "sla_min_priority": (_non_negative, 0.0, "only items with at least this priority at their deadline"),
        "max_age": (_duration, timedelta(hours=24), "ignore what happened longer ago than this"),
        "recipients": (_email_list, [], "email addresses (SMTP settings from [digest])"),
        "webhook_url_env": (_optional_env_name, "", "env var holding the webhook URL"),
        "webhook_format": (_webhook_format, "text", '"text" ({"text": ...}, Slack / Teams) or "full"'),
        "webhook_timeout": (_duration, timedelta(seconds=10), "give up on a webhook that does not answer"),
        "inbox_url": (_optional_url, "", "the inbox's address, for links to items in alerts"),
        "excerpt_chars": (_count_at_least(40), 280, "mention text quoted per alert, at most"),
    },
    "workers": {
        "broker": (_broker_url, "", "Redis URL: `monitor run` enqueues jobs there, `monitor worker` runs them"),
    },
}

LOCATION_KEYS: dict[str, tuple[Any, Any, str]] = {
    "id": (_nonempty_str, REQUIRED, "identifier used by sources' location key"),
    "name": (_nonempty_str, None, "display name (default: the id)"),
    "timezone": (_timezone, REQUIRED, "IANA time zone, e.g. America/New_York"),
    "sources": (_str_list, [], "sources whose mentions belong here (besides those naming it as location)"),
    "business_ids": (_str_list, [], "platform business / place ids of this location, matched in URLs and raw data"),
    "keywords": (_str_list, [], "words that place a mention without a location here, e.g. terminal 4"),
    "contact": (_str, "", "this location's contact channel for suggested replies (default [queue] contact)"),
}
# A location's [[locations.shifts]] tables are checked against SHIFT_KEYS by _check_shifts.

SHIFT_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "shift name, unique within the location"),
    "start": (_clock, REQUIRED, 'local start time "HH:MM"'),
    "end": (_clock, REQUIRED, 'local end time "HH:MM"; at or before start means the next day'),
    "weekdays": (_weekdays, tuple(range(7)), 'days the shift starts on, e.g. ["mon", "tue"] (default all)'),
}

TEAM_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "the member's name, as shown in the inbox and the audit log"),
    "locations": (_str_list, [], "location ids this member answers for (empty: all)"),
    "sources": (_str_list, [], "source names or types this member answers for (empty: all)"),
    "languages": (_str_list, [], 'languages this member answers in, e.g. ["en", "es"] (empty: all)'),
}

SOURCE_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "unique name; used by `monitor crawl NAME`"),
    "type": (_nonempty_str, REQUIRED, "source type (see docs/sources.md)"),
    "enabled": (_bool, True, "false skips the source in scheduled and bulk crawls"),
    "every": (_duration, None, 'crawl interval, e.g. "15m"'),
    "cron": (_cron, None, 'crawl schedule as a cron expression, e.g. "*/15 * * * *"'),
    "brand": (_str, "", "own brand or a competitor's name"),
    "location": (_str, "", "a [[locations]] id"),
    "visit_lag": (_duration, None, "assumed time from visit to post for this source (default [shifts])"),
    "exclude": (_str_list, [], "drop mentions containing any of these words or phrases (cuts noise)"),
    "require": (_str_list, [], "keep only mentions containing at least one of these (empty: keep all)"),
    "user_agent": (_nonempty_str, "mention-monitor/0.1 (+https://github.com/mention-monitor)", "User-Agent sent"),
}

# One source can watch several brands: a mention gets the brand of the term or id that found it.
BRANDS_DOC = 'brand per search term or id, e.g. { "Rival Coffee" = ["rival coffee"] } (the rest: brand)'

SOURCE_TYPES: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "reddit": {
        "search": (_str_list, [], "Reddit search queries"),
        "subreddits": (_str_list, [], "subreddits whose new posts and comments are read"),
        "client_id_env": (_env_name, "REDDIT_CLIENT_ID", "environment variable holding the OAuth client id"),
        "client_secret_env": (_env_name, "REDDIT_CLIENT_SECRET", "environment variable holding the client secret"),
        "oauth_url": (_url, "https://oauth.reddit.com", "API host (override only for tests)"),
        "reddit_url": (_url, "https://www.reddit.com", "token host (override only for tests)"),
        "limit": (_positive_int, 100, "items read per query or listing per crawl"),
        "comments": (_bool, True, "also read comments of subreddit listings"),
        "refresh_token_env": (_env_name, "REDDIT_REFRESH_TOKEN", "env var with an OAuth refresh token (replying)"),
        "username_env": (_env_name, "REDDIT_USERNAME", "env var with the account name (replying, script apps)"),
        "password_env": (_env_name, "REDDIT_PASSWORD", "env var with the account password (replying, script apps)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "app_store": {
        "app_ids": (_str_list, REQUIRED, 'numeric App Store ids, e.g. ["284882215"]'),
        "countries": (_str_list, ["us"], "two-letter storefront codes; each has its own ~500 recent reviews"),
        "base_url": (_url, "https://itunes.apple.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 10, "pages of 50 reviews per app and country (Apple serves at most 10)"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "google_places": {
        "place_ids": (_str_list, REQUIRED, "Google place ids"),
        "api_key_env": (_env_name, "GOOGLE_PLACES_API_KEY", "environment variable holding the API key"),
        "language": (_str, "", "languageCode for review text (empty: the reviews' own language)"),
        "base_url": (_url, "https://places.googleapis.com", "API host (override only for tests)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "yelp": {
        "business_ids": (_str_list, REQUIRED, "Yelp business ids or aliases"),
        "api_key_env": (_env_name, "YELP_API_KEY", "environment variable holding the Fusion API key"),
        "locale": (_str, "", "review locale, e.g. en_US (empty: Yelp's default)"),
        "base_url": (_url, "https://api.yelp.com", "API host (override only for tests)"),
        # Yelp's time_created is the business's local wall time, with no offset.
        "timezone": (
            lambda key, value: _timezone(key, value) if value != "" else "",
            "",
            "IANA time zone of the businesses, for Yelp's local review times "
            "(empty: the zone of the business's or the source's [[locations]] entry; UTC without one)",
        ),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "trustpilot": {
        "business_unit_ids": (_str_list, REQUIRED, "Trustpilot business unit ids"),
        "api_key_env": (_env_name, "TRUSTPILOT_API_KEY", "environment variable holding the API key"),
        "base_url": (_url, "https://api.trustpilot.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 20, "pages of reviews read per crawl"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
        # Owner mode: the private reviews API (every review, the company's replies) and replying, with OAuth.
        "owner": (_bool, False, "read the business's own reviews through the private API and reply (OAuth)"),
        "api_secret_env": (_env_name, "TRUSTPILOT_API_SECRET", "environment variable holding the API secret"),
        "business_user_id": (_str, "", "Trustpilot business user id that signs replies (owner mode)"),
    },
    "app_store_connect": {
        "app_id": (_nonempty_str, REQUIRED, "the app's Apple id (App Store Connect, App Information)"),
        "issuer_id_env": (_env_name, "ASC_ISSUER_ID", "environment variable holding the API key's issuer id"),
        "key_id_env": (_env_name, "ASC_KEY_ID", "environment variable holding the API key id"),
        "private_key_path_env": (_env_name, "ASC_PRIVATE_KEY_PATH", "environment variable with the .p8 key's path"),
        "base_url": (_url, "https://api.appstoreconnect.apple.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 20, "pages of 200 reviews read per crawl"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
    },
    "hackernews": {
        "search": (_str_list, REQUIRED, "Algolia search queries (stories and comments)"),
        "base_url": (_url, "https://hn.algolia.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 5, "result pages read per query per crawl"),
        "overlap": (_overlap, 20, "already-seen items read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "mastodon": {
        "base_url": (_url, REQUIRED, "the instance, e.g. https://mastodon.social"),
        "tags": (_str_list, [], "hashtags (without #) whose public timelines are read"),
        "search": (_str_list, [], "full-text search queries (needs an access token on most instances)"),
        "access_token_env": (_env_name, "MASTODON_ACCESS_TOKEN", "environment variable holding an access token"),
        "max_pages": (_positive_int, 5, "pages read per tag or query per crawl"),
        "overlap": (_overlap, 20, "already-seen posts read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "bluesky": {
        "search": (_str_list, REQUIRED, "app.bsky.feed.searchPosts queries"),
        "base_url": (_url, "https://public.api.bsky.app", "AppView host for searchPosts"),
        "auth_url": (_url, "https://bsky.social", "PDS host for app-password login"),
        "handle_env": (_env_name, "BLUESKY_HANDLE", "environment variable holding the account handle"),
        "app_password_env": (_env_name, "BLUESKY_APP_PASSWORD", "environment variable holding an app password"),
        "max_pages": (_positive_int, 5, "pages read per query per crawl"),
        "overlap": (_overlap, 20, "already-seen posts read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "feed": {
        "urls": (_url_list, REQUIRED, "RSS or Atom feed URLs (news alerts, blogs)"),
    },
    "google_business": {
        "account": (_nonempty_str, REQUIRED, "Business Profile account id (the number in accounts/{id})"),
        "location_ids": (_str_list, REQUIRED, "Business Profile location ids (the numbers in locations/{id})"),
        "client_id_env": (_env_name, "GOOGLE_CLIENT_ID", "environment variable holding the OAuth client id"),
        "client_secret_env": (_env_name, "GOOGLE_CLIENT_SECRET", "environment variable holding the client secret"),
        "refresh_token_env": (_env_name, "GOOGLE_REFRESH_TOKEN", "env var with the owner's OAuth refresh token"),
        "base_url": (_url, "https://mybusiness.googleapis.com", "API host (override only for tests)"),
        "token_url": (_url, "https://oauth2.googleapis.com/token", "OAuth token endpoint (override only for tests)"),
        "page_size": (_positive_int, 50, "reviews per page (Google serves at most 50)"),
        "max_pages": (_positive_int, 100, "pages read per location per crawl (first crawl: all reviews)"),
    },
    "google_play": {
        "package_names": (_str_list, REQUIRED, 'Android package names, e.g. ["com.acme.app"]'),
        "key_file_env": (_env_name, "GOOGLE_PLAY_KEY_FILE", "env var with the path of the service account's JSON key"),
        "translation_language": (_str, "", "translate review text to this language, e.g. en (empty: as written)"),
        "base_url": (_url, "https://androidpublisher.googleapis.com", "API host (override only for tests)"),
        "token_url": (_url, "https://oauth2.googleapis.com/token", "OAuth token endpoint (override only for tests)"),
        "max_results": (_positive_int, 100, "reviews per page"),
        "max_pages": (_positive_int, 20, "pages read per app per crawl (the API keeps one week of reviews)"),
    },
    "schema_org": {
        "urls": (_url_list, REQUIRED, "pages with schema.org Review markup"),
        "follow_pagination": (_bool, True, 'follow rel="next" / "next page" links'),
        "max_pages": (_positive_int, 20, "pages followed per start URL"),
        "obey_robots": (_bool, True, "obey robots.txt (keep true)"),
    },
}


# ------------------------------------------------------------------- objects


@dataclass
class ModelConfig:
    default: str = "bundled"
    label_map: dict[str, str] | None = None
    languages: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32
    max_length: int = 256
    threads: int = 2
    multilingual: str = "bundled"
    multilingual_languages: list[str] = field(default_factory=lambda: list(MULTILINGUAL_DEFAULT))
    device: str = "auto"
    quantize: str = "none"


@dataclass
class TeamMember:
    name: str
    locations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)


@dataclass
class QueueConfig:
    sla_social: timedelta = timedelta(hours=1)
    sla_review: timedelta = timedelta(hours=24)
    complaint_threshold: float = 0.5
    sla_by_source: dict[str, timedelta] = field(default_factory=dict)
    sla_urgent: timedelta = timedelta(minutes=30)
    templates_dir: str = ""
    contact: str = ""
    auto_assign: bool = False
    # Filled from the rest of the config, not keys of [queue]:
    team: list[TeamMember] = field(default_factory=list)
    source_types: dict[str, str] = field(default_factory=dict)
    templates_path: Path | None = None


@dataclass
class DigestConfig:
    output_dir: str = "digests"
    brand: str = ""
    recipients: list[str] = field(default_factory=list)
    sender: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user_env: str = "MONITOR_SMTP_USER"
    smtp_password_env: str = "MONITOR_SMTP_PASSWORD"
    smtp_timeout: timedelta = timedelta(seconds=30)
    inbox_url: str = ""

    def __post_init__(self) -> None:
        # Recipients mean the digest is emailed (by `monitor run` too): the server and sender must be set.
        if self.recipients:
            if not self.smtp_host.strip():
                raise ConfigError("digest.smtp_host", "required when digest.recipients is set")
            if not self.sender:
                raise ConfigError("digest.sender", "required when digest.recipients is set")


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    users_env: str = "MONITOR_USERS"
    session_lifetime: timedelta = timedelta(hours=12)
    cookie_secure: bool = False
    proxies: int = 0


@dataclass
class Shift:
    name: str
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight; <= start means it ends the next day
    weekdays: tuple[int, ...] = tuple(range(7))  # of the start date, Monday = 0

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    @property
    def hours(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass
class Location:
    id: str
    timezone: str
    name: str | None = None
    sources: list[str] = field(default_factory=list)
    business_ids: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    contact: str = ""
    shifts: list[Shift] = field(default_factory=list)


@dataclass
class TrendsConfig:
    timezone: str = "UTC"
    baseline_periods: int = 14
    spike_alpha: float = 0.001
    min_spike_complaints: int = 5


@dataclass
class ScheduleConfig:
    default_every: timedelta = timedelta(hours=1)
    process_every: timedelta = timedelta(minutes=5)
    digest_at: int = 8 * 60  # minutes after local midnight
    timezone: str = "UTC"
    crawl_group: int = 1


@dataclass
class AlertsConfig:
    enabled: bool = True
    every: timedelta = timedelta(minutes=5)
    urgent_items: bool = True
    flags: list[str] = field(default_factory=lambda: ["safety_health", "legal_threat"])
    incidents: bool = True
    spikes: bool = True
    spike_brands: list[str] = field(default_factory=list)
    sla_breaches: bool = False
    sla_min_priority: float = 0.0
    max_age: timedelta = timedelta(hours=24)
    recipients: list[str] = field(default_factory=list)
    webhook_url_env: str = ""
    webhook_format: str = "text"
    webhook_timeout: timedelta = timedelta(seconds=10)
    inbox_url: str = ""
    excerpt_chars: int = 280

    @property
    def channels(self) -> list[str]:
        """The configured delivery channels (none: alerts are off)."""
        if not self.enabled:
            return []
        return [name for name, on in (("email", self.recipients), ("webhook", self.webhook_url_env)) if on]


@dataclass
class WorkersConfig:
    broker: str = ""  # Redis URL; "" keeps the single-process daemon (monitor/workers/)


@dataclass
class ShiftsConfig:
    default_visit_lag: timedelta = timedelta(hours=2)
    incident_min_complaints: int = 3
    incident_window: timedelta = timedelta(hours=3)
    min_shift_mentions: int = 20
    min_shift_complaints: int = 5
    alpha: float = 0.05
    roster: str = ""


@dataclass
class SourceConfig:
    name: str
    type: str
    enabled: bool = True
    every: timedelta | None = None
    cron: str | None = None
    brand: str = ""
    location: str = ""
    visit_lag: timedelta | None = None
    exclude: list[str] = field(default_factory=list)
    require: list[str] = field(default_factory=list)
    user_agent: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    index: int = 0

    def __post_init__(self) -> None:
        # Cross-key check the per-key checkers cannot make: `brands` may only name this source's own terms.
        check_brand_terms(self)

    @property
    def key(self) -> str:
        return f"sources[{self.index}]"


@dataclass
class Config:
    path: Path
    storage_path: Path
    model: ModelConfig
    queue: QueueConfig
    digest: DigestConfig
    web: WebConfig
    locations: list[Location]
    sources: list[SourceConfig]
    shifts: ShiftsConfig = field(default_factory=ShiftsConfig)
    team: list[TeamMember] = field(default_factory=list)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trends: TrendsConfig = field(default_factory=TrendsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    storage_url: str = ""  # [storage] url: PostgreSQL when set (storage_path is then unused)
    workers: WorkersConfig = field(default_factory=WorkersConfig)

    @property
    def storage_target(self) -> str | Path:
        """What ``monitor.store.open_db`` opens: the PostgreSQL URL when configured, else the SQLite file."""
        return self.storage_url or self.storage_path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    def location(self, location_id: str) -> Location:
        for location in self.locations:
            if location.id == location_id:
                return location
        known = ", ".join(loc.id for loc in self.locations) or "none"
        raise ConfigError("locations", f"no location {location_id!r} (configured: {known})")

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError("sources", f"no source named {name!r} (configured: {known})")


# ---------------------------------------------------------------- validation


def _unknown_key(path: str, key: str, allowed: dict) -> ConfigError:
    hint = difflib.get_close_matches(key, list(allowed), n=1)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else f" (allowed: {', '.join(sorted(allowed))})"
    return ConfigError(f"{path}.{key}" if path else key, f"unknown key{suggestion}")


def _check_table(path: str, table: Any, schema: dict[str, tuple[Any, Any, str]]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"expected a table, got {_type_name(table)}")
    for key in table:
        if key not in schema:
            raise _unknown_key(path, key, schema)
    out = {}
    for key, (checker, default, _doc) in schema.items():
        key_path = f"{path}.{key}" if path else key
        if key in table:
            out[key] = checker(key_path, table[key]) if checker else table[key]
        elif default is REQUIRED:
            raise ConfigError(key_path, "required key is missing")
        else:
            out[key] = default
    return out


def _threshold(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(key, f"expected a probability between 0 and 1, got {value!r}")
    return float(value)


SECTIONS["queue"]["complaint_threshold"] = (_threshold, 0.5, SECTIONS["queue"]["complaint_threshold"][2])
SECTIONS["shifts"]["alpha"] = (_threshold, 0.05, SECTIONS["shifts"]["alpha"][2])
SECTIONS["trends"]["spike_alpha"] = (_threshold, 0.001, SECTIONS["trends"]["spike_alpha"][2])


def _weekly_spans(shift: Shift) -> list[tuple[int, int]]:
    """The shift as minute intervals of a week starting Monday 00:00 (wrapping Sunday night into Monday)."""
    week = 7 * 1440
    length = (shift.end - shift.start) % 1440 or 1440
    spans = []
    for day in shift.weekdays:
        start = day * 1440 + shift.start
        end = start + length
        spans.append((start, min(end, week)))
        if end > week:
            spans.append((0, end - week))
    return spans


def _check_shifts(path: str, value: Any) -> list[Shift]:
    if not isinstance(value, list):
        raise ConfigError(path, "expected [[locations.shifts]] tables")
    shifts: list[Shift] = []
    for j, table in enumerate(value):
        key = f"{path}[{j}]"
        shift = Shift(**_check_table(key, table, SHIFT_KEYS))
        if shift.name == "off-shift":
            raise ConfigError(f"{key}.name", '"off-shift" is reserved for mentions outside every shift')
        for other in shifts:
            if other.name == shift.name:
                raise ConfigError(f"{key}.name", f"duplicate shift name {shift.name!r}")
            # A moment in two shifts would be counted twice; managers can split a shift instead.
            if any(a < d and c < b for a, b in _weekly_spans(shift) for c, d in _weekly_spans(other)):
                raise ConfigError(f"{key}.start", f"shift {shift.name!r} overlaps shift {other.name!r}")
        shifts.append(shift)
    return shifts


def validate(raw: dict[str, Any], path: Path) -> Config:
    top = {*SECTIONS, "locations", "sources", "team"}
    for key in raw:
        if key not in top:
            raise _unknown_key("", key, dict.fromkeys(top))
    sections = {name: _check_table(name, raw.get(name, {}), schema) for name, schema in SECTIONS.items()}

    locations = []
    raw_locations = raw.get("locations", [])
    if not isinstance(raw_locations, list):
        raise ConfigError("locations", "expected [[locations]] tables")
    for i, table in enumerate(raw_locations):
        if not isinstance(table, dict):
            raise ConfigError(f"locations[{i}]", f"expected a table, got {_type_name(table)}")
        table = dict(table)
        raw_shifts = table.pop("shifts", [])
        values = _check_table(f"locations[{i}]", table, LOCATION_KEYS)
        values["shifts"] = _check_shifts(f"locations[{i}].shifts", raw_shifts)
        if any(loc.id == values["id"] for loc in locations):
            raise ConfigError(f"locations[{i}].id", f"duplicate location id {values['id']!r}")
        locations.append(Location(**values))
    location_ids = {loc.id for loc in locations}

    sources: list[SourceConfig] = []
    raw_sources = raw.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError("sources", "expected [[sources]] tables")
    for i, table in enumerate(raw_sources):
        key = f"sources[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(key, f"expected a table, got {_type_name(table)}")
        source_type = table.get("type")
        if source_type is None:
            raise ConfigError(f"{key}.type", "required key is missing")
        if not isinstance(source_type, str):  # a list or table is unhashable: no dict lookup with it
            raise ConfigError(f"{key}.type", f"expected a source type name, got {_type_name(source_type)}")
        if source_type not in SOURCE_TYPES:
            raise ConfigError(
                f"{key}.type", f"unknown source type {source_type!r} (supported: {', '.join(sorted(SOURCE_TYPES))})"
            )
        schema = {**SOURCE_KEYS, **SOURCE_TYPES[source_type]}
        values = _check_table(key, table, schema)
        if values["every"] is not None and values["cron"] is not None:
            raise ConfigError(f"{key}.cron", "set either every or cron, not both")
        if values["location"] and values["location"] not in location_ids:
            known = ", ".join(sorted(location_ids)) or "none defined"
            raise ConfigError(f"{key}.location", f"unknown location {values['location']!r} (locations: {known})")
        if any(s.name == values["name"] for s in sources):
            raise ConfigError(f"{key}.name", f"duplicate source name {values['name']!r}")
        if source_type == "mastodon" and not values["tags"] and not values["search"]:
            raise ConfigError(f"{key}.tags", "a mastodon source needs tags or search queries")
        if source_type == "reddit" and not values["search"] and not values["subreddits"]:
            raise ConfigError(f"{key}.search", "a reddit source needs search terms or subreddits")
        common = {k: values.pop(k) for k in SOURCE_KEYS}
        sources.append(SourceConfig(**common, options=values, index=i))
    source_names = {s.name for s in sources}
    for i, location in enumerate(locations):
        for j, name in enumerate(location.sources):
            if name not in source_names:
                known = ", ".join(sorted(source_names)) or "none defined"
                raise ConfigError(f"locations[{i}].sources[{j}]", f"unknown source {name!r} (sources: {known})")

    team = _check_team(raw.get("team", []), location_ids, source_names | set(SOURCE_TYPES))
    sections["queue"]["sla_by_source"] = _check_sla_table(
        "queue.sla_by_source", sections["queue"]["sla_by_source"], source_names | set(SOURCE_TYPES)
    )
    storage = sections["storage"]
    config = Config(
        path=path,
        storage_path=Path(),
        model=ModelConfig(**sections["model"]),
        queue=QueueConfig(**sections["queue"]),
        digest=DigestConfig(**sections["digest"]),
        web=WebConfig(**sections["web"]),
        locations=locations,
        sources=sources,
        shifts=ShiftsConfig(**sections["shifts"]),
        team=team,
        schedule=ScheduleConfig(**sections["schedule"]),
        trends=TrendsConfig(**sections["trends"]),
        alerts=AlertsConfig(**sections["alerts"]),
        workers=WorkersConfig(**sections["workers"]),
    )
    if config.alerts.recipients:  # alert emails go through the [digest] SMTP server
        for key in ("smtp_host", "sender"):
            if not str(getattr(config.digest, key)).strip():
                raise ConfigError(f"digest.{key}", "required when alerts.recipients is set")
    config.storage_path = config.resolve(storage["path"])
    config.storage_url = storage["url"]
    raw_storage = raw.get("storage", {})
    if config.storage_url and "path" in raw_storage:
        raise ConfigError("storage.url", "set either path (SQLite) or url (PostgreSQL), not both")
    config.queue.team = team
    config.queue.source_types = {s.name: s.type for s in sources}
    if config.queue.templates_dir:
        config.queue.templates_path = config.resolve(config.queue.templates_dir)
        if not config.queue.templates_path.is_dir():
            raise ConfigError("queue.templates_dir", f"no such folder: {config.queue.templates_path}")
    return config


def _check_team(value: Any, location_ids: set[str], source_keys: set[str]) -> list[TeamMember]:
    if not isinstance(value, list):
        raise ConfigError("team", "expected [[team]] tables")
    members: list[TeamMember] = []
    for i, table in enumerate(value):
        member = TeamMember(**_check_table(f"team[{i}]", table, TEAM_KEYS))
        if any(m.name == member.name for m in members):
            raise ConfigError(f"team[{i}].name", f"duplicate team member {member.name!r}")
        for j, loc in enumerate(member.locations):
            if loc not in location_ids:
                raise ConfigError(f"team[{i}].locations[{j}]", f"unknown location {loc!r}")
        for j, src in enumerate(member.sources):
            if src not in source_keys:
                raise ConfigError(f"team[{i}].sources[{j}]", f"unknown source name or type {src!r}")
        members.append(member)
    return members


def _check_sla_table(key: str, value: Any, allowed: set[str]) -> dict[str, timedelta]:
    if not isinstance(value, dict):
        raise ConfigError(key, 'expected a table like { yelp = "12h" }')
    out = {}
    for name, duration in value.items():
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", "not a configured source name or a source type")
        out[name] = _duration(f"{key}.{name}", duration)
    return out


def find_config_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; raises :class:`ConfigError` on any problem."""
    config_path = find_config_path(str(path) if path else None).resolve()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(config_path), "config file not found (pass --config or set MONITOR_CONFIG)") from None
    except UnicodeDecodeError as exc:
        line = config_path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            config_path.name, f"not UTF-8 text (byte {exc.start + 1}, line {line}); save it as UTF-8"
        ) from None
    except OSError as exc:  # a folder, no permission...
        raise ConfigError(str(config_path), f"cannot read the config file: {exc.strerror or exc}") from None
    return loads_config(text, config_path)


def loads_config(text: str, path: Path | None = None) -> Config:
    path = path or Path.cwd() / DEFAULT_CONFIG
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path.name, f"invalid TOML: {exc}") from None
    return validate(raw, path)


def all_documented_keys() -> list[str]:
    """Every config key as a dotted path, for the documentation tests."""
    keys = [f"{section}.{key}" for section, schema in SECTIONS.items() for key in schema]
    keys += [f"locations.{key}" for key in LOCATION_KEYS]
    keys += [f"locations.shifts.{key}" for key in SHIFT_KEYS]
    keys += [f"team.{key}" for key in TEAM_KEYS]
    keys += [f"sources.{key}" for key in SOURCE_KEYS]
    keys += [f"sources.{key}" for schema in SOURCE_TYPES.values() for key in schema]
    return sorted(set(keys))


def secret_from_env(source: SourceConfig, option: str) -> str:
    """Read the secret named by ``source.options[option]`` from the environment."""
    env_name = source.options[option]
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(
            f"{source.key}.{option}", f"environment variable {env_name} is not set (source {source.name!r})"
        )
    return value
