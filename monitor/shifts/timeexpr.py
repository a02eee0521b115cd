"""Explicit time expressions in mention text (English and Chinese) → a local wall-clock window.

Everything is relative to the post time in the location's zone: "last night" in a review
posted Tuesday 09:00 is Monday 18:00 to Tuesday 02:00. The parser looks for four kinds of
clue and combines them:

* a relative moment ("2 hours ago", "just now", "been waiting 40 minutes", "半小时前");
* a day ("yesterday", "Sunday", "3 days ago", "on March 3", "昨天", "上周日", "3月5日");
* a part of the day ("this morning", "lunch", "brunch", "dinner", "中午", "晚上");
* a clock time ("at 11pm", "around 9", "between 2 and 4pm", "晚上8点", "十点左右").

A clock time beats a part of the day (which only decides am/pm); a day without a time
means the whole day; a time without a day means its latest occurrence before the post.
No window ever ends after the post. Vague phrases ("last week", "recently") are ignored:
the caller then falls back to the visit-to-post lag.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import dateparser

from monitor.shifts.timeclues import DAY, NIGHT, Clues, TextWindow
from monitor.shifts.timeexpr_zh import HAS_CJK, read_chinese

# Part-of-day ranges in minutes after midnight of the day they belong to; > DAY reaches into the next day.
_PARTS_EN: list[tuple[str, tuple[int, int]]] = [
    (r"late (?:last )?night|late at night|(?:in the )?(?:wee|small) hours", (22 * 60, 27 * 60)),
    (r"early (?:this )?morning", (5 * 60, 8 * 60)),
    (r"late (?:in the )?evening", (20 * 60, 23 * 60)),
    (r"brunch", (10 * 60, 14 * 60)),
    (r"breakfast", (6 * 60, 10 * 60 + 30)),
    (r"lunch(?:time)?|lunch rush", (11 * 60 + 30, 14 * 60)),
    (r"morning rush|morning", (6 * 60, 12 * 60)),
    (r"afternoon", (12 * 60, 17 * 60)),
    (r"after work", (17 * 60, 19 * 60)),
    (r"happy hour", (16 * 60, 19 * 60)),
    (r"dinner(?:time)?|supper", (17 * 60, 21 * 60)),
    (r"evening", (17 * 60, 22 * 60)),
    (r"night|overnight", (18 * 60, 26 * 60)),
]

_WEEKDAYS_EN = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "forty-five": 45, "fifty": 50, "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3,
}  # fmt: skip
_NUM_EN = r"(\d{1,3}|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True)) + r")"

_MONTHS = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"  # noqa: E501
_DATE_CANDIDATES = [
    re.compile(rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b(?:,?\s+\d{{4}})?"),
    re.compile(r"(?<![\d/])\d{1,2}/\d{1,2}(?:/(?:\d{4}|\d{2}))?(?![\d/])"),
]


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


# ------------------------------------------------------------------ English

_RE_WAITING = re.compile(
    rf"\b(?:been|still|are|am|'re|'m) waiting (?:here )?(?:for )?(?:over |about |almost |nearly |at least )?"
    rf"{_NUM_EN} (hours?|hrs?|minutes?|mins?)\b"
)
_RE_AGO = re.compile(rf"\b(half an hour|{_NUM_EN} (hours?|hrs?|minutes?|mins?)) ago\b")
_RE_NOW = re.compile(
    r"\b(just now|right now|as we speak|at the moment|currently (?:waiting|standing|sitting|in line)|"
    # "still waiting on a refund" is about later, not about being in the shop now
    r"still waiting(?!\s+(?:for|on)\s+(?:\w+\s+){0,2}?(?:refund|reply|response|call|callback|email|answer|someone|"
    r"anyone|them|news|update|credit|money))|"
    r"(?:i'm|i am|we're|we are) (?:standing |sitting |stuck )?(?:in line|in the queue|at the counter))\b"
)
_RE_DAY = re.compile(
    rf"\b(the day before yesterday|yesterday|last night|tonight|today|this (?:morning|afternoon|evening)|"
    rf"{_NUM_EN} days ago|(?:this|last|over the|on the) weekend)\b"
)
_RE_WEEKDAY = re.compile(
    r"\b(?:(last|this past|on|this)\s+)?(" + "|".join(_WEEKDAYS_EN) + r")\b"
)  # not "on Sundays": a habit
_RE_PART_EN = re.compile(r"\b(?:" + "|".join(f"({p})" for p, _ in _PARTS_EN) + r")\b")
_AMPM = r"(a\.?m\.?|p\.?m\.?)"
_APPROX = r"around|about|approximately|approx\.?|roughly|~"
_RE_CLOCK_MERIDIEM = re.compile(
    rf"(?:\b({_APPROX}|at|by|until|till)\s+)?\b(\d{{1,2}})(?::(\d{{2}}))?\s*{_AMPM}(?![a-z])"
)
# "at 9" is a time only when what follows is not a noun ("at 1 point", "about 3 baristas"): the next word must
# be punctuation, the end, or one of the small words that follow a time in a sentence.
_AFTER_CLOCK = (
    r"(?=\s*(?:$|[.,;:!?)\]-]|(?:the|and|but|so|then|in|on|last|this|yesterday|today|tonight|sharp|when|we|i|my|our|"
    r"they|it|there|with|for|to|or|a|an|at|o'?clock|ish|morning|evening|night|pm|am|everything|nobody|no|still|"
    r"was|were)\b))"
)
_RE_CLOCK_PREFIX = re.compile(
    rf"\b({_APPROX}|at|by)\s+(?:about\s+|around\s+)?(\d{{1,2}})(?::(\d{{2}}))?(?![:\d])(ish)?(?:\s*o'?clock)?{_AFTER_CLOCK}"
)
_RE_CLOCK_BARE = re.compile(r"(?<![\d:/.])\b([01]?\d|2[0-3]):([0-5]\d)\b(?!\s*(?:min|%))")
_RE_NOON = re.compile(rf"\b(?:(?:{_APPROX}|at)\s+)?(noon|midday|midnight)\b")
_RE_CLOCK_RANGE = re.compile(
    rf"\b(?:between|from)\s+(\d{{1,2}})(?::(\d{{2}}))?\s*{_AMPM}?\s*(?:and|to|until|till|-)\s*"
    rf"(\d{{1,2}})(?::(\d{{2}}))?\s*{_AMPM}?(?![\w:])"
)


def _meridiem(text: str | None) -> str | None:
    if not text:
        return None
    return "am" if text.startswith("a") else "pm"


def _english(text: str, posted: datetime, clues: Clues, date_order: str) -> None:
    if match := _RE_WAITING.search(text):
        amount = _number(match.group(1))
        unit = timedelta(hours=1) if match.group(2).startswith("h") else timedelta(minutes=1)
        clues.relative = (amount * unit, timedelta(0))
        clues.note(match)
        return
    if match := _RE_AGO.search(text):
        if match.group(1) == "half an hour":
            delta, slack = timedelta(minutes=30), timedelta(minutes=10)
        else:
            hours = match.group(3).startswith("h")
            delta = _number(match.group(2)) * (timedelta(hours=1) if hours else timedelta(minutes=1))
            slack = timedelta(minutes=30) if hours else timedelta(minutes=10)
        clues.relative = (delta + slack, max(delta - slack, timedelta(0)))
        clues.note(match)
        return
    if match := _RE_NOW.search(text):
        clues.relative = (timedelta(minutes=30), timedelta(0))
        clues.note(match)
        return

    if match := _RE_DAY.search(text):
        clues.note(match)
        phrase = match.group(1)
        if phrase == "the day before yesterday":
            clues.day_offset = 2
        elif phrase in ("yesterday", "last night"):
            clues.day_offset = 1
            clues.part = NIGHT if phrase == "last night" else None
        elif phrase.endswith("weekend"):
            clues.weekend = True
        elif phrase in ("today", "tonight") or phrase.startswith("this "):
            clues.day_offset = 0
            clues.part = NIGHT if phrase == "tonight" else None
        else:
            clues.day_offset = _number(match.group(2))
    if clues.day_offset is None and not clues.weekend:
        if match := _RE_WEEKDAY.search(text):
            clues.note(match)
            clues.weekday = (_WEEKDAYS_EN.index(match.group(2)), match.group(1) in ("last", "this past"))
        else:
            _explicit_date(text, posted, clues, date_order)

    if clues.part is None and (match := _RE_PART_EN.search(text)):
        index = next(i for i, g in enumerate(match.groups()) if g is not None)
        clues.part = _PARTS_EN[index][1]
        if not any(match.group(0) in phrase for _, phrase in clues.phrases):
            clues.note(match)

    if match := _RE_CLOCK_RANGE.search(text):
        h1, m1, ap1, h2, m2, ap2 = match.groups()
        ap1 = _meridiem(ap1) or (_meridiem(ap2) if int(h1) <= int(h2) else None)
        start = _pick_minute(int(h1), int(m1 or 0), ap1, clues)
        end = _pick_minute(int(h2), int(m2 or 0), _meridiem(ap2) or ap1, clues, after=start)
        if start is not None and end is not None and end > start:
            clues.clock_range = (start, end)
            clues.note(match)
            return
    meridiem_times = list(_RE_CLOCK_MERIDIEM.finditer(text))
    clues.hints = [
        (int(m.group(2)) % 12 + (12 if _meridiem(m.group(4)) == "pm" else 0)) * 60 + int(m.group(3) or 0)
        for m in meridiem_times
        if 1 <= int(m.group(2)) <= 12 and int(m.group(3) or 0) < 60
    ]
    # "open till 9pm" states opening hours, not when something happened.
    timed = (m for m in meridiem_times if m.group(1) not in ("until", "till") and not _opening_hours(text, m))
    if match := next(timed, None):
        hour, minute = int(match.group(2)), int(match.group(3) or 0)
        if 1 <= hour <= 12 and minute < 60:
            approx = bool(match.group(1)) and match.group(1) not in ("at", "by", "until", "till")
            clues.clock = (hour, minute, _meridiem(match.group(4)), approx)
            clues.note(match)
            return
    if match := _RE_NOON.search(text):
        approx = bool(match.group(0).split()[0] in ("around", "about", "approximately", "roughly", "~"))
        clues.clock = (12, 0, "pm", approx) if match.group(1) != "midnight" else (0, 0, "am", approx)
        clues.note(match)
        return
    timed = (m for m in _RE_CLOCK_PREFIX.finditer(text) if not _opening_hours(text, m))
    if match := next(timed, None):
        hour, minute = int(match.group(2)), int(match.group(3) or 0)
        if hour <= 23 and minute < 60 and (hour <= 12 or match.group(3)):
            approx = bool(re.search(_APPROX, match.group(0))) or bool(match.group(4))
            clues.clock = (hour, minute, None, approx)
            clues.note(match)
            return
    if match := _RE_CLOCK_BARE.search(text):
        clues.clock = (int(match.group(1)), int(match.group(2)), None, False)
        clues.note(match)


_OPENING = re.compile(r"\b(?:open|opens|opened|opening|close|closes|hours are|from|until|till)\s+(?:at\s+|from\s+)?$")


def _opening_hours(text: str, match: re.Match[str]) -> bool:
    """ "Open from 5am", "closes at 9": the shop's hours, not the time of the experience."""
    return bool(_OPENING.search(text[max(0, match.start() - 20) : match.start()]))


