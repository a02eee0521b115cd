"""``[storage] url``: which PostgreSQL database, never its password.

The password comes from the environment only (libpq's ``PGPASSWORD``, or a ``~/.pgpass`` / ``PGPASSFILE``
file): a URL is written in config files, shown in ``monitor init`` output and logged, so it must never
carry a secret. A URL that does is refused without being echoed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SCHEMES = ("postgresql", "postgres")
PASSWORD_ENV = "PGPASSWORD"


class StorageURLError(ValueError):
    """A bad ``[storage] url``; the message never contains the URL's password."""


def is_postgres_url(target: str | Path) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` URL; False for a SQLite path (a Path is always a path)."""
    if isinstance(target, Path):
        return False
    return target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def check_url(url: str) -> str:
    """``url`` when it names a PostgreSQL database without a password; StorageURLError otherwise."""
    if not is_postgres_url(url):
        raise StorageURLError('expected a URL like "postgresql://monitor@db.example/monitor"')
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port raises for a bad one
    except ValueError:
        raise StorageURLError("not a valid URL (check the host and port)") from None
    if parts.password is not None or "password" in {k.lower() for k, _ in parse_qsl(parts.query)}:
        raise StorageURLError(f"must not contain a password; set {PASSWORD_ENV} in the environment (or use ~/.pgpass)")
    if not parts.path.strip("/"):
        raise StorageURLError('names no database; expected a URL like "postgresql://monitor@db.example/monitor"')
    return url


def redact(url: str) -> str:
    """``url`` safe to print: any password replaced (check_url refuses them, but a URL may come from elsewhere)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is None and "password=" not in parts.query.lower():
        return url
    userinfo, at, host = parts.netloc.rpartition("@")
    if parts.password is not None:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    query = "&".join(f"{k}={'***' if k.lower() == 'password' else v}" for k, v in parse_qsl(parts.query))
    return f"{parts.scheme}://{userinfo}{at}{host}{parts.path}" + (f"?{query}" if query else "")


def describe(target: str | Path) -> str:
    """A store target for messages and logs: a SQLite path as ``str(path)`` (what the CLI always printed), a
    PostgreSQL URL redacted (config refuses passwords, but a URL may come from elsewhere, e.g. a Scrapy setting)."""
    return redact(str(target)) if is_postgres_url(target) else str(target)
