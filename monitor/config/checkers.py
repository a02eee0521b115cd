"""Checkers for single config values, and the error every config problem raises.

Each checker takes (key_path, value) and returns the converted value or raises :class:`ConfigError` naming the
key path, e.g. ``sources[2].every: expected a duration like "15m" or "1h", got "often"``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def _threshold(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(key, f"expected a probability between 0 and 1, got {value!r}")
    return float(value)
