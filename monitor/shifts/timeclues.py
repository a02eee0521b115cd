"""What the time-expression readers (``timeexpr.py``, ``timeexpr_zh.py``) find in a text; the window it gives."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

DAY = 1440  # minutes
NIGHT = (18 * 60, 26 * 60)  # a night: 18:00 to 02:00 the next day


@dataclass(frozen=True)
class TextWindow:
    """A local (naive, wall-clock) window and the phrases it came from."""

    start: datetime
    end: datetime
    detail: str
    # For "2 hours ago" and the like: (start, end) as elapsed time before the post, so the caller
    # can subtract real seconds (wall-clock arithmetic is wrong across a DST change).
    before_post: tuple[timedelta, timedelta] | None = None


@dataclass
class Clues:
    relative: tuple[timedelta, timedelta] | None = None  # (before post, before post) for start and end
    day: date | None = None
    day_offset: int | None = None
    weekday: tuple[int, bool] | None = None  # (Monday = 0, strictly before the post day)
    weekend: bool = False
    part: tuple[int, int] | None = None
    clock: tuple[int, int, str | None, bool] | None = None  # hour, minute, "am"/"pm"/None, approximate
    clock_range: tuple[int, int] | None = None
    hints: list[int] = field(default_factory=list)  # minutes of other am/pm times in the text, to settle am/pm
    phrases: list[tuple[int, str]] = field(default_factory=list)

    def note(self, match: re.Match[str]) -> None:
        self.phrases.append((match.start(), match.group(0).strip()))

    @property
    def found(self) -> bool:
        return bool(self.phrases)
