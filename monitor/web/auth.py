"""Who may use the inbox: users from an environment variable, password logins, bind rules.

Users come only from the environment (``[web] users_env``, default
``MONITOR_USERS``) as ``name:hash`` pairs separated by commas; a hash is made
by ``monitor hash-password`` (werkzeug's salted scrypt). Passwords and hashes
never reach the database, the logs or a page.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections import defaultdict, deque

from werkzeug.security import check_password_hash, generate_password_hash

from monitor.config import ConfigError, WebConfig

# A hash checked for unknown names too, so a login's timing does not reveal which names exist.
_DUMMY_HASH = generate_password_hash("not a real password")
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0  # seconds


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("use a password of at least 8 characters")
    return generate_password_hash(password)


def load_users(web: WebConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Name → password hash from the environment variable ``web.users_env`` (empty when unset)."""
    raw = (environ if environ is not None else os.environ).get(web.users_env, "").strip()
    users: dict[str, str] = {}
    for i, entry in enumerate(p.strip() for p in raw.split(",")):
        if not entry:
            continue
        name, sep, hashed = entry.partition(":")
        if not sep or not name.strip() or not hashed.strip():
            # Say which entry without echoing it: it may hold a secret.
            raise ConfigError(
                f"web.users_env ({web.users_env})",
                f"entry {i + 1} is not name:hash (make a hash with `monitor hash-password`)",
            )
        if "$" not in hashed:
            raise ConfigError(
                f"web.users_env ({web.users_env})",
                f"entry {i + 1} ({name.strip()}) holds no password hash; store `monitor hash-password` output, "
                "never the password",
            )
        users[name.strip()] = hashed.strip()
    return users


def check_password(users: dict[str, str], name: str, password: str) -> bool:
    hashed = users.get(name)
    ok = check_password_hash(hashed or _DUMMY_HASH, password)
    return ok and hashed is not None


def check_bind_address(host: str, users: dict[str, str] | None = None, users_env: str = "MONITOR_USERS") -> None:
    """Refuse to expose the inbox beyond this machine without logins."""
    if not is_loopback(host) and not users:
        raise ConfigError(
            "web.host",
            f"refusing to bind {host!r} without users: off loopback the inbox requires login. Set {users_env} to "
            "name:hash pairs (make hashes with `monitor hash-password`), or bind 127.0.0.1",
        )


class LoginThrottle:
    """At most MAX_FAILURES failed logins per client address in FAILURE_WINDOW seconds."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, client: str) -> deque[float]:
        stamps = self.failures[client]
        while stamps and self.clock() - stamps[0] > FAILURE_WINDOW:
            stamps.popleft()
        return stamps

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        self._recent(client).append(self.clock())

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)
