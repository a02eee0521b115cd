"""The shifts stage: estimate every mention's incident time, attribute it to shifts, find incidents.

Runs after classification (incidents need the labels; estimates do not). It is
incremental: a mention is (re)estimated when it has no estimate or has a revision above the
stage's mark, and everything is recomputed when the locations, shifts or lags in the config change.
A crawl that changes a mention's post or experience time, location or url drops its estimate
(``store._update_row``), so it is estimated again from the new values.
A mention without a usable time (none, or one outside ``localtime.plausible``) is stored with
basis "no time" and no window: one bad date costs only its mention.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from monitor.shifts.localtime import epoch, parse_utc, plausible, utc_to_local, zone
from monitor.store import shifts as shifts_store
from monitor.store import utcnow, write_transaction
from monitor.store.meta import get_meta, set_meta
from monitor.store.shifts import TIME_AND_PLACE as _TIME_AND_PLACE
from monitor.store.shifts import UPSERT_ROWS as _UPSERT_ROWS  # noqa: F401  (tests import it from here)
from monitor.store.shifts import replace_rows as _replace_rows  # noqa: F401  (tests import it from here)

log = logging.getLogger(__name__)

CHUNK = 2000
_FINGERPRINT_KEY = "shifts_config"
_REVISION_MARK = "shifts.revision_mark"  # the last mention_revisions id whose mention was re-estimated
CLUSTER_GAP = timedelta(days=2)  # windows further apart get their own shift occurrences


@dataclass
class ShiftsCounts:
    estimated: int = 0
    by_basis: dict[str, int] = field(default_factory=dict)
    without_location: int = 0
    without_time: int = 0  # no usable post time, or the estimate failed: stored without a window
    incidents: int = 0


# Scripts written without spaces between words (Chinese, Japanese, Thai): a keyword there is any substring,
# since every neighbouring character is a word character and a word-boundary match would never fire.
UNSPACED_SCRIPTS = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def keyword_pattern(word: str) -> re.Pattern[str]:
    """A location keyword as a whole word ("main st" not in "main street's"), or a substring in unspaced scripts."""
    escaped = re.escape(word.lower())
    if UNSPACED_SCRIPTS.search(word):
        return re.compile(escaped)
    return re.compile(r"(?<!\w)" + escaped + r"(?!\w)")


class LocationResolver:
    """Which location a mention belongs to: its own, its source's, a business id, or a keyword."""

    def __init__(self, config: Config) -> None:
        self.known = {loc.id: loc for loc in config.locations}
        self.by_source = {name: loc.id for loc in config.locations for name in loc.sources}
        self.business_ids = [(bid, loc.id) for loc in config.locations for bid in loc.business_ids]
        self.keywords = [(keyword_pattern(word), loc.id) for loc in config.locations for word in loc.keywords]

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
    if get_meta(db, _FINGERPRINT_KEY) == fingerprint:
        return
    with write_transaction(db):
        shifts_store.clear_estimates(db)
        set_meta(db, _FINGERPRINT_KEY, fingerprint)


def _unestimated(db: sqlite_utils.Database, after: int) -> list[dict[str, Any]]:
    """The next chunk of mentions above id ``after`` without an estimate.

    Walking by id (never back) ends after one pass over the table, whatever happens to the rows.
    """
    return shifts_store.unestimated_mentions(db, after, CHUNK)


def _revised(db: sqlite_utils.Database, mark: int) -> tuple[list[dict[str, Any]], int]:
    """Mentions edited since revision ``mark`` (the next chunk), and the revision id to move the mark to.

    Edits are found by revision row id, not by comparing ``updated_at`` with ``estimated_at``: wall-clock
    strings are not ordered when the clock steps back or a writer's clock is ahead, and a mention whose
    ``updated_at`` lay in the future was re-estimated on every pass, for ever.
    """
    revisions = shifts_store.revisions_after(db, mark, CHUNK)
    if not revisions:
        return [], mark
    ids = sorted({mention_id for _, mention_id in revisions})
    return shifts_store.mentions_to_estimate(db, ids), revisions[-1][0]


