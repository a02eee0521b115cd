"""The ``alerts_sent`` table: one row per alert delivered on a channel, so it is never sent there again.

A row is written only after the channel accepted the alert (an SMTP server took the message, a
webhook answered 2xx). A failure writes nothing, so the next run tries again; restarts and repeated
runs find the row and skip. An incident whose window grew (or moved back when an earlier complaint
came in) is the same incident: one sent for an overlapping window at that location counts.
"""

from __future__ import annotations

import json

import sqlite_utils

from monitor.alerts.detect import Alert
from monitor.shifts.localtime import parse_utc
from monitor.store import utcnow, write_transaction


def _incident_windows(db: sqlite_utils.Database, channel: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for row in db.query("select detail from alerts_sent where kind = 'incident' and channel = ?", [channel]):
        detail = json.loads(row["detail"] or "{}")
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
    sent = {(r[0], r[1]) for r in db.execute("select kind, subject_key from alerts_sent where channel = ?", [channel])}
    windows = _incident_windows(db, channel) if any(a.kind == "incident" for a in alerts) else {}
    return [a for a in alerts if (a.kind, a.key) not in sent and not (a.kind == "incident" and _overlaps(a, windows))]


def mark_sent(db: sqlite_utils.Database, alerts: list[Alert], channel: str) -> None:
    """Record that ``alerts`` were delivered on ``channel`` (idempotent)."""
    now = utcnow()
    rows = [(a.kind, a.key, channel, now, a.title, json.dumps(a.detail, ensure_ascii=False, default=str))
            for a in alerts]  # fmt: skip
    with write_transaction(db):
        db.conn.executemany(
            "insert or ignore into alerts_sent (kind, subject_key, channel, sent_at, title, detail) "
            "values (?, ?, ?, ?, ?, ?)",
            rows,
        )


def sent_count(db: sqlite_utils.Database, channel: str | None = None) -> int:
    if channel is None:
        return db.execute("select count(*) from alerts_sent").fetchone()[0]
    return db.execute("select count(*) from alerts_sent where channel = ?", [channel]).fetchone()[0]
