"""Fuzzing the incident-time estimator (issue 11): time phrases in English and Chinese with hostile numbers,
post times across the whole calendar, every kind of time zone and platform visit dates at the calendar's edge.
``estimate_incident`` returns a window (start <= end, both aware) or raises ValueError for a post time no post
can have; ``find_time_window`` / ``find_time_of_day`` never raise.

``FUZZ_EXAMPLES=5000 pytest tests/faults/test_fuzz_timeexpr.py`` for the long version.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.shifts.estimate import estimate_incident
from monitor.shifts.localtime import plausible
from monitor.shifts.timeexpr import find_time_of_day, find_time_window
from tests.faults.hostile import EDGE_DATES, HOSTILE_TEXT

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 300,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

ZONES = ["UTC", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Europe/London", "America/St_Johns", "Asia/Shanghai", "Etc/GMT+12", "Etc/GMT-14",
         "America/Santiago"]  # fmt: skip
ODD_NUMBERS = [0, 12, 13, 24, 25, 31, 32, 60, 99, 2**31, 10**12, 10**30, 9999, 10001]
NUMBERS = st.one_of(st.integers(min_value=0, max_value=99), st.sampled_from(ODD_NUMBERS))
TEMPLATES = [
    "last night", "yesterday at {a}pm", "yesterday at {a}:{b}", "this morning", "tonight at {a}", "on {a}/{b}",
    "on {a}/{b}/{c}", "{a}/{b} at {c}:{a}am", "{a} hours ago", "{a} minutes ago", "{a} days ago", "{a} weeks ago",
    "last {day}", "on {day} at {a}pm", "around {a}ish", "between {a} and {b}pm", "at {a}:{b}{ampm}", "{a}{ampm}",
    "on {month} {a}", "{a} {month} {c}", "{month} {a}, {c} at {b}:{a}", "on the {a}th", "at noon", "at midnight",
    "昨晚", "昨天晚上{a}点", "今天早上{a}点{b}分", "上周{cnday}", "{a}月{b}日", "{a}小时前",
    "前天下午{cn}点", "{cn}点半",
]  # fmt: skip
CN_NUMBERS = ["十", "十二", "二十五", "九十九", "零"]
DAYS = ["monday", "friday", "sunday", "weekend", "tuesday night"]
MONTHS = ["jan", "february", "sept", "dec", "may"]


@st.composite
def phrases(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        template = draw(st.sampled_from(TEMPLATES))
        parts.append(template.format(
            a=draw(NUMBERS), b=draw(NUMBERS), c=draw(NUMBERS), day=draw(st.sampled_from(DAYS)),
            month=draw(st.sampled_from(MONTHS)), ampm=draw(st.sampled_from(["am", "pm", " a.m.", "", "PM"])),
            cnday=draw(st.sampled_from("一二三四五六日天")), cn=draw(st.sampled_from(CN_NUMBERS)),
        ))  # fmt: skip
    filler = draw(st.one_of(st.sampled_from(HOSTILE_TEXT[:9]), st.text(max_size=20)))
    return draw(st.sampled_from([" ", ", ", " and ", filler])).join(parts)


# Post times across the whole calendar (the estimator must refuse, not crash, outside plausible times).
posted = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([datetime(9999, 12, 31, 23, 30, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
                     datetime(8999, 12, 31, 23, 59, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
                     datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=14)))]),
)  # fmt: skip
lags = st.one_of(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3660)),
    st.sampled_from([timedelta(0), timedelta(days=1), timedelta(days=3660)]),
)  # config caps lags at 3660d
experienced = st.one_of(st.none(), st.sampled_from(EDGE_DATES), st.text(max_size=25),
                        st.dates().map(lambda d: d.isoformat()),
                        st.datetimes().map(lambda d: d.isoformat()))  # fmt: skip


@FUZZ
@given(text=phrases(), when=posted, zone=st.sampled_from(ZONES), lag=lags, visit=experienced)
def test_estimate_incident_returns_a_window_or_refuses_the_post_time(text, when, zone, lag, visit) -> None:
    tz = ZoneInfo(zone)
    try:
        estimate = estimate_incident(when, tz, lag, text, visit)
    except ValueError:
        assert not plausible(when.astimezone(UTC)), "ValueError for a plausible post time"
        return
    assert estimate.start.tzinfo is not None and estimate.end.tzinfo is not None
    assert estimate.start <= estimate.end, estimate


@FUZZ
@given(text=phrases(), when=st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(9000, 1, 2)),
       order=st.sampled_from(["MDY", "DMY"]))  # fmt: skip
def test_find_time_window_never_raises(text: str, when: datetime, order: str) -> None:
    """Local post times of plausible posts only: its one caller, estimate_incident, refuses the others first
    (year 1 would overflow "last night"), which the test above checks."""
    window = find_time_window(text, when, order)
    if window is not None and window.before_post is None:
        assert window.start <= window.end
    find_time_of_day(text)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    find_time_of_day(text)
    estimate_incident(datetime(2026, 11, 22, 12, tzinfo=UTC), ZoneInfo("America/New_York"), timedelta(days=1), text)
