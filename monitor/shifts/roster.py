"""The optional roster: who worked which shift (CSV: date, location, shift, staff).

One row per shift and day; ``staff`` lists names separated by ``;`` (or repeat the
row per person). A bad row is a config error naming the file and line, because the
file is named by ``[shifts] roster``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date

from monitor.config import Config, ConfigError

COLUMNS = ("date", "location", "shift", "staff")

Roster = dict[tuple[str, str, str], list[str]]  # (location, shift, ISO date) -> names


def load_roster(config: Config) -> Roster:
    """The roster named by ``[shifts] roster`` (relative to the config file), or empty."""
    if not config.shifts.roster:
        return {}
    path = config.resolve(config.shifts.roster)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigError("shifts.roster", f"cannot read {path}: {exc.strerror}") from None
    shifts = {loc.id: {s.name for s in loc.shifts} for loc in config.locations}
    roster: Roster = defaultdict(list)
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError("shifts.roster", f"{path.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path.name} line {line}"
            try:
                day = date.fromisoformat((row["date"] or "").strip())
            except ValueError:
                raise ConfigError(
                    "shifts.roster", f"{where}: expected a date YYYY-MM-DD, got {row['date']!r}"
                ) from None
            location, shift = (row["location"] or "").strip(), (row["shift"] or "").strip()
            if location not in shifts:
                raise ConfigError("shifts.roster", f"{where}: unknown location {location!r}")
            if shift not in shifts[location]:
                raise ConfigError("shifts.roster", f"{where}: unknown shift {shift!r} at location {location!r}")
            names = [n.strip() for n in (row["staff"] or "").split(";") if n.strip()]
            bucket = roster[(location, shift, day.isoformat())]
            bucket.extend(n for n in names if n not in bucket)
    return dict(roster)


def staff_on(roster: Roster, location: str, shift: str, days: list[str]) -> dict[str, int]:
    """Who worked ``shift`` on any of ``days``, with how many of those shifts each worked."""
    counts: dict[str, int] = defaultdict(int)
    for day in days:
        for name in roster.get((location, shift, day), []):
            counts[name] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
