"""Text for a terminal: mention text made safe to print, shortened to columns, times and SLA clocks in words."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# Bidi overrides and isolates: they reorder what the terminal shows after them.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_safe(text: str | None) -> str:
    """Mention text fit for a terminal: control characters (escape sequences), other than line breaks and
    tabs, and bidi overrides removed. Mention text comes from strangers."""
    return "".join(ch for ch in (text or "") if ch in "\n\t" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI))


def _columns(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1  # Chinese takes two terminal columns


def shorten(text: str | None, width: int) -> str:
    """One line of at most ``width`` terminal columns, cut at a word boundary and marked with "…"."""
    line = " ".join(terminal_safe(text).split())
    if sum(map(_columns, line)) <= width:
        return line
    end = used = 0
    while used + _columns(line[end]) <= width - 1:  # room for the "…"
        used += _columns(line[end])
        end += 1
    cut = line[:end]
    space = cut.rfind(" ")
    # Back to the last word boundary, unless the cut already is one, or going back would throw away
    # most of the line (a long URL, or Chinese text, which has no spaces).
    if line[end] != " " and space >= len(cut) // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def sla_words(item: dict, now: datetime) -> str:
    """The item's SLA clock in words: "due in 25 min", "3.5 h overdue", "no clock" (untimed), "-" (closed).

    The words come from ``sla_clock``, which the inbox also uses, so the two never drift apart."""
    from monitor.queue.listing import sla_clock

    status, words = sla_clock(item, now)
    if status == "closed":
        return "-"
    if status == "no_clock":
        return "?" if item.get("sla_due_at") else "no clock"  # a damaged row costs only its own column
    return words


def local_time(value: str | datetime | None, zone_name: str) -> str:
    """A stored UTC time as local wall time with the zone's abbreviation, e.g. "2026-11-26 08:12 EST"."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return terminal_safe(str(value))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M %Z")
