"""Numbers, times and names as a store manager reads them, for every format of the digest.

Counts are whole numbers ("about 12" when the store's figure is a weighted estimate); proportions and
intervals are words ("about 1 in 3 mentions a complaint, clearly above the other shifts"); times are
local to ``[schedule] timezone`` in one format, the zone named once in the header; topics and labels
are names, not identifiers.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.queue.metrics import human_minutes
from monitor.web.dashboard_data import in_words, topic_name

__all__ = ["human_minutes", "topic_name"]

LABEL_NAMES = {
    "complaint": "Complaints",
    "neutral": "Neutral",
    "praise": "Praise",
    "unclassified_language": "Language not covered",
    "unclassified": "Not yet classified",
}
LABEL_ORDER = tuple(LABEL_NAMES)
TIME_FORMAT = "%a %d %b %H:%M"  # the one format for a moment; the zone is named in the header
DAY_FORMAT = "%A %d %B %Y"

_SPACE = re.compile(r"\s+")


def label_name(label: str) -> str:
    """A label as people say it: "Language not covered", not ``unclassified_language``."""
    return LABEL_NAMES.get(label) or label.replace("_", " ").strip().capitalize()


def one_line(text: Any) -> str:
    """Mention text, names and ids on one line (a newline in an author name must not start a new line)."""
    return _SPACE.sub(" ", "" if text is None else str(text)).strip()


def whole(value: float | int | None) -> str:
    """A count as a whole number; "about 12" when the figure is an estimate (shifts weigh a mention by
    how likely it falls in each shift, so a shift can hold 11.6 complaints)."""
    if value is None:
        return "0"
    rounded = round(float(value))
    return str(rounded) if abs(float(value) - rounded) < 0.01 else f"about {rounded}"


def plural(value: float | int | None, word: str, words: str | None = None) -> str:
    """``whole(value)`` and the word in the right number: "1 complaint", "about 12 complaints"."""
    text = whole(value)
    return f"{text} {word if text in ('1', 'about 1') else (words or word + 's')}"


def local_time(value: str | datetime | None, zone: ZoneInfo) -> str:
    """A stored UTC time in the digest's zone: "Wed 25 Nov 14:05"."""
    if not value:
        return "–"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(zone).strftime(TIME_FORMAT)


def local_clock(value: str | datetime | None, zone: ZoneInfo) -> str:
    """Just the local hour and minute ("17:05"), for times on the digest's own day."""
    if not value:
        return "–"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(zone).strftime("%H:%M")


def day_name(day: date) -> str:
    """The day in full: "Wednesday 25 November 2026"."""
    return day.strftime(DAY_FORMAT)


def overdue_by(due: str | None, now: datetime) -> str:
    """How late a stored due time is: "3.5 h overdue"."""
    if not due:
        return "overdue"
    when = datetime.fromisoformat(due)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return f"{human_minutes((now - when).total_seconds() / 60)} overdue"


def shift_verdict(row: dict[str, Any]) -> str:
    """How a shift compares with the location's other shifts, in words; the flag test decides."""
    if row["shift"] == "off-shift":
        return "outside the configured shifts"
    if row.get("flagged"):
        return "clearly above the other shifts"
    if row.get("p_value") is None:
        return "too few mentions to compare with the other shifts"
    return "not clearly different from the other shifts"


def shift_sentence(row: dict[str, Any]) -> str:
    """A shift's week in words: "about 12 complaints in 30 mentions (about 2 in 5)", then the verdict where
    the flag test could judge: "clearly above the other shifts" or "not clearly different from the other shifts"."""
    if not row["mentions"]:
        return "no mentions"
    mentions = plural(row["mentions"], "mention")
    if round(row["complaints"] or 0) == 0:
        return f"no complaints in {mentions}"
    share = in_words(row["rate"]).replace("all", "every one")
    text = f"{plural(row['complaints'], 'complaint')} in {mentions} ({share})"
    verdict = shift_verdict(row)
    return text if verdict.startswith(("too few", "outside")) else f"{text}, {verdict}"


def replies_sentence(metrics: Any) -> str:
    """The team's replies as one paragraph: answered, median first response, SLA breaches, customers won back."""
    due = metrics.items - metrics.dismissed
    parts = [f"{metrics.replied} of {plural(due, 'item')} answered" if due else "No items to answer in these days"]
    if due and metrics.response_rate is not None:
        parts[0] += f" ({round(metrics.response_rate * 100)} %)"
    if metrics.median_first_response_minutes is not None:
        parts.append(f"Median first response: {human_minutes(metrics.median_first_response_minutes)}")
    breaches = plural(metrics.sla_breaches, "SLA breach", "SLA breaches")
    parts.append(f"{breaches} ({metrics.breached_open} still open)" if metrics.sla_breaches else breaches)
    if metrics.recoveries.get("recovered"):
        parts.append(f"{plural(metrics.recoveries['recovered'], 'customer')} won back after our reply")
    return ". ".join(parts) + "."


def change_words(now: int, before: int) -> str:
    """The change on the day before: "up 4 on the day before", "down 2 …", "as many as the day before"."""
    if now == before:
        return "as many as the day before"
    return f"up {now - before} on the day before" if now > before else f"down {before - now} on the day before"


def net_words(value: float | None) -> str:
    """Net sentiment (praise minus complaints, per 100 classified mentions) as a signed whole number."""
    if value is None:
        return "no data"
    rounded = round(value)
    return f"+{rounded}" if rounded > 0 else str(rounded)
