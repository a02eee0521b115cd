"""The shifts stage: estimate every mention's incident time, attribute it to shifts, find incidents.

Runs after classification (incidents need the labels; estimates do not). It is
incremental: a mention is (re)estimated when it is new or edited since its estimate,
and everything is recomputed when the locations, shifts or lags in the config change.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlite_utils

from monitor.config import Config, Location
from monitor.shifts.attribute import Occurrences, attribute, occurrences
from monitor.shifts.estimate import Estimate, estimate_incident
from monitor.shifts.incidents import detect_incidents
from monitor.shifts.localtime import epoch, parse_utc, utc_to_local, zone
from monitor.store import utcnow

CHUNK = 2000
_FINGERPRINT_KEY = "shifts_config"


@dataclass
class ShiftsCounts:
    estimated: int = 0
    by_basis: dict[str, int] = field(default_factory=dict)
    without_location: int = 0
    incidents: int = 0


class LocationResolver:
    """Which location a mention belongs to: its own, its source's, a business id, or a keyword."""

    def __init__(self, config: Config) -> None:
        self.known = {loc.id: loc for loc in config.locations}
        self.by_source = {name: loc.id for loc in config.locations for name in loc.sources}
        self.business_ids = [(bid, loc.id) for loc in config.locations for bid in loc.business_ids]
        self.keywords = [
            (re.compile(r"(?<!\w)" + re.escape(word.lower()) + r"(?!\w)"), loc.id)
            for loc in config.locations
            for word in loc.keywords
        ]

    def __call__(self, row: dict[str, Any]) -> str | None:
        if row.get("location") in self.known:
            return row["location"]
        if row.get("source") in self.by_source:
            return self.by_source[row["source"]]
        haystack = f"{row.get('url') or ''}\n{row.get('raw') or ''}"
        for bid, location in self.business_ids:
            if bid in haystack:
                return location
        text = f"{row.get('title') or ''}\n{row.get('text') or ''}".lower()
        matches = {location for pattern, location in self.keywords if pattern.search(text)}
        # Two locations' keywords in one mention ("moved from the airport to downtown"): don't guess.
        return matches.pop() if len(matches) == 1 else None


