"""Incident-time estimation: real-world phrasings, each with the window it must give."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.shifts.estimate import LAG, PLATFORM, PLATFORM_TEXT, TEXT, estimate_incident
from monitor.shifts.localtime import local_to_utc, zone
from monitor.shifts.timeexpr import find_time_of_day, find_time_window

NY = zone("America/New_York")
LONDON = zone("Europe/London")


def t(day: int, hour: int, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute)


TUE = t(10, 9, 15)  # Tuesday 10 March 2026, 09:15 local; Sunday was the 8th
TUE_AFTERNOON = t(10, 15, 0)

# (text, post time as local wall clock, expected local start, expected local end)
ENGLISH = [
    ("Last night the barista was rude to my daughter", TUE, t(9, 18), t(10, 2)),
    ("This morning around 9 my order was wrong twice", TUE, t(10, 8, 30), TUE),
    ("Yesterday at lunch the line was out the door", TUE, t(9, 11, 30), t(9, 14)),
    ("Sunday brunch was a total mess, 40 min for eggs", TUE, t(8, 10), t(8, 14)),
    ("At 11pm they told us they were closing early", TUE, t(9, 23), t(9, 23, 30)),
    ("Ordered 2 hours ago and still no drink", TUE, t(10, 6, 45), t(10, 7, 45)),
    ("I've been waiting 25 minutes for a latte", TUE, t(10, 8, 50), TUE),
    ("On March 3rd the latte was cold", TUE, t(3, 0), t(4, 0)),
    ("Between 2 and 4pm on Saturday nobody cleaned the tables", TUE, t(7, 14), t(7, 16)),
    ("Came in late last night around 1am, floor was filthy", TUE, t(10, 0, 30), t(10, 1, 30)),
    ("Came in yesterday and the espresso machine was broken", TUE, t(9, 0), t(10, 0)),
    ("Last Tuesday the manager yelled at a customer", TUE, t(3, 0), t(4, 0)),
    ("Around 7:30 this morning the drive-thru was closed", TUE, t(10, 7), t(10, 8)),
    ("At midnight the door was already locked", TUE, t(10, 0), t(10, 0, 30)),
    ("Over the weekend the bathrooms were disgusting", TUE, t(7, 0), t(9, 0)),
    ("3 days ago I got food poisoning from a muffin", TUE, t(7, 0), t(8, 0)),
    ("My order at 3:15 was wrong", TUE, t(9, 15, 15), t(9, 15, 45)),
    ("We were there at about 8 and it was chaos", TUE, t(10, 7, 30), t(10, 8, 30)),
    ("Ordered at 8am, got it at 8:40", TUE, t(10, 8), t(10, 8, 30)),
    ("Saturday night the music was way too loud", TUE, t(7, 18), t(8, 2)),
    ("Yesterday afternoon the cashier ignored us", TUE, t(9, 12), t(9, 17)),
    ("yesterday evening the place was understaffed", TUE, t(9, 17), t(9, 22)),
    ("Went for dinner yesterday, cold food", TUE, t(9, 17), t(9, 21)),
    ("This afternoon the wifi was down", TUE_AFTERNOON, t(10, 12), TUE_AFTERNOON),
    ("Just now a staff member sneezed on the pastries", TUE, t(10, 8, 45), TUE),
    ("An hour ago I asked for oat milk, still nothing", TUE, t(10, 7, 45), t(10, 8, 45)),
    ("Half an hour ago the card machine ate my card", TUE, t(10, 8, 35), t(10, 8, 55)),
    ("20 minutes ago the barista dropped my cup", TUE, t(10, 8, 45), t(10, 9, 5)),
    ("The day before yesterday the coffee tasted burnt", TUE, t(8, 0), t(9, 0)),
    ("Friday morning rush was a disaster", TUE, t(6, 6), t(6, 12)),
    ("Last Friday at 7pm they ran out of milk", TUE, t(6, 19), t(6, 19, 30)),
    ("Around noon yesterday the queue barely moved", TUE, t(9, 11, 30), t(9, 12, 30)),
    ("Tonight the staff were so rude", t(10, 22, 40), t(10, 18), t(10, 22, 40)),
    ("on 3/7 my mobile order was never made", TUE, t(7, 0), t(8, 0)),
    ("Dec 24th visit: they forgot half the order", TUE, t(24, 0, month=12, year=2025), t(25, 0, month=12, year=2025)),
    ("Happy hour yesterday was a joke", TUE, t(9, 16), t(9, 19)),
    ("We stopped by at 5 pm and waited forever", TUE, t(9, 17), t(9, 17, 30)),
    ("This weekend the staff were lovely but slow", t(8, 20), t(7, 0), t(8, 20)),
    ("Sign says open from 5am. At 5:20 the shutters were still down", TUE, t(10, 5, 20), t(10, 5, 50)),
    ("Late evening, two employees were arguing loudly", TUE, t(9, 20), t(9, 23)),
    ("Yesterday at lunch I was overcharged, still waiting on a refund", TUE, t(9, 11, 30), t(9, 14)),
    # posted just after midnight
    ("Last night they closed 30 minutes early", t(10, 0, 20), t(9, 18), t(10, 0, 20)),
    ("At 11:45pm the lights went off on us", t(10, 0, 20), t(9, 23, 45), t(10, 0, 15)),
    ("20 minutes ago the alarm went off", t(10, 0, 10), t(9, 23, 40), t(10, 0, 0)),
    ("Tonight's barista was amazing, no complaints", t(9, 23, 55), t(9, 18), t(9, 23, 55)),
]

CHINESE = [
    ("昨晚服务很差，等了很久", TUE, t(9, 18), t(10, 2)),
    ("中午排队很久，店员态度不好", TUE_AFTERNOON, t(10, 11, 30), t(10, 14)),
    ("昨天晚上8点去的，咖啡是凉的", TUE, t(9, 20), t(9, 20, 30)),
    ("下午三点半咖啡是凉的", TUE, t(9, 15, 30), t(9, 16)),
    ("上周日早午餐太慢了", TUE, t(8, 10), t(8, 14)),
    ("3月5日在这里买的蛋糕坏了", TUE, t(5, 0), t(6, 0)),
    ("十点左右到店，没有座位", TUE, t(9, 21, 30), t(9, 22, 30)),
    ("半小时前点的单还没做好", TUE, t(10, 8, 35), t(10, 8, 55)),
    ("今天早上的拿铁太难喝了", TUE, t(10, 6), TUE),
    ("昨天下午店里很脏", TUE, t(9, 12), t(9, 18)),
    ("已经等了二十分钟了", TUE, t(10, 8, 55), TUE),
    ("两个小时前买的三明治是坏的", TUE, t(10, 6, 45), t(10, 7, 45)),
]

NO_TIME = [
    "Waited 40 minutes for a flat white",
    "2 stars, would not come back",
    "There were 5 people in line and one barista",
    "Rated it at 1 star because of the attitude",
    "The staff were rude and the coffee was cold",
    "服务员态度很差，咖啡也不好喝",
    "Good morning! Just a note that your staff were rude",
    "At 1 point the manager walked out",
    "About 3 baristas for a full shop",
    "I come here every morning and it keeps getting worse",
    "现在的服务越来越差了",
    "能不能早点开门",
    "Still waiting for someone to sort it out",
    "Open till 9pm, closes at 10 on Fridays",
]


@pytest.mark.parametrize(
    ("text", "posted", "start", "end"), ENGLISH + CHINESE, ids=[c[0][:40] for c in ENGLISH + CHINESE]
)
def test_time_expression_windows(text, posted, start, end):
    window = find_time_window(text, posted, "MDY")
    assert window is not None, text
    assert (window.start, window.end) == (start, end), window.detail
    assert window.detail  # the phrase is kept so the inbox can say why


def test_there_are_enough_cases():
    assert len(ENGLISH) >= 30
    assert len(CHINESE) >= 5


@pytest.mark.parametrize("text", NO_TIME)
def test_text_without_a_time_gives_nothing(text):
    assert find_time_window(text, TUE) is None


def test_day_first_dates_outside_the_us():
    window = find_time_window("on 3/7 my order was wrong", TUE, "DMY")
    assert (window.start, window.end) == (datetime(2025, 7, 3), datetime(2025, 7, 4))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_fallback_is_the_lag_before_the_post():
    posted = utc(2026, 3, 10, 14, 0)
    estimate = estimate_incident(posted, NY, timedelta(hours=2), "The barista was rude")
    assert (estimate.start, estimate.end, estimate.basis) == (posted - timedelta(hours=2), posted, LAG)


def test_platform_visit_date_is_the_local_day():
    estimate = estimate_incident(utc(2026, 3, 12, 14), NY, timedelta(hours=2), "rude staff", "2026-03-10")
    assert (estimate.start, estimate.end, estimate.basis) == (utc(2026, 3, 10, 4), utc(2026, 3, 11, 4), PLATFORM)


def test_platform_visit_date_narrowed_by_a_time_of_day_in_the_text():
    estimate = estimate_incident(utc(2026, 3, 12, 14), NY, timedelta(hours=2), "we came for lunch", "2026-03-10")
    assert (estimate.start, estimate.end, estimate.basis) == (
        utc(2026, 3, 10, 15, 30),
        utc(2026, 3, 10, 18),
        PLATFORM_TEXT,
    )
    assert "lunch" in estimate.detail


def test_platform_datetime_beats_the_text():
    estimate = estimate_incident(utc(2026, 3, 12, 14), NY, timedelta(hours=2), "last night", "2026-03-10T19:30:00")
    assert (estimate.start, estimate.end, estimate.basis) == (
        utc(2026, 3, 10, 23, 30),
        utc(2026, 3, 10, 23, 30),
        PLATFORM,
    )
    aware = estimate_incident(utc(2026, 3, 12, 14), NY, timedelta(hours=2), "", "2026-03-10T19:30:00Z")
    assert aware.start == utc(2026, 3, 10, 19, 30)


def test_time_of_day_only():
    assert find_time_of_day("came in the evening around 8")[0] == (19 * 60 + 30, 20 * 60 + 30)
    assert find_time_of_day("yesterday at lunch") is None  # names a day: not a time of day for the platform's date
    assert find_time_of_day("so slow") is None


# --------------------------------------------------------------- DST: posts and windows across the change
# New York springs forward on 2026-03-08 (02:00 -> 03:00) and falls back on 2026-11-01 (02:00 -> 01:00);
# London on 2026-03-29 (01:00 -> 02:00) and 2026-10-25 (02:00 -> 01:00).

DST_CASES = [
    # (zone, post UTC, text, expected start UTC, expected end UTC)
    # "last night" ends at 02:00 on the spring-forward night: 02:00 does not exist, so 03:00 EDT (07:00Z).
    (NY, utc(2026, 3, 8, 13), "last night they were rude", utc(2026, 3, 7, 23), utc(2026, 3, 8, 7)),
    # "2 hours ago" is elapsed time, not wall time: 03:30 EDT minus 2 h is 00:30 EST.
    (NY, utc(2026, 3, 8, 7, 30), "2 hours ago", utc(2026, 3, 8, 5), utc(2026, 3, 8, 6)),
    # Fall back: "at 1:30am" means the first 01:30 (EDT, 05:30Z); its half hour ends at 02:00 EST (07:00Z).
    (NY, utc(2026, 11, 1, 14), "at 1:30am the music was still blasting", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7)),
    (NY, utc(2026, 11, 1, 14), "last night was a mess", utc(2026, 10, 31, 22), utc(2026, 11, 1, 7)),
    (LONDON, utc(2026, 10, 25, 10), "last night was a mess", utc(2026, 10, 24, 17), utc(2026, 10, 25, 2)),
    (LONDON, utc(2026, 3, 29, 10), "last night was a mess", utc(2026, 3, 28, 18), utc(2026, 3, 29, 1)),
    (LONDON, utc(2026, 3, 29, 10), "this morning around 9", utc(2026, 3, 29, 7, 30), utc(2026, 3, 29, 8, 30)),
    (LONDON, utc(2026, 3, 28, 23, 50), "20 minutes ago", utc(2026, 3, 28, 23, 20), utc(2026, 3, 28, 23, 40)),
    # Posted 00:30 BST on the fall-back night, which is still Saturday 23:30 UTC.
    (
        LONDON,
        utc(2026, 10, 24, 23, 30),
        "tonight the bar staff ignored us",
        utc(2026, 10, 24, 17),
        utc(2026, 10, 24, 23, 30),
    ),
]


@pytest.mark.parametrize(("tz", "posted", "text", "start", "end"), DST_CASES)
def test_windows_across_dst_changes(tz, posted, text, start, end):
    estimate = estimate_incident(posted, tz, timedelta(hours=2), text)
    assert estimate.basis == TEXT
    assert (estimate.start, estimate.end) == (start, end)


def test_local_to_utc_rules():
    # gap: the first valid instant after; repeat: the first occurrence
    assert local_to_utc(datetime(2026, 3, 8, 2, 30), NY) == utc(2026, 3, 8, 7)
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NY) == utc(2026, 11, 1, 5, 30)
    assert local_to_utc(datetime(2026, 3, 29, 1, 15), LONDON) == utc(2026, 3, 29, 1)
    assert local_to_utc(datetime(2026, 10, 25, 1, 15), LONDON) == utc(2026, 10, 25, 0, 15)


_WORDS = st.sampled_from(
    ["last", "night", "at", "around", "9", "11pm", "3:15", "yesterday", "sunday", "brunch", "ago", "2", "hours",
     "between", "and", "4pm", "tonight", "昨晚", "中午", "8点", "上周日", "半小时前", "3月5日", "on", "march", "31st",
     "2/30", "midnight", "noon", "this", "morning", "weekend", "days", "the", "rude", "😀", "\x00", "‮", "2月29日",
     "feb 29", "2030年3月1日", "13月40日", "99 days ago", "from", "to", "12am"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=200), st.lists(_WORDS, max_size=12).map(" ".join)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31)),
)
def test_any_text_gives_a_window_that_ends_by_the_post(text, posted):
    window = find_time_window(text, posted)
    if window is not None:
        assert window.start <= window.end <= posted
    estimate = estimate_incident(posted.replace(tzinfo=UTC), NY, timedelta(hours=2), text)
    assert estimate.start <= estimate.end <= posted.replace(tzinfo=UTC)
