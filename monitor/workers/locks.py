"""Locks that keep two workers from doing one thing at once: a source's crawl, the processing pass.

A row in the store's ``leases`` table (the scheduler lease's table, monitor/lease.py), taken by compare-and-set
under the write lock. Broker delivery is at least once and the scheduler may enqueue a source's next crawl while
the last one still runs, so the worker that finds the lock taken skips (a crawl) or comes back later (processing).
A lock whose holder died is taken over at once on the same machine, else when it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from monitor.db import errors as db_errors
from monitor.lease import acquire, describe_holder, new_holder_id, release
from monitor.store import leases as leases_store
from monitor.store import open_db, write_transaction
from monitor.workers.holders import holder_gone

log = logging.getLogger("monitor.workers")


@contextmanager
def exclusive(target: str | Path, name: str, duration: timedelta) -> Iterator[str | None]:
    """Hold lease ``name`` for the block; yields None (and holds nothing) when another live holder has it,
    else this holder's id. Given back at the end; a process killed inside the block leaves it to expire."""
    db = open_db(target)
    holder = new_holder_id()
    held = False
    try:
        with write_transaction(db, scope=f"lease:{name}"):
            current = leases_store.lease_holder(db, name)
            if current is not None and holder_gone(current):
                log.warning("%s: taking over from %s (its process is gone)", name, describe_holder(current))
                leases_store.delete_lease(db, name, current)
            state = acquire(db, holder, duration, name=name)
        held = state.held
        yield holder if held else None
    finally:
        try:
            if held:
                release(db, holder, name=name)
        except db_errors.DATABASE_ERRORS as exc:
            log.warning("%s: could not give the lock back (%s); it expires on its own", name, exc)
        finally:
            db.close()