def _explicit_date(text: str, posted: datetime, clues: Clues, date_order: str) -> None:
    """Calendar dates ("on March 3rd", "3/14") through dateparser, which knows the many spellings."""
    for pattern in _DATE_CANDIDATES:
        match = pattern.search(text)
        if not match:
            continue
        parsed = dateparser.parse(
            match.group(0),
            languages=["en"],
            settings={
                "RELATIVE_BASE": posted,
                "PREFER_DATES_FROM": "past",
                "DATE_ORDER": date_order,
                "REQUIRE_PARTS": ["day", "month"],
            },
        )
        if parsed is None:
            continue
        day = parsed.date()
        if day > posted.date():  # a date without a year that has not come yet this year was last year's
            try:
                day = day.replace(year=day.year - 1)
            except ValueError:
                continue
        if (posted.date() - day).days > 366:
            continue
        clues.day = day
        clues.note(match)
        return


# ------------------------------------------------------------------ resolving

# Greetings and habits name a part of the day without saying when anything happened.
_NOT_A_TIME = re.compile(
    r"\b(?:good|every|each|most|some|other|weekday) (?:morning|afternoon|evening|night)s?\b|"
    r"\b(?:morning|afternoon|evening|night)s\b|\bday and night\b|\bnight and day\b|\bovernight oats\b"
)


