"""One scheduler at a time: a lease row in the store, taken, renewed and given back by compare-and-set.

``monitor run`` takes the ``scheduler`` lease before it starts any job and renews it every
``renew`` (default 20 s) for another ``duration`` (default 60 s). A second ``monitor run`` on the
same database finds the lease held, says so once and waits; when the holder stops renewing (killed
with ``kill -9``, its machine gone) the lease expires and the waiting one takes it over. Every change
is a read-then-write under ``BEGIN IMMEDIATE`` (:func:`monitor.store.write_transaction`), so two
processes can never both believe they took it. A holder whose renewal finds someone else's name on
the row has lost it and must stop starting jobs (:mod:`monitor.scheduler`).

Times are UTC wall-clock time: schedulers on different machines need synchronised clocks (NTP), and a
lease should be several times longer than the clock error plus the longest stall of a holder.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config import ConfigError, DurationTooLong, parse_duration
from monitor.db import errors as db_errors
from monitor.store import leases as leases_store
from monitor.store import open_db, write_transaction

log = logging.getLogger("monitor.scheduler")

SCHEDULER = "scheduler"
DEFAULT_DURATION = timedelta(seconds=60)
DEFAULT_RENEW = timedelta(seconds=20)
# Deployment knobs, not config keys: the same config file is shared by every machine of a deployment.
DURATION_ENV = "MONITOR_SCHEDULER_LEASE"
RENEW_ENV = "MONITOR_SCHEDULER_RENEW"


def new_holder_id() -> str:
    """``host:pid:random``: unique even when a pid is reused, readable in the log."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def describe_holder(holder: str) -> str:
    """``host:pid`` of a holder id (the random part tells nobody anything)."""
    return holder.rsplit(":", 1)[0] if holder.count(":") >= 2 else holder


@dataclass(frozen=True)
class LeaseState:
    """The outcome of :func:`acquire`: ``held`` by the caller, or by ``holder`` until ``expires_at``."""

    held: bool
    holder: str
    expires_at: datetime


def _stamp(moment: datetime) -> str:
    # Microseconds: a test lease lasts seconds. One fixed format, so stored values also sort as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: treat as long expired
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def acquire(
    db: Any, holder: str, duration: timedelta, *, name: str = SCHEDULER, now: datetime | None = None
) -> LeaseState:
    """Take ``name`` for ``holder`` when it is free, expired or already ``holder``'s (then it is renewed)."""
    now = now or datetime.now(UTC)
    expires = now + duration
    with write_transaction(db, scope=f"lease:{name}"):  # this lease's row only
        row = leases_store.lease_row(db, name)
        if row is not None and row[0] != holder and _parse(row[1]) > now:
            return LeaseState(False, row[0], _parse(row[1]))
        leases_store.upsert_lease(db, name, holder, _stamp(now), _stamp(expires))
    return LeaseState(True, holder, expires)


def renew(
    db: Any, holder: str, duration: timedelta, *, name: str = SCHEDULER, now: datetime | None = None
) -> datetime | None:
    """Extend ``holder``'s lease; the new expiry, or None when the row names someone else (the lease is lost).

    A lease that expired without anyone taking it is still ``holder``'s: nobody else scheduled meanwhile.
    """
    now = now or datetime.now(UTC)
    expires = now + duration
    with write_transaction(db, scope=f"lease:{name}"):  # this lease's row only
        renewed = leases_store.renew_lease(db, name, holder, _stamp(now), _stamp(expires))
    return expires if renewed else None


def release(db: Any, holder: str, *, name: str = SCHEDULER) -> bool:
    """Give the lease back (a clean stop), so a waiting scheduler takes over at once; False if not ours."""
    with write_transaction(db, scope=f"lease:{name}"):  # this lease's row only
        return leases_store.delete_lease(db, name, holder)


