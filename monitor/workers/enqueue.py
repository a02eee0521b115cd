"""What `monitor run` sends to the broker instead of running the work (and what jobs send each other)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitor.config import Config

log = logging.getLogger("monitor.workers")


def _actor(config: Config, name: str):
    from monitor.workers.broker import get_broker

    return get_broker(config.workers.broker).get_actor(name)


def enqueue_crawl(config: Config, names: Sequence[str], *, together: bool = False) -> int:
    """One ``crawl_source`` message per source name, or (``together``, several names) one ``crawl_sources``
    message for them all: one crawl process instead of one each. Returns how many crawl messages were sent."""
    if together and len(names) > 1:
        _actor(config, "crawl_sources").send(list(names))
        return 1
    actor = _actor(config, "crawl_source")
    for name in names:
        actor.send(name)
    return len(names)


def enqueue_classify(config: Config, *, process_after: bool = True) -> None:
    _actor(config, "classify").send(process_after)


def enqueue_process(config: Config, *, delay_ms: int | None = None) -> None:
    _actor(config, "process").send_with_options(args=(), delay=delay_ms)


def enqueue_alerts(config: Config) -> None:
    _actor(config, "alerts").send()
