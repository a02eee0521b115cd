"""Wall-clock time in a location's zone to UTC, with the DST rules the shift report relies on.

* A local time that does not exist (the spring-forward gap) means the first valid
  instant after it, i.e. the moment the clocks jump: a shift "starting 02:30" on that
  night starts at 03:00 local.
* A local time that happens twice (the fall-back repeat) means its first occurrence
  (``fold=0``): a shift starting 01:30 starts at the first 01:30.

Both rules keep wall → UTC monotone, so shifts that touch in wall time touch in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive local wall-clock time → aware UTC, by the rules above."""
    wall = wall.replace(tzinfo=None)
    candidate = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if candidate.astimezone(tz).replace(tzinfo=None) == wall:
        return candidate
    # In a gap fold=0 lands after the jump and fold=1 before it; bisect to the jump itself.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = int(before.timestamp()), int(candidate.timestamp())
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def utc_to_local(moment: datetime, tz: ZoneInfo) -> datetime:
    """An aware instant → naive local wall-clock time."""
    return moment.astimezone(tz).replace(tzinfo=None)


def parse_utc(text: str | None) -> datetime | None:
    """A stored ISO timestamp → aware UTC (naive values are UTC by the store's contract)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # "0001-01-01T00:00+05:00" is before the first UTC instant
        return None


# Times a post or a visit can really have. Outside them a stored time is junk (or hostile), and the
# calendar's edges are near enough that local time, shift occurrences or "yesterday" would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def plausible(moment: datetime | None) -> bool:
    """Whether an aware ``moment`` is a time a post or a visit can have (see EARLIEST, LATEST)."""
    return moment is not None and EARLIEST <= moment < LATEST


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def from_epoch(seconds: int | float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds))
