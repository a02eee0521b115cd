"""Share incident windows between shift occurrences by overlap, vectorised.

Each location's shifts are materialised once per date range as sorted arrays of
UTC epoch seconds (one row per shift occurrence, keyed by its *start* date, so an
overnight shift belongs to the day it starts). Shifts of a location never overlap
(the config refuses it), so the occurrences are disjoint and sorted both by start
and by end, and a window's overlapping occurrences are one contiguous run found
with two ``searchsorted`` calls.

A window's weight on an occurrence is overlap / window length; what no shift covers
goes to ``OFF_SHIFT``. A point estimate counts as a one-second window, so it goes
whole to the shift containing it (start inclusive, end exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from monitor.config import Location
from monitor.shifts.localtime import epoch, local_to_utc, zone

OFF_SHIFT = "off-shift"


@dataclass
class Occurrences:
    """One location's shift occurrences over ``[first_day, last_day]`` (local dates)."""

    location: Location
    first_day: date
    start: np.ndarray  # int64 epoch seconds, sorted
    end: np.ndarray  # int64 epoch seconds, sorted
    shift: np.ndarray  # int32 index into location.shifts
    day: np.ndarray  # int32 days since first_day of the occurrence's start date
    midnights: np.ndarray  # int64 epoch seconds of each local midnight from first_day, for off-shift dates

    def shift_name(self, index: int) -> str:
        return OFF_SHIFT if index < 0 else self.location.shifts[index].name


def occurrences(location: Location, first_day: date, last_day: date) -> Occurrences:
    """Materialise the location's shifts for start dates ``first_day - 1`` … ``last_day``.

    The extra day in front catches the overnight shift that began the evening before.
    """
    tz = zone(location.timezone)
    first_day = first_day - timedelta(days=1)
    days = (last_day - first_day).days + 1
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        midnight = datetime.combine(day, datetime.min.time())
        for index, shift in enumerate(location.shifts):
            if day.weekday() not in shift.weekdays:
                continue
            start = epoch(local_to_utc(midnight + timedelta(minutes=shift.start), tz))
            end_day = midnight + timedelta(days=1 if shift.overnight else 0)
            end = epoch(local_to_utc(end_day + timedelta(minutes=shift.end), tz))
            if end > start:  # a shift wholly inside a spring-forward gap never happens
                rows.append((start, end, index, offset))
    rows.sort()
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    midnights = np.array(
        [
            epoch(local_to_utc(datetime.combine(first_day + timedelta(days=i), datetime.min.time()), tz))
            for i in range(days + 2)
        ],
        dtype=np.int64,
    )
    return Occurrences(
        location=location,
        first_day=first_day,
        start=table[:, 0].copy(),
        end=table[:, 1].copy(),
        shift=table[:, 2].astype(np.int32),
        day=table[:, 3].astype(np.int32),
        midnights=midnights,
    )


@dataclass
class Attribution:
    """Parallel arrays, one row per (window, shift occurrence or off-shift) pair."""

    row: np.ndarray  # index of the window in the input
    shift: np.ndarray  # index into location.shifts, -1 for off-shift
    day: np.ndarray  # days since Occurrences.first_day (shift start date, or local date of the window start)
    weight: np.ndarray  # float64, per window summing to 1


def attribute(occ: Occurrences, starts: np.ndarray, ends: np.ndarray) -> Attribution:
    """Attribute windows ``[starts, ends)`` (int64 epoch seconds) to ``occ``'s shift occurrences."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.maximum(np.asarray(ends, dtype=np.int64), starts + 1)
    n = len(starts)
    lo = np.searchsorted(occ.end, starts, side="right")
    hi = np.searchsorted(occ.start, ends, side="left")
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(n), counts)
    first = np.cumsum(counts) - counts
    idx = lo[rows] + (np.arange(len(rows)) - first[rows])
    overlap = np.minimum(ends[rows], occ.end[idx]) - np.maximum(starts[rows], occ.start[idx])
    length = (ends - starts).astype(np.float64)
    weight = overlap / length[rows]

    covered = np.bincount(rows, weights=weight, minlength=n)
    off = np.flatnonzero(covered < 1 - 1e-9)
    off_day = np.searchsorted(occ.midnights, starts[off], side="right") - 1
    return Attribution(
        row=np.concatenate([rows, off]),
        shift=np.concatenate([occ.shift[idx], np.full(len(off), -1, dtype=np.int32)]),
        day=np.concatenate([occ.day[idx], off_day.astype(np.int32)]),
        weight=np.concatenate([weight, 1 - covered[off]]),
    )