def _mark(db: sqlite_utils.Database) -> int:
    value = get_meta(db, _REVISION_MARK)
    return int(value) if value is not None else 0


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
    all_starts = np.array([epoch(e.start) for e in estimates], dtype=np.int64)
    all_ends = np.array([epoch(e.end) for e in estimates], dtype=np.int64)
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for members in clusters(all_starts, all_ends, int(CLUSTER_GAP.total_seconds())):
        starts, ends = all_starts[members], all_ends[members]
        occ = occurrences_for(location, starts, ends)
        result = attribute(occ, starts, ends)
        for row, shift, day, weight in zip(result.row, result.shift, result.day, result.weight, strict=True):
            day_iso = (occ.first_day + timedelta(days=int(day))).isoformat()
            key = (mention_ids[members[row]], occ.shift_name(int(shift)), day_iso)
            if key in rows:  # off-shift pieces on both sides of a shift, same day
                rows[key]["weight"] += float(weight)
            else:
                rows[key] = {"mention_id": key[0], "location": location.id, "shift": key[1], "shift_date": key[2],
                             "weight": float(weight)}  # fmt: skip
    return list(rows.values())


def clusters(starts: np.ndarray, ends: np.ndarray, gap: int) -> list[np.ndarray]:
    """Indices of windows grouped so that groups lie more than ``gap`` seconds apart.

    Shift occurrences are materialised for every day from a group's first window to its last:
    one post from 1990 and one from today in a chunk would otherwise cost 13,000 days of them.
    """
    order = np.argsort(starts, kind="stable")
    reach = np.maximum.accumulate(ends[order])
    breaks = np.flatnonzero(starts[order][1:] > reach[:-1] + gap) + 1
    return np.split(order, breaks)


def estimate_and_attribute(db: sqlite_utils.Database, config: Config) -> ShiftsCounts:
    """Estimate and attribute every new or edited mention, then refresh incidents. Safe to re-run."""
    _reset_if_config_changed(db, config)
    resolve = LocationResolver(config)
    lags = {s.name: s.visit_lag for s in config.sources if s.visit_lag}
    counts = ShiftsCounts()
    # Edited mentions first (by revision row id), then those never estimated (by mention id). Both walks
    # only move forward, so the stage ends whatever the clock or the rows' timestamps say.
    mark = _mark(db)
    while True:
        rows, new_mark = _revised(db, mark)
        if new_mark == mark:
            break
        _estimate_chunk(db, config, resolve, lags, rows, counts, revision_mark=new_mark)
        mark = new_mark
    after = 0
    while rows := _unestimated(db, after):
        _estimate_chunk(db, config, resolve, lags, rows, counts)
        after = rows[-1]["id"]
    counts.incidents = detect_incidents(db, config)
    return counts


def _post_time(row: dict[str, Any]) -> datetime | None:
    """When the mention was posted: its post time, else when we first saw it; None when neither is real.

    A backfill mention (an undated item from a first crawl) was not posted when we first saw it: without
    its own post time it has no time at all, rather than piling up on the crawl's hour as an incident.
    """
    posted = parse_utc(row["posted_at"])
    if plausible(posted):
        return posted
    seen = parse_utc(row["first_seen_at"])
    return seen if plausible(seen) and not row.get("backfill") else None


def _estimate_one(row: dict[str, Any], location: Location, lag: timedelta) -> Estimate | None:
    """The mention's estimate; None when it has no usable time. One bad mention costs only itself."""
    posted = _post_time(row)
    if posted is None:
        return None
    text = "\n".join(t for t in (row["title"], row["text"]) if t)
    try:
        estimate = estimate_incident(posted, zone(location.timezone), lag, text, row["experienced_at"])
    except Exception:  # hostile text or dates reach dateparser and calendar arithmetic: skip the mention
        log.warning("shifts: mention %s: no incident time estimated", row["id"], exc_info=True)
        return None
    return estimate if plausible(estimate.start) and plausible(estimate.end) else None