def _normalise(text: str) -> str:
    return _NOT_A_TIME.sub(" ", re.sub(r"[’‘`]", "'", text.lower()))


def _pick_minute(hour: int, minute: int, meridiem: str | None, clues: Clues, after: int | None = None) -> int | None:
    """Minutes after the day's midnight for a clock time whose am/pm may be unknown.

    Candidates include the next day's early hours (25:00 = 01:00 the day after) so
    "last night around 1am" lands inside last night.
    """
    if meridiem == "am":
        bases = [hour % 12]
    elif meridiem == "pm":
        bases = [hour % 12 + 12]
    elif hour == 0 or hour > 12:
        bases = [hour]
    else:
        bases = [hour % 12, hour % 12 + 12]
    candidates = sorted({b * 60 + minute + extra for b in bases for extra in (0, DAY)})
    if after is not None:
        later = [c for c in candidates if c > after]
        return later[0] if later else None
    part = clues.part
    if part is not None:
        inside = [c for c in candidates if part[0] <= c <= part[1]]
        if inside:
            return inside[0]
        centre = (part[0] + part[1]) / 2
        return min(candidates, key=lambda c: abs(c - centre))
    if len(bases) == 1:
        return bases[0] * 60 + minute
    near = [c for c in candidates if c < DAY and any(abs(c - hint) <= 180 for hint in clues.hints)]
    if near:  # "open from 5am. At 5:20 the shutters were down": the am/pm of a nearby time
        return min(near, key=lambda c: min(abs(c - hint) for hint in clues.hints))
    if clues.day_offset is None and clues.day is None and clues.weekday is None:
        return None  # decided against the post time in _resolve
    # A coffee-shop guess for "yesterday at 8": 7-11 are mornings, 12-6 afternoons and evenings.
    return (hour if 7 <= hour <= 11 else hour % 12 + 12) * 60 + minute


