"""Chinese time expressions: "半小时前", "等了四十分钟了", "昨晚", "上周日", "3月5日", "中午", "晚上8点", "十点左右"."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from monitor.shifts.timeclues import NIGHT, Clues

# Part-of-day ranges in minutes after midnight of the day they belong to; > DAY reaches into the next day.
_PARTS_ZH: list[tuple[str, tuple[int, int]]] = [
    (r"早午餐", (10 * 60, 14 * 60)),
    (r"早餐|早饭", (6 * 60, 10 * 60 + 30)),
    (r"午餐|午饭|中饭", (11 * 60 + 30, 14 * 60)),
    (r"晚餐|晚饭", (17 * 60, 21 * 60)),
    (r"凌晨", (0, 6 * 60)),
    (r"早上|早晨|清晨|一早", (6 * 60, 10 * 60)),
    (r"上午", (6 * 60, 12 * 60)),
    (r"中午", (11 * 60 + 30, 14 * 60)),
    (r"下午", (12 * 60, 18 * 60)),
    (r"傍晚", (17 * 60, 19 * 60 + 30)),
    (r"半夜|深夜", (23 * 60, 27 * 60)),
    (r"晚上|夜里|夜间", (18 * 60, 24 * 60)),
]
_WEEKDAYS_ZH = "一二三四五六日"
_CN_DIGITS = {char: i for i, char in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_NUM_ZH = r"(\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_DATE_ZH = re.compile(
    r"(?:(\d{4})年)?(\d{1,2}|[一二三四五六七八九十]{1,3})月(\d{1,2}|[一二三四五六七八九十]{1,3})[日号號]"
)


def _cn_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    return _CN_DIGITS[text]


_RE_ZH_AGO_HOURS = re.compile(rf"{_NUM_ZH}\s*(?:个)?(?:小时|钟头)(?:之)?前")
_RE_ZH_AGO_MINUTES = re.compile(rf"{_NUM_ZH}\s*分钟(?:之)?前")
_RE_ZH_HALF_HOUR = re.compile(r"半(?:个)?(?:小时|钟头)(?:之)?前")
_RE_ZH_NOW = re.compile(r"刚才|刚刚|正在排队|还在等")  # not 现在: "现在的服务" is "these days"
_RE_ZH_WAITING = re.compile(rf"(?:已经)?等了{_NUM_ZH}\s*(分钟|个?小时)了")
_RE_ZH_DAY = re.compile(rf"大前天|前天|昨晚|昨夜|昨天|昨日|今早|今晚|今天|今日|{_NUM_ZH}天前")
_RE_ZH_WEEKDAY = re.compile(r"(上(?:个)?)?(?:周|星期|礼拜|禮拜)([一二三四五六日天])")
_RE_ZH_PART = re.compile("|".join(f"({p})" for p, _ in _PARTS_ZH))
_RE_ZH_CLOCK = re.compile(
    rf"(大概|大约|约)?{_NUM_ZH}\s*[点點时時](?:\s*(半|一刻|三刻|{_NUM_ZH}\s*分?))?(左右|多|前后)?"
)
HAS_CJK = re.compile(r"[\u4e00-\u9fff]")


def read_chinese(text: str, posted: datetime, clues: Clues) -> None:
    """Add the Chinese time expressions of ``text`` (lower-cased, normalised) to ``clues``."""
    if match := _RE_ZH_WAITING.search(text):
        amount = _cn_number(match.group(1))
        unit = timedelta(minutes=1) if match.group(2) == "分钟" else timedelta(hours=1)
        clues.relative = (amount * unit, timedelta(0))
        clues.note(match)
        return
    for pattern, unit, slack in (
        (_RE_ZH_AGO_HOURS, timedelta(hours=1), timedelta(minutes=30)),
        (_RE_ZH_AGO_MINUTES, timedelta(minutes=1), timedelta(minutes=10)),
    ):
        if match := pattern.search(text):
            delta = _cn_number(match.group(1)) * unit
            clues.relative = (delta + slack, max(delta - slack, timedelta(0)))
            clues.note(match)
            return
    if match := _RE_ZH_HALF_HOUR.search(text):
        clues.relative = (timedelta(minutes=40), timedelta(minutes=20))
        clues.note(match)
        return
    if match := _RE_ZH_NOW.search(text):
        clues.relative = (timedelta(minutes=30), timedelta(0))
        clues.note(match)
        return

    if match := _RE_ZH_DAY.search(text):
        clues.note(match)
        phrase = match.group(0)
        offsets = {"大前天": 3, "前天": 2, "昨晚": 1, "昨夜": 1, "昨天": 1, "昨日": 1, "今早": 0, "今晚": 0}
        clues.day_offset = offsets.get(phrase, 0) if match.group(1) is None else _cn_number(match.group(1))
        if phrase in ("昨晚", "昨夜", "今晚"):
            clues.part = NIGHT
        elif phrase == "今早":
            clues.part = (6 * 60, 10 * 60)
    elif match := _RE_ZH_WEEKDAY.search(text):
        clues.note(match)
        weekday = _WEEKDAYS_ZH.index("日" if match.group(2) == "天" else match.group(2))
        if match.group(1):  # 上周X: that weekday in the previous Monday-to-Sunday week
            clues.day = posted.date() - timedelta(days=posted.weekday() + 7 - weekday)
        else:
            clues.weekday = (weekday, False)
    elif match := _DATE_ZH.search(text):
        try:
            year = int(match.group(1)) if match.group(1) else posted.year
            day = date(year, _cn_number(match.group(2)), _cn_number(match.group(3)))
        except (ValueError, KeyError):
            day = None
        if day is not None and day > posted.date() and not match.group(1):
            try:  # a date without a year that has not come yet this year was last year's
                day = day.replace(year=day.year - 1)
            except ValueError:  # 29 February
                day = None
        if day is not None and day <= posted.date():
            clues.day = day
            clues.note(match)

    if (match := _RE_ZH_PART.search(text)) and clues.part is None:
        index = next(i for i, g in enumerate(match.groups()) if g is not None)
        clues.part = _PARTS_ZH[index][1]
        clues.note(match)

    if match := _RE_ZH_CLOCK.search(text):
        try:
            hour = _cn_number(match.group(2))
            extra = match.group(3)
            if extra is None:
                minute = 0
            else:
                minute = {"半": 30, "一刻": 15, "三刻": 45}.get(extra)
                minute = _cn_number(match.group(4)) if minute is None else minute
        except KeyError:
            return
        if hour <= 23 and minute < 60:
            clues.clock = (hour, minute, None, bool(match.group(1) or match.group(5)))
            clues.note(match)
