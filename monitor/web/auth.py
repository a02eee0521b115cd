"""Who may use the inbox: users from an environment variable, password logins, bind rules.

Users come only from the environment (``[web] users_env``, default
``MONITOR_USERS``) as ``name:hash`` pairs separated by commas; a hash is made
by ``monitor hash-password`` (werkzeug's salted scrypt). Passwords and hashes
never reach the database, the logs or a page.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from monitor.config import ConfigError, WebConfig
from monitor.hosts import is_loopback
from monitor.store.meta import get_meta, get_or_create_meta, set_meta

# A hash checked for unknown names too, so a login's timing does not reveal which names exist.
_DUMMY_HASH = generate_password_hash("not a real password")
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0  # seconds


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
    """At most MAX_FAILURES failed logins per (client address, user name) in FAILURE_WINDOW seconds.

    Keyed by name too, so behind a proxy (every client 127.0.0.1) one person's typos do not lock the
    whole team out; the table is bounded so a flood of names cannot grow it without end. Waitress
    serves requests on several threads: one lock around the table, or a login evicting a key while
    another records a failure for it raises KeyError (HTTP 500).
    """

    MAX_KEYS = 10_000

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        stamps = self.failures.setdefault(key, deque())
        while stamps and self.clock() - stamps[0] > FAILURE_WINDOW:
            stamps.popleft()
        return stamps

    def blocked(self, client: str, name: str) -> bool:
        with self._lock:
            return len(self._recent((client, name.lower()))) >= MAX_FAILURES

    def failed(self, client: str, name: str) -> None:
        key = (client, name.lower())
        with self._lock:
            self._recent(key).append(self.clock())
            self.failures.move_to_end(key)
            while len(self.failures) > self.MAX_KEYS:
                self.failures.popitem(last=False)

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            self.failures.pop((client, name.lower()), None)


def credential_fingerprint(secret_key: str, hashed: str) -> str:
    """Ties a session to the user's current password hash: changing the password ends old sessions."""
    return hmac.new(secret_key.encode(), hashed.encode(), hashlib.sha256).hexdigest()[:32]


_SAFE_TARGET = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")


def safe_redirect_target(target: str | None) -> str:
    """A same-site path to go to after login, else ``/`` (no scheme, host, ``//``, backslash or control chars)."""
    return target if target and _SAFE_TARGET.fullmatch(target) else "/"


# Headers a reverse proxy adds (any X-Forwarded-* counts too). Waitress deletes the standard ones before
# the app sees them unless it is told not to: serve() passes clear_untrusted_proxy_headers=False.
FORWARDING_HEADERS = (
    "Forwarded", "Via", "X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Client-IP",
    "Client-IP", "X-Cluster-Client-IP", "X-Original-Forwarded-For",
)  # fmt: skip


def is_proxied(headers: Mapping[str, str]) -> bool:
    """Whether a request carries any header a reverse proxy adds (so it may come from anywhere)."""
    names = {name.lower() for name, _value in headers.items()}
    return any(n.startswith("x-forwarded-") for n in names) or any(h.lower() in names for h in FORWARDING_HEADERS)


# --------------------------------------------------------------- sessions
# A session cookie is signed, not stored, so on its own it stays valid until it expires. Each user has a
# random session generation in the ``meta`` table; a login copies it into the cookie, every request
# compares the two, and logging out replaces it, so every cookie issued before -- including one copied
# by someone else -- stops working at once (on all the user's devices).

_GENERATION_KEY = "web.session_generation:"


def session_generation(db: sqlite_utils.Database, user: str, create: bool = False) -> str | None:
    """The user's current session generation (made on first login when ``create``), or None."""
    key = _GENERATION_KEY + user
    value = get_meta(db, key)
    if value or not create:
        return value
    return get_or_create_meta(db, key, secrets.token_urlsafe(24))  # two first logins at once: both get one value


def end_sessions(db: sqlite_utils.Database, user: str) -> None:
    """Invalidate every session of ``user`` issued so far (logout)."""
    set_meta(db, _GENERATION_KEY + user, secrets.token_urlsafe(24))


def is_loopback_host_header(host: str) -> bool:
    """Whether a Host header names this machine (guards the login-less inbox against DNS rebinding)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return is_loopback(name)