def _resolve(clues: Clues, posted: datetime) -> tuple[datetime, datetime] | None:
    if clues.relative is not None:
        before_start, before_end = clues.relative
        return posted - before_start, posted - before_end

    minutes: tuple[int, int] | None = None
    if clues.clock_range is not None:
        minutes = clues.clock_range
    elif clues.clock is not None:
        hour, minute, meridiem, approx = clues.clock
        at = _pick_minute(hour, minute, meridiem, clues)
        if at is None:
            # am or pm unknown and no day: the most recent such time before the post, but not
            # 1-5 in the morning, which people write with "am" or "at night" when they mean it.
            now = posted.hour * 60 + posted.minute
            options = [o for o in ((hour % 12) * 60 + minute, (hour % 12 + 12) * 60 + minute) if o >= 6 * 60]
            at = min(options, key=lambda o: (now - o) % DAY)
        minutes = (at - 30, at + 30) if approx else (at, at + 30)
    elif clues.part is not None:
        minutes = clues.part

    midnight = datetime.combine(posted.date(), datetime.min.time())
    if clues.day is not None:
        day = datetime.combine(clues.day, datetime.min.time())
    elif clues.day_offset is not None:
        day = midnight - timedelta(days=clues.day_offset)
        if clues.day_offset == 0 and minutes and day + timedelta(minutes=minutes[0]) > posted and posted.hour < 6:
            day -= timedelta(days=1)  # "tonight" posted at 00:30 is the evening that just ended
    elif clues.weekday is not None:
        weekday, strict = clues.weekday
        back = (posted.weekday() - weekday) % 7 or (7 if strict else 0)
        day = midnight - timedelta(days=back)
        if minutes is not None and day + timedelta(minutes=minutes[0]) > posted:
            day -= timedelta(days=7)
    elif clues.weekend:
        back = (posted.weekday() - 5) % 7
        saturday = midnight - timedelta(days=back)
        return saturday, min(saturday + timedelta(days=2), posted)
    elif minutes is not None:
        day = midnight
        if day + timedelta(minutes=minutes[0]) > posted:
            day -= timedelta(days=1)
    else:
        return None

    minutes = minutes or (0, DAY)
    start = day + timedelta(minutes=minutes[0])
    end = min(day + timedelta(minutes=minutes[1]), posted)
    if end < start:  # the text names a time after the post (a clock or a typo): trust the post time
        start = end = posted
    return start, end


def find_time_window(text: str, posted: datetime, date_order: str = "MDY") -> TextWindow | None:
    """The local window the text's time expressions describe, or None.

    ``posted`` is the post time as a naive local wall-clock time; ``date_order`` decides
    "3/4" (``MDY`` in the US, ``DMY`` elsewhere).
    """
    if not text:
        return None
    clues = Clues()
    lowered = _normalise(text)
    if HAS_CJK.search(lowered):
        read_chinese(lowered, posted, clues)
    if not clues.found:
        _english(lowered, posted, clues, date_order)
    if not clues.found:
        return None
    window = _resolve(clues, posted)
    if window is None:
        return None
    detail = " + ".join(phrase for _, phrase in sorted(clues.phrases))
    return TextWindow(window[0], window[1], detail, clues.relative)


def find_time_of_day(text: str) -> tuple[tuple[int, int], str] | None:
    """Only a time of day (part or clock, no day) in ``text``, to narrow a platform's visit date.

    Returns ((start, end) in minutes after midnight, phrase) or None.
    """
    if not text:
        return None
    lowered = _normalise(text)
    probe = datetime(2000, 1, 3, 23, 59)  # the day is ignored below; only the clues matter
    clues = Clues()
    if HAS_CJK.search(lowered):
        read_chinese(lowered, probe, clues)
    if not clues.found:
        _english(lowered, probe, clues, "MDY")
    if clues.relative is not None or clues.day is not None or clues.weekday is not None or clues.weekend:
        return None
    if clues.day_offset not in (None, 0):
        return None
    if clues.clock_range is not None:
        minutes = clues.clock_range
    elif clues.clock is not None:
        hour, minute, meridiem, approx = clues.clock
        clues.day_offset = 0  # the day is known (the platform's): use the daytime guess for am/pm
        at = _pick_minute(hour, minute, meridiem, clues)
        minutes = (at - 30, at + 30) if approx else (at, at + 30)
    elif clues.part is not None:
        minutes = clues.part
    else:
        return None
    return minutes, " + ".join(phrase for _, phrase in sorted(clues.phrases))
