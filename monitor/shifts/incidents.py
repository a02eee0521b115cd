"""Incidents: at least k complaints at one location within a time window, across sources.

Each complaint sits at the midpoint of its incident-time estimate. Every complaint that
starts a run of >= k complaints within ``window`` marks that run; overlapping runs merge
into one incident, so a bad two-hour stretch is one incident, not several. The incident
carries its sources, its dominant complaint topic and the shift that carries most of its
complaints' attribution weight.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlite_utils

from monitor.config import Config
from monitor.shifts.localtime import epoch, from_epoch, parse_utc
from monitor.store import shifts as shifts_store
from monitor.store import utcnow, write_transaction


def find_runs(times: np.ndarray, k: int, window_seconds: int) -> list[tuple[int, int]]:
    """Index ranges [first, last] of sorted ``times`` grouping >= k events within ``window_seconds``."""
    if len(times) < k:
        return []
    last = np.searchsorted(times, times + window_seconds, side="right") - 1
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(last - np.arange(len(times)) + 1 >= k):
        j = int(last[i])
        if runs and i <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], j))
        else:
            runs.append((int(i), j))
    return runs


def _complaints(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return shifts_store.complaint_estimates(db)


def detect_incidents(db: sqlite_utils.Database, config: Config) -> int:
    """Recompute all incidents from the stored estimates and labels; return how many there are."""
    k = config.shifts.incident_min_complaints
    window = int(config.shifts.incident_window.total_seconds())
    by_location: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for row in _complaints(db):
        start, end = parse_utc(row["window_start"]), parse_utc(row["window_end"])
        by_location[row["location"]].append(((epoch(start) + epoch(end)) // 2, row))
    weights: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for row in shifts_store.complaint_attributions(db):
        weights[row["mention_id"]].append((row["shift"], row["shift_date"], row["weight"]))

    incidents = []
    now = utcnow()
    for location, items in by_location.items():
        items.sort(key=lambda item: (item[0], item[1]["mention_id"]))
        times = np.array([t for t, _ in items], dtype=np.int64)
        for first, last in find_runs(times, k, window):
            members = [row for _, row in items[first : last + 1]]
            shift_weight: Counter[tuple[str, str]] = Counter()
            topics: Counter[str] = Counter()
            for row in members:
                for shift, shift_date, weight in weights[row["mention_id"]]:
                    shift_weight[(shift, shift_date)] += weight
                topics.update(json.loads(row["topics"] or "[]"))
            shift, shift_date = (
                max(shift_weight.items(), key=lambda kv: (kv[1], kv[0]))[0] if shift_weight else ("", "")
            )
            topic = min(topics.items(), key=lambda kv: (-kv[1], kv[0]))[0] if topics else ""
            incidents.append(
                {
                    "location": location,
                    "window_start": from_epoch(times[first]).isoformat(),
                    "window_end": from_epoch(times[last]).isoformat(),
                    "shift": shift,
                    "shift_date": shift_date,
                    "complaints": len(members),
                    "sources": json.dumps(sorted({row["source"] for row in members})),
                    "topic": topic,
                    "detected_at": now,
                    "mention_ids": [row["mention_id"] for row in members],
                }
            )
    # An incident that is still there keeps its id (links to it stay valid) and its first detection time.
    known = {(r["location"], r["window_start"]): r for r in shifts_store.incident_keys(db)}
    with write_transaction(db):
        shifts_store.clear_incidents(db)
        for incident in incidents:
            mention_ids = incident.pop("mention_ids")
            if previous := known.get((incident["location"], incident["window_start"])):
                incident.update(id=previous["id"], detected_at=previous["detected_at"])
            shifts_store.insert_incident(db, incident, mention_ids)
    return len(incidents)


def list_incidents(
    db: sqlite_utils.Database, start: datetime, end: datetime, location: str | None = None
) -> list[dict[str, Any]]:
    """Incidents whose window starts in ``[start, end)`` (aware), newest first, with their mention ids."""
    rows = shifts_store.incidents_between(
        db, start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat(), location
    )
    for row in rows:
        row["sources"] = json.loads(row["sources"] or "[]")
        row["mention_ids"] = shifts_store.incident_mention_ids(db, row["id"])
    return rows


def incidents_for_day(db: sqlite_utils.Database, config: Config, day: date) -> list[dict[str, Any]]:
    """Incidents that started on the calendar ``day`` in ``[schedule] timezone`` (the digest's day)."""
    zone = ZoneInfo(config.schedule.timezone)
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    names = {loc.id: loc.name or loc.id for loc in config.locations}
    rows = list_incidents(db, start, end)
    for row in rows:
        row["location_name"] = names.get(row["location"], row["location"])
    return rows
