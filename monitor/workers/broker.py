"""The Redis broker for ``[workers] broker``: one per URL and process, with the actors declared on it."""

from __future__ import annotations

import os
import threading
from typing import Any

from monitor.config import ConfigError

# Deployment knob, not a config key: secrets come from the environment only.
PASSWORD_ENV = "MONITOR_BROKER_PASSWORD"
# Our keys in Redis start with this, so the broker can share a Redis server with other applications.
NAMESPACE = "monitor"
# A worker that stops heart-beating (kill -9, a lost machine) has its unfinished messages put back on the queue
# after this long by another worker's maintenance pass, which runs on about one fetch in MAINTENANCE_CHANCE.
HEARTBEAT_TIMEOUT_MS = 60_000
MAINTENANCE_CHANCE = 100

_BROKERS: dict[str, Any] = {}
_LOCK = threading.Lock()


class BrokerError(ConfigError):
    """The broker cannot be reached (or refuses us): a ConfigError naming ``workers.broker``, so every command
    shows it as one line (exit code 2). The message never holds a password (the URL has none)."""

    def __init__(self, message: str) -> None:
        super().__init__("workers.broker", message)


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, password=os.environ.get(PASSWORD_ENV) or None)


def check_broker(url: str) -> None:
    """Raise :class:`BrokerError` when Redis at ``url`` does not answer, so a command fails with one clear line."""
    import redis

    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BrokerError(f"cannot reach the broker at {url}: {exc}") from None
    finally:
        client.close()


def get_broker(url: str) -> Any:
    """The Dramatiq broker for ``url``, its actors declared (the same in the scheduler and in workers)."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from monitor.workers.actors import declare_actors

    with _LOCK:
        broker = _BROKERS.get(url)
        if broker is None:
            broker = RedisBroker(
                client=redis_client(url), namespace=NAMESPACE,
                heartbeat_timeout=HEARTBEAT_TIMEOUT_MS, maintenance_chance=MAINTENANCE_CHANCE,
            )  # fmt: skip
            declare_actors(broker)
            dramatiq.set_broker(broker)  # anything asking Dramatiq for "the" broker gets this one
            _BROKERS[url] = broker
        return broker