def _attributions(location: Location, mention_ids: list[int], estimates: list[Estimate]) -> list[dict[str, Any]]:
    """attribution_rows, falling back to one mention at a time so a failure costs only its mention."""
    try:
        return attribution_rows(location, mention_ids, estimates)
    except (ValueError, ArithmeticError, LookupError, TypeError):
        log.warning("shifts: attributing %d mentions at %s failed; one at a time", len(mention_ids), location.id)
    rows = []
    for mention_id, estimate in zip(mention_ids, estimates, strict=True):
        try:
            rows += attribution_rows(location, [mention_id], [estimate])
        except (ValueError, ArithmeticError, LookupError, TypeError):
            log.warning("shifts: mention %s: not attributed to a shift", mention_id, exc_info=True)
    return rows


def _estimate_chunk(
    db: sqlite_utils.Database,
    config: Config,
    resolve: LocationResolver,
    lags: dict[str, timedelta],
    rows: list[dict[str, Any]],
    counts: ShiftsCounts,
    revision_mark: int | None = None,
) -> None:
    """Estimate and attribute ``rows`` and store them (with the revision mark, in one transaction).

    Every row gets an estimates row, with no window when it has no location or no usable time.
    """
    now = utcnow()
    estimate_rows = []
    by_location: dict[str, tuple[list[int], list[Estimate]]] = defaultdict(lambda: ([], []))
    for row in rows:
        location_id = resolve(row)
        blank = {"mention_id": row["id"], "location": location_id, "window_start": None, "window_end": None,
                 "detail": None, "estimated_at": now}  # fmt: skip
        if location_id is None:
            counts.without_location += 1
            estimate_rows.append({**blank, "basis": "no location"})
            continue
        lag = lags.get(row["source"], config.shifts.default_visit_lag)
        estimate = _estimate_one(row, resolve.known[location_id], lag)
        if estimate is None:
            counts.without_time += 1
            estimate_rows.append({**blank, "basis": "no time"})
            continue
        estimate_rows.append({**blank, "window_start": estimate.start.isoformat(),
                              "window_end": estimate.end.isoformat(), "basis": estimate.basis,
                              "detail": estimate.detail})  # fmt: skip
        by_location[location_id][0].append(row["id"])
        by_location[location_id][1].append(estimate)
        counts.estimated += 1
        counts.by_basis[estimate.basis] = counts.by_basis.get(estimate.basis, 0) + 1
    attributions = []
    for location_id, (mention_ids, estimates) in by_location.items():
        attributions += _attributions(resolve.known[location_id], mention_ids, estimates)
    ids = [r["id"] for r in rows]
    with write_transaction(db):
        # A crawl may have changed a mention's time or place since we read it: leave such mentions without
        # an estimate (dropping an old one), so that a later pass estimates them from the new values.
        moved = _moved(db, rows)
        if moved:
            estimate_rows = [r for r in estimate_rows if r["mention_id"] not in moved]
            attributions = [r for r in attributions if r["mention_id"] not in moved]
            shifts_store.delete_estimates(db, sorted(moved))
        if ids:
            shifts_store.delete_attributions(db, ids)
            shifts_store.replace_estimates(db, estimate_rows)
            shifts_store.replace_attributions(db, attributions)
        if revision_mark is not None:
            set_meta(db, _REVISION_MARK, str(revision_mark))


def _moved(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> set[int]:
    """Ids of ``rows`` whose time or place no longer match the stored mention, or that are gone.

    Run inside the estimates' write transaction, so nothing changes between this check and the write.
    """
    if not rows:
        return set()
    stored = shifts_store.stored_time_and_place(db, [r["id"] for r in rows])
    return {r["id"] for r in rows if stored.get(r["id"]) != (*(r[c] for c in _TIME_AND_PLACE), r["backfill"])}


def mention_shift(db: sqlite_utils.Database, mention_id: int) -> dict[str, Any] | None:
    """For the inbox: the mention's estimate (window, basis, phrase), shifts with weights, and incident."""
    estimate = shifts_store.mention_estimate(db, mention_id)
    if estimate is None:
        return None
    estimate["shifts"] = shifts_store.mention_attributions(db, mention_id)
    estimate["incident"] = shifts_store.mention_incident(db, mention_id)
    return estimate
