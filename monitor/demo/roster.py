"""The demo's staff roster (``[shifts] roster``): who worked each shift, dated relative to today.

Downtown's morning crew (Jess, Marcus, Maria) is the one customers praise by name; the evening
crew is Kyle with Brianna, or Devon on weekends: the crew whose complaint rate the demo flags.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

MORNING_PAIRS = (("Jess", "Marcus"), ("Jess", "Maria"), ("Marcus", "Maria"))
DAYS_BACK = 35  # covers the shifts page's 30 days and the content's oldest review
DAYS_AHEAD = 1  # tonight's and tomorrow's shifts, so the roster never runs out mid-demo


def roster_rows(today: date) -> list[dict[str, str]]:
    """One row per location, shift and day, oldest first."""
    rows = []
    for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
        day = today + timedelta(days=offset)
        weekend = day.weekday() >= 5
        crews = {
            ("downtown", "morning"): MORNING_PAIRS[day.toordinal() % len(MORNING_PAIRS)],
            ("downtown", "evening"): ("Kyle", "Devon" if weekend else "Brianna"),
            ("airport", "morning"): ("Ahmed", "Lucy"),
            ("airport", "evening"): ("Hannah", "Luis"),
            ("airport", "overnight"): ("Oskar",),
        }
        for (location, shift), staff in crews.items():
            rows.append({"date": day.isoformat(), "location": location, "shift": shift, "staff": ";".join(staff)})
    return rows


def write_roster(path: Path, today: date) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["date", "location", "shift", "staff"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(roster_rows(today))
    return path