def lease_timing(environ: dict[str, str] | None = None) -> tuple[timedelta, timedelta]:
    """``(duration, renew)`` from ``$MONITOR_SCHEDULER_LEASE`` / ``$MONITOR_SCHEDULER_RENEW`` (e.g. "60s", "20s").

    Raises :class:`ConfigError` naming the variable; renewing must be more frequent than expiring.
    """
    environ = os.environ if environ is None else environ
    values = []
    for variable, default in ((DURATION_ENV, DEFAULT_DURATION), (RENEW_ENV, DEFAULT_RENEW)):
        text = environ.get(variable, "").strip()
        if not text:
            values.append(default)
            continue
        try:
            value = parse_duration(text)
        except (ValueError, DurationTooLong):
            value = timedelta(0)
        if value <= timedelta(0):
            raise ConfigError(variable, f'expected a duration like "60s" or "2m", got {text!r}')
        values.append(value)
    duration, every = values
    if every >= duration:
        raise ConfigError(
            RENEW_ENV, f"renewing every {every.total_seconds():g}s must be more often than the lease lasts "
            f"({DURATION_ENV} = {duration.total_seconds():g}s), or the lease expires between renewals",
        )  # fmt: skip
    return duration, every


class LeaseKeeper:
    """Holds one lease for a daemon: waits for it, renews it (its heartbeat), gives it back.

    The daemon's main thread drives it, not a job: a pool full of slow crawls cannot delay a renewal.
    """

    def __init__(
        self, db_path: str | Path, duration: timedelta, renew_every: timedelta, *, name: str = SCHEDULER
    ) -> None:
        self.db = open_db(db_path)
        self.name = name
        self.holder = new_holder_id()
        self.duration = duration
        self.renew_every = renew_every
        self.until: datetime | None = None  # our lease's expiry, as last written; None while not held
        self._next_renew = 0.0

    def wait_until_held(self, stop: threading.Event) -> bool:
        """Take the lease, waiting while another scheduler holds it; False if ``stop`` was set first.

        Tries once even when ``stop`` is already set, so a daemon told to stop at start-up still starts up.
        """
        announced = None
        while True:
            try:
                state = acquire(self.db, self.holder, self.duration, name=self.name)
            except db_errors.DATABASE_ERRORS as exc:  # locked past busy_timeout, disk trouble: keep trying
                log.warning("scheduler lease: could not read it (%s); trying again", exc)
                state = None
            if state is not None and state.held:
                self.until = state.expires_at
                self._next_renew = time.monotonic() + self.renew_every.total_seconds()
                log.info("holding the scheduler lease as %s (lasts %gs, renewed every %gs)", describe_holder(
                    self.holder), self.duration.total_seconds(), self.renew_every.total_seconds())  # fmt: skip
                return True
            pause = self.renew_every.total_seconds()
            if state is not None:
                if announced != state.holder:
                    until = state.expires_at.isoformat(timespec="seconds")
                    log.warning("another scheduler (%s) holds the lease until %s; waiting",
                                describe_holder(state.holder), until)  # fmt: skip
                    announced = state.holder
                # Come back just after it would expire, if it is not renewed meanwhile.
                left = (state.expires_at - datetime.now(UTC)).total_seconds()
                pause = min(pause, max(0.05, left + 0.05))
            if stop.wait(pause):
                return False

    def heartbeat(self) -> bool:
        """Renew the lease when due; False once it is lost (another holder took it, or it ran out unrenewed)."""
        if self.until is None:
            return False
        if time.monotonic() < self._next_renew:
            return True
        try:
            until = renew(self.db, self.holder, self.duration, name=self.name)
        except db_errors.DATABASE_ERRORS as exc:
            if datetime.now(UTC) >= self.until:
                log.error("scheduler lease: could not renew it before it expired (%s); starting no new jobs", exc)
                self.until = None
                return False
            log.warning("scheduler lease: could not renew it (%s); trying again", exc)
            self._next_renew = time.monotonic() + min(1.0, self.renew_every.total_seconds())
            return True
        if until is None:
            holder = leases_store.lease_holder(self.db, self.name)
            who = describe_holder(holder) if holder else "nobody"
            log.error("lost the scheduler lease (now held by %s); starting no new jobs", who)
            self.until = None
            return False
        self.until = until
        self._next_renew = time.monotonic() + self.renew_every.total_seconds()
        return True

    def close(self) -> None:
        """Give the lease back (if still ours) and close the connection."""
        try:
            if self.until is not None:
                release(self.db, self.holder, name=self.name)
        except db_errors.DATABASE_ERRORS as exc:
            log.warning("scheduler lease: could not give it back (%s); it expires on its own", exc)
        finally:
            self.until = None
            self.db.close()
