"""What the inbox pages show beside the queue's rows: one time format, SLA clocks in words, platform names
and icons, each platform's reply limit, and the tabs and chips that filter the list.

Everything that ends up in HTML from here is built with ``Markup.format`` (arguments escaped) or left to
Jinja's autoescape: mention text, authors and URLs are written by strangers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup

from monitor.queue.channels import channel_for, platform_name
from monitor.queue.listing import STATES, InboxCounts
from monitor.web.dashboard_data import topic_name

__all__ = [
    "PLATFORMS", "Tab", "day", "flag_name", "platform", "reply_limit", "tabs", "time_filter", "topic_name", "words",
]  # fmt: skip

# Source type → (what people call the platform, icon file under static/icons/). The icon is decoration
# (a CSS background); the name is always in the page for screen readers and in the tooltip.
PLATFORMS = {
    "reddit": ("Reddit", "reddit"),
    "schema_org": ("Review site", "review"),
    "app_store": ("App Store", "app_store"),
    "app_store_connect": ("App Store", "app_store"),
    "google_places": ("Google", "google"),
    "google_business": ("Google", "google"),
    "google_play": ("Google Play", "google_play"),
    "yelp": ("Yelp", "yelp"),
    "trustpilot": ("Trustpilot", "trustpilot"),
    "hackernews": ("Hacker News", "hackernews"),
    "mastodon": ("Mastodon", "mastodon"),
    "bluesky": ("Bluesky", "bluesky"),
    "feed": ("News and blogs", "feed"),
}
ICONS = {icon for _name, icon in PLATFORMS.values()} | {"other"}
TIME_FORMAT = "%a %d %b %H:%M %Z"  # the dashboards' format too (dashboards.dash_time)
TIME_FORMAT_YEAR = "%a %d %b %Y %H:%M %Z"  # a time in another year says which

# Urgency flags and classifier labels as words (topics: dashboard_data.topic_name).
FLAG_NAMES = {"safety_health": "Safety or health", "legal_threat": "Legal threat", "churn_threat": "May leave us",
              "question": "Question", "high_reach": "High reach"}  # fmt: skip


def platform(source_type: str | None) -> tuple[str, str]:
    """(name, icon) of a source type; an unknown or unconfigured one is "Other"."""
    return PLATFORMS.get(source_type or "", ("Other", "other"))


def words(name: str | None, names: dict[str, str] | None = None) -> str:
    """A flag, label or state as words: the name given in ``names``, else "Unclassified language" for
    ``unclassified_language``."""
    if not name:
        return ""
    return (names or {}).get(name) or name.replace("_", " ").strip().capitalize()


def flag_name(flag: str) -> str:
    return words(flag, FLAG_NAMES)


def day(value: str | None) -> str:
    """A calendar day as stored ("2026-11-19") the way the times read: "Thu 19 Nov 2026"."""
    try:
        return date.fromisoformat(value or "").strftime("%a %d %b %Y")
    except ValueError:
        return value or ""


def reply_limit(source_type: str | None) -> tuple[int | None, str]:
    """The platform's reply length limit and its name, also where the tool cannot post there itself (the
    person then pastes the reply on the platform, under the same limit); None where no limit is known."""
    channel = channel_for(source_type)
    if channel is None:
        return None, platform(source_type)[0]
    return channel.max_length, platform_name(channel)


def _parse(value: str | datetime | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_filter(zones: dict[str, str], default_zone: str) -> Callable[..., Markup]:
    """The one time filter of the inbox pages: local time (the location's zone, else ``[schedule] timezone``)
    in a ``<time>`` element whose tooltip is the UTC time; the year only when it is not this year's."""

    def when(
        value: str | datetime | None, location: str | None = None, none: str = "unknown", label: str | None = None
    ) -> Markup:
        """``label`` (an SLA clock's words) is shown instead of the time, which then goes in the tooltip."""
        moment = _parse(value)
        if moment is None:
            return Markup("{}").format(value or none)  # junk from a source stays text
        zone = ZoneInfo(zones.get(location or "", default_zone))
        local = moment.astimezone(zone)
        shown = local.strftime(TIME_FORMAT if local.year == datetime.now(zone).year else TIME_FORMAT_YEAR)
        utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        title = f"due {shown} · {utc}" if label else utc
        return Markup('<time datetime="{}" title="{}">{}</time>').format(
            moment.astimezone(UTC).isoformat(), title, label or shown
        )

    return when


@dataclass
class Tab:
    key: str
    label: str
    count: int | None
    url: str
    active: bool
    capped: bool = False


STATE_LABELS = {"open": "Open", "new": "New", "assigned": "Assigned", "replied": "Replied", "dismissed": "Dismissed"}
SLA_LABELS = {"overdue": "Overdue", "due_soon": "Due soon", "on_time": "On time", "no_clock": "No clock"}


def tabs(
    counts: InboxCounts, state: str, sla: str | None, url: Callable[..., str], filters: dict[str, str]
) -> tuple[list[Tab], list[Tab]]:
    """The state tabs and the SLA chips, each a link that keeps the other filters. The SLA chips only
    apply to open items, so a handled state's link drops the SLA filter."""
    others = {k: v for k, v in filters.items() if k != "sla"}
    open_count = sum(counts.states.get(s) or 0 for s in ("new", "assigned"))
    state_tabs = []
    for key in ("open", *STATES):
        count = open_count if key == "open" else counts.states.get(key)
        keep = filters if key in ("open", "new", "assigned") else others
        state_tabs.append(Tab(key, STATE_LABELS[key], count, url(state=key, **keep), key == state,
                              key in counts.capped))  # fmt: skip
    sla_tabs = [
        Tab(key, SLA_LABELS[key], n, url(state=state, **(others if key == sla else {**others, "sla": key})),
            key == sla)
        for key, n in counts.sla.items()
    ]  # fmt: skip
    return state_tabs, sla_tabs
