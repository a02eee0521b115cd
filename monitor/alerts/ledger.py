"""The ``alerts_sent`` table: one row per alert delivered on a channel, so it is never sent there again.

Before sending, a pass *claims* each alert: it inserts the alert's row (unique by kind, subject and
channel) with ``sent_at`` empty, under ``BEGIN IMMEDIATE``, and sends only what it claimed. Two daemons,
or a manual ``monitor alerts`` during a daemon's pass, therefore never both send one alert: the second
finds the row and skips it. When the channel accepts the alert (an SMTP server took the message, a
webhook answered 2xx) the row gets its ``sent_at``; when sending fails the claim is deleted, so the next
run tries again. A claim left by a process that died mid-send is taken over once that process is gone
(same machine) or after ``CLAIM_TIMEOUT``. An incident whose window grew (or moved back when an earlier
complaint came in) is the same incident: one sent (or being sent) for an overlapping window counts.

On PostgreSQL ``write_transaction`` takes the store's write lock (``monitor.db.pg.WRITE_LOCK``) instead of
``BEGIN IMMEDIATE``, so a claim is the same read-then-insert under one writer at a time; the claim's
``insert ... on conflict do nothing`` reports through ``rowcount`` on both engines whether it took the row.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

import sqlite_utils

from monitor.alerts.detect import Alert
from monitor.processes import pid_alive
from monitor.shifts.localtime import parse_utc
from monitor.store import alerts as alerts_store
from monitor.store import utcnow, write_transaction

# Longer than any one pass can spend sending (SMTP and webhook deadlines are seconds to minutes).
CLAIM_TIMEOUT = timedelta(minutes=30)
_CLAIM = "_claim"  # key of the claim facts inside a claimed row's ``detail``


def _incident_windows(db: sqlite_utils.Database, channel: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for stored in alerts_store.incident_details(db, channel):
        detail = json.loads(stored or "{}")
        if detail.get("location") and detail.get("window_start") and detail.get("window_end"):
            out.setdefault(detail["location"], []).append((detail["window_start"], detail["window_end"]))
    return out


def _overlaps(alert: Alert, windows: dict[str, list[tuple[str, str]]]) -> bool:
    start, end = parse_utc(alert.detail["window_start"]), parse_utc(alert.detail["window_end"])
    for other_start, other_end in windows.get(alert.detail["location"], []):
        if parse_utc(other_start) <= end and start <= parse_utc(other_end):
            return True
    return False


def pending(db: sqlite_utils.Database, alerts: list[Alert], channel: str) -> list[Alert]:
    """The alerts not yet delivered on ``channel``, in their order."""
    sent = alerts_store.ledger_keys(db, channel)
    windows = _incident_windows(db, channel) if any(a.kind == "incident" for a in alerts) else {}
    return [a for a in alerts if (a.kind, a.key) not in sent and not (a.kind == "incident" and _overlaps(a, windows))]


def _pid_alive(pid: object) -> bool:
    return isinstance(pid, int) and pid_alive(pid)


def _abandoned(detail: str | None, now: datetime) -> bool:
    """Whether an unsent row's claim was left by a process that died (or hung) while sending."""
    try:
        claim = json.loads(detail or "{}").get(_CLAIM) or {}
        claimed_at = datetime.fromisoformat(claim["at"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return True  # no readable claim: nobody can be sending it
    if now - claimed_at > CLAIM_TIMEOUT:
        return True
    return (
        claim.get("host") == socket.gethostname()
        and claim.get("pid") != os.getpid()
        and not _pid_alive(claim.get("pid"))
    )


def claim(db: sqlite_utils.Database, alerts: list[Alert], channel: str) -> list[Alert]:
    """Claim the alerts not yet sent (nor being sent) on ``channel``; return those this caller now owns
    and must either :func:`mark_sent` or :func:`release`. Atomic against other processes."""
    now = datetime.now(UTC).replace(microsecond=0)
    facts = {"at": now.isoformat(), "host": socket.gethostname(), "pid": os.getpid(), "id": secrets.token_hex(8)}
    with write_transaction(db):
        stale = [
            (kind, key) for kind, key, detail in alerts_store.unsent_claims(db, channel) if _abandoned(detail, now)
        ]
        alerts_store.delete_unsent(db, stale, channel)
        mine = []
        for alert in pending(db, alerts, channel):  # inside the lock: no one else can claim meanwhile
            detail = json.dumps({**alert.detail, _CLAIM: facts}, ensure_ascii=False, default=str)
            if alerts_store.insert_claim(db, alert.kind, alert.key, channel, alert.title, detail):
                mine.append(alert)
    return mine


def release(db: sqlite_utils.Database, alerts: list[Alert], channel: str) -> None:
    """Give up claims on ``alerts`` that were not delivered, so the next run tries them again."""
    if not alerts:
        return
    with write_transaction(db):
        alerts_store.delete_unsent(db, [(a.kind, a.key) for a in alerts], channel)


def mark_sent(db: sqlite_utils.Database, alerts: list[Alert], channel: str) -> None:
    """Record that ``alerts`` were delivered on ``channel`` (idempotent; completes a claim)."""
    now = utcnow()
    rows = [(a.kind, a.key, channel, now, a.title, json.dumps(a.detail, ensure_ascii=False, default=str))
            for a in alerts]  # fmt: skip
    with write_transaction(db):
        alerts_store.record_sent(db, rows)


def sent_count(db: sqlite_utils.Database, channel: str | None = None) -> int:
    """Alerts delivered (claims still being sent do not count)."""
    return alerts_store.count_sent(db, channel)
