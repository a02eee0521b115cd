"""A mention's incident time: a UTC window and the basis it rests on.

In order of trust: the platform's experience/visit date (``experienced_at``), narrowed by
a time of day in the text when the platform gives only a date; explicit time expressions
in the text (``timeexpr``); otherwise the visit-to-post lag: the visit happened within
``lag`` before the post. The basis and the phrase are kept so the inbox can say *why* a
mention was put on a shift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.shifts.localtime import EARLIEST, LATEST, local_to_utc, plausible, utc_to_local
from monitor.shifts.timeexpr import find_time_of_day, find_time_window

PLATFORM = "platform"
PLATFORM_TEXT = "platform+text"
TEXT = "text"
LAG = "lag"

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Estimate:
    start: datetime  # aware UTC
    end: datetime  # aware UTC; equal to start for a point estimate
    basis: str  # platform | platform+text | text | lag
    detail: str  # the phrase or value the window came from, for display


def date_order_for(timezone: str) -> str:
    """How a location writes 3/4: month first in the Americas' US-style zones, day first elsewhere."""
    return "MDY" if timezone.startswith(("America/", "US/", "Pacific/Honolulu")) else "DMY"


def _platform(experienced_at: str, posted: datetime, tz: ZoneInfo, text: str) -> Estimate | None:
    value = experienced_at.strip()
    if _DATE_ONLY.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        if not EARLIEST.date() <= day < LATEST.date():
            return None  # 0001-01-01 or 9999-12-31: not a visit date (and local midnight would overflow)
        midnight = datetime.combine(day, datetime.min.time())
        start_min, end_min, basis, detail = 0, 1440, PLATFORM, f"visit date {value}"
        if found := find_time_of_day(text):
            (start_min, end_min), phrase = found
            basis, detail = PLATFORM_TEXT, f"visit date {value} + {phrase}"
        start = local_to_utc(midnight + timedelta(minutes=start_min), tz)
        end = local_to_utc(midnight + timedelta(minutes=end_min), tz)
        end = min(end, posted)
        return Estimate(min(start, end), end, basis, detail)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Checked on the naive value first: converting a time at the calendar's edge would overflow.
    if not plausible(moment.replace(tzinfo=UTC)):
        return None
    # A platform datetime without an offset is local wall time at the location.
    moment = local_to_utc(moment, tz) if moment.tzinfo is None else moment.astimezone(UTC)
    return Estimate(moment, moment, PLATFORM, f"visit time {value}")


def estimate_incident(
    posted: datetime,
    tz: ZoneInfo,
    lag: timedelta,
    text: str = "",
    experienced_at: str | None = None,
) -> Estimate:
    """The incident window for one mention posted at ``posted`` (aware) at a location in ``tz``.

    Raises ValueError for a ``posted`` outside the times a post can have (``localtime.plausible``);
    an implausible ``experienced_at`` is ignored.
    """
    posted = posted.astimezone(UTC)
    if not plausible(posted):
        raise ValueError(f"post time {posted.isoformat()} is not a real post time")
    if experienced_at:
        estimate = _platform(experienced_at, posted, tz, text or "")
        if estimate is not None:
            return estimate
    local_post = utc_to_local(posted, tz)
    found = find_time_window(text or "", local_post, date_order_for(tz.key))
    if found is not None and found.before_post is not None:
        return Estimate(posted - found.before_post[0], posted - found.before_post[1], TEXT, found.detail)
    if found is not None:
        start, end = local_to_utc(found.start, tz), local_to_utc(found.end, tz)
        end = min(end, posted)
        return Estimate(min(start, end), end, TEXT, found.detail)
    return Estimate(posted - lag, posted, LAG, f"visit assumed within {_format_lag(lag)} before the post")


def _format_lag(lag: timedelta) -> str:
    seconds = int(lag.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
