"""What the digest and the inbox show about shifts, as plain data (the templates are theirs)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlite_utils

from monitor.config import Config
from monitor.shifts.incidents import incidents_for_day
from monitor.shifts.report import shift_report

DIGEST_DAYS = 7


def shifts_for_digest(db: sqlite_utils.Database, config: Config, day: date) -> dict[str, Any]:
    """The day's incidents, and per-shift rates over the week ending ``day`` with flagged shifts first.

    A week, not a day: one day's complaints per shift are too few for the flag test.
    """
    rows = shift_report(db, config, day - timedelta(days=DIGEST_DAYS - 1), day)
    rows = [r for r in rows if r["mentions"]]
    return {
        "incidents": incidents_for_day(db, config, day),
        "shifts": sorted(rows, key=lambda r: (not r["flagged"], -(r["rate"] or 0))),
        "flagged": [r for r in rows if r["flagged"]],
        "days": DIGEST_DAYS,
    }