def config_fingerprint(config: Config) -> str:
    """Changes whenever a change to the config could change an estimate or an attribution."""
    payload = {
        "locations": [asdict(loc) for loc in config.locations],
        "default_lag": config.shifts.default_visit_lag.total_seconds(),
        "lags": {s.name: s.visit_lag.total_seconds() for s in config.sources if s.visit_lag},
        "sources": {s.name: s.location for s in config.sources},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _reset_if_config_changed(db: sqlite_utils.Database, config: Config) -> None:
    fingerprint = config_fingerprint(config)
    row = db.execute("select value from meta where key = ?", [_FINGERPRINT_KEY]).fetchone()
    if row and row[0] == fingerprint:
        return
    with db.atomic():
        db.execute("delete from shift_attributions")
        db.execute("delete from incident_estimates")
        db["meta"].upsert({"key": _FINGERPRINT_KEY, "value": fingerprint}, pk="key")


def _pending(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(
        db.query(
            "select m.id, m.source, m.url, m.raw, m.title, m.text, m.posted_at, m.first_seen_at, m.experienced_at, "
            "m.location from mentions m left join incident_estimates e on e.mention_id = m.id "
            "where e.mention_id is null or e.estimated_at < m.updated_at order by m.id limit ?",
            [CHUNK],
        )
    )


def occurrences_for(location: Location, starts: np.ndarray, ends: np.ndarray) -> Occurrences:
    """Occurrences covering every window in ``starts``/``ends`` (epoch seconds) at ``location``."""
    tz = zone(location.timezone)
    first = utc_to_local(datetime.fromtimestamp(int(starts.min()), UTC), tz).date()
    last = utc_to_local(datetime.fromtimestamp(int(ends.max()), UTC), tz).date()
    return occurrences(location, first, last + timedelta(days=1))


def attribution_rows(location: Location, mention_ids: list[int], estimates: list[Estimate]) -> list[dict[str, Any]]:
    """shift_attributions rows for one location's estimates."""
    if not location.shifts or not estimates:
        return [
            {"mention_id": mid, "location": location.id, "shift": "off-shift", "weight": 1.0,
             "shift_date": utc_to_local(e.start, zone(location.timezone)).date().isoformat()}
            for mid, e in zip(mention_ids, estimates, strict=True)
        ]  # fmt: skip
    starts = np.array([epoch(e.start) for e in estimates], dtype=np.int64)
    ends = np.array([epoch(e.end) for e in estimates], dtype=np.int64)
    occ = occurrences_for(location, starts, ends)
    result = attribute(occ, starts, ends)
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for row, shift, day, weight in zip(result.row, result.shift, result.day, result.weight, strict=True):
        key = (mention_ids[row], occ.shift_name(int(shift)), (occ.first_day + timedelta(days=int(day))).isoformat())
        if key in rows:  # off-shift pieces on both sides of a shift, same day
            rows[key]["weight"] += float(weight)
        else:
            rows[key] = {"mention_id": key[0], "location": location.id, "shift": key[1], "shift_date": key[2],
                         "weight": float(weight)}  # fmt: skip
    return list(rows.values())


def estimate_and_attribute(db: sqlite_utils.Database, config: Config) -> ShiftsCounts:
    """Estimate and attribute every new or edited mention, then refresh incidents. Safe to re-run."""
    _reset_if_config_changed(db, config)
    resolve = LocationResolver(config)
    lags = {s.name: s.visit_lag for s in config.sources if s.visit_lag}
    counts = ShiftsCounts()
    while rows := _pending(db):
        now = utcnow()
        estimate_rows = []
        by_location: dict[str, tuple[list[int], list[Estimate]]] = defaultdict(lambda: ([], []))
        for row in rows:
            location_id = resolve(row)
            posted = parse_utc(row["posted_at"]) or parse_utc(row["first_seen_at"])
            if location_id is None or posted is None:
                counts.without_location += 1
                estimate_rows.append({"mention_id": row["id"], "location": None, "window_start": None,
                                      "window_end": None, "basis": "no location", "detail": None,
                                      "estimated_at": now})  # fmt: skip
                continue
            location = resolve.known[location_id]
            text = "\n".join(t for t in (row["title"], row["text"]) if t)
            lag = lags.get(row["source"], config.shifts.default_visit_lag)
            estimate = estimate_incident(posted, zone(location.timezone), lag, text, row["experienced_at"])
            estimate_rows.append({"mention_id": row["id"], "location": location_id,
                                  "window_start": estimate.start.isoformat(), "window_end": estimate.end.isoformat(),
                                  "basis": estimate.basis, "detail": estimate.detail, "estimated_at": now})  # fmt: skip
            by_location[location_id][0].append(row["id"])
            by_location[location_id][1].append(estimate)
            counts.estimated += 1
            counts.by_basis[estimate.basis] = counts.by_basis.get(estimate.basis, 0) + 1
        attributions = []
        for location_id, (mention_ids, estimates) in by_location.items():
            attributions += attribution_rows(resolve.known[location_id], mention_ids, estimates)
        ids = [r["id"] for r in rows]
        with db.atomic():
            db.execute(f"delete from shift_attributions where mention_id in ({', '.join('?' * len(ids))})", ids)
            db["incident_estimates"].insert_all(estimate_rows, replace=True)
            db["shift_attributions"].insert_all(attributions, replace=True)
    counts.incidents = detect_incidents(db, config)
    return counts


def mention_shift(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any] | None:
    """For the inbox: the mention's estimate (window, basis, phrase), shifts with weights, and incident."""
    rows = list(db.query("select * from incident_estimates where mention_id = ?", [mention_id]))
    if not rows:
        return None
    estimate = rows[0]
    estimate["shifts"] = list(
        db.query(
            "select shift, shift_date, weight from shift_attributions where mention_id = ? order by weight desc",
            [mention_id],
        )
    )
    incident = list(
        db.query(
            "select i.* from incidents i join incident_mentions im on im.incident_id = i.id where im.mention_id = ?",
            [mention_id],
        )
    )
    estimate["incident"] = incident[0] if incident else None
    return estimate
