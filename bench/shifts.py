"""Shift attribution throughput: 1,000,000 incident windows → shift occurrences.

    python bench/shifts.py [--n 1000000] [--estimate 20000]

Two New York locations (three shifts, one overnight) over one year, so windows cross
both DST changes. The windows mix what the estimator produces: platform visit times
(points, 40 %), post time minus the lag (2 h windows, 40 %) and text expressions such
as "yesterday" or "last night" (8-24 h windows, 20 %). The timing covers materialising
the shift occurrences and the vectorised attribution, per location, as the stage does.
``--estimate`` also times the per-mention text estimator (Python, regexes and dateparser)
on a sample of phrasings, and ``--stage`` the whole stage on a SQLite database
(estimate, attribute, store, detect incidents), for scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import Location, Shift  # noqa: E402
from monitor.shifts.attribute import attribute, occurrences  # noqa: E402
from monitor.shifts.estimate import estimate_incident  # noqa: E402
from monitor.shifts.localtime import zone  # noqa: E402

LOCATIONS = [
    Location("downtown", "America/New_York", shifts=[Shift("morning", 360, 840), Shift("evening", 840, 1320)]),
    Location("airport", "America/New_York",
             shifts=[Shift("morning", 360, 840), Shift("evening", 840, 1320), Shift("overnight", 1320, 360)]),
]  # fmt: skip
FIRST, LAST = date(2026, 1, 1), date(2026, 12, 31)
PHRASES = ["last night the barista was rude", "this morning around 9", "yesterday at lunch", "Sunday brunch",
           "at 11pm they closed", "昨晚服务很差", "中午排队很久", "the coffee was cold", "waited 40 minutes",
           "2 hours ago", "on March 3rd", "great staff, lovely place"]  # fmt: skip


def windows(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = int(datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC).timestamp()) + 86400
    hi = int(datetime.combine(LAST, datetime.min.time(), tzinfo=UTC).timestamp()) - 86400
    starts = rng.integers(lo, hi, n)
    kind = rng.random(n)
    lengths = np.where(kind < 0.4, 0, np.where(kind < 0.8, 7200, rng.integers(8, 25, n) * 3600))
    return starts, starts + lengths, rng.integers(0, len(LOCATIONS), n)


def bench_attribution(n: int) -> float:
    starts, ends, location = windows(n)
    began = time.perf_counter()
    pairs = 0
    for index, loc in enumerate(LOCATIONS):
        mask = location == index
        occ = occurrences(loc, FIRST, LAST)
        result = attribute(occ, starts[mask], ends[mask])
        pairs += len(result.row)
    elapsed = time.perf_counter() - began
    print(f"attribution: {n:,} mentions ({pairs:,} shift pairs) in {elapsed:.2f} s = {n / elapsed:,.0f} mentions/s")
    return n / elapsed


def bench_estimate(n: int) -> float:
    tz = zone("America/New_York")
    base = datetime(2026, 6, 10, 14, tzinfo=UTC)
    began = time.perf_counter()
    for i in range(n):
        estimate_incident(base + timedelta(minutes=37 * i), tz, timedelta(hours=2), PHRASES[i % len(PHRASES)])
    elapsed = time.perf_counter() - began
    print(f"text estimation: {n:,} mentions in {elapsed:.2f} s = {n / elapsed:,.0f} mentions/s")
    return n / elapsed


def bench_stage(n: int) -> float:
    import json
    import tempfile

    from monitor.config import loads_config
    from monitor.shifts.stage import estimate_and_attribute
    from monitor.store import open_db

    shifts = "".join(
        f'[[locations.shifts]]\nname = "{s.name}"\nstart = "{s.start // 60:02d}:00"\nend = "{s.end // 60:02d}:00"\n'
        for s in LOCATIONS[1].shifts
    )
    config_text = f'[storage]\npath = "m.db"\n[[locations]]\nid = "airport"\ntimezone = "America/New_York"\n{shifts}'
    with tempfile.TemporaryDirectory() as tmp:
        config = loads_config(config_text, Path(tmp) / "config.toml")
        db = open_db(config.storage_path)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        mentions = [
            (f"m{i}", PHRASES[i % len(PHRASES)], (base + timedelta(minutes=23 * i)).isoformat()) for i in range(n)
        ]
        with db.atomic():
            db["mentions"].insert_all(
                {"source": "s", "external_id": e, "text": t, "posted_at": p, "location": "airport",
                 "first_seen_at": p, "updated_at": p} for e, t, p in mentions
            )  # fmt: skip
            db["classifications"].insert_all(
                {"mention_id": i + 1, "label": "complaint" if i % 3 == 0 else "praise", "topics": json.dumps(["other"])}
                for i in range(n)
            )
        began = time.perf_counter()
        counts = estimate_and_attribute(db, config)
        elapsed = time.perf_counter() - began
    print(f"whole stage with SQLite: {counts.estimated:,} mentions, {counts.incidents:,} incidents in {elapsed:.2f} s"
          f" = {n / elapsed:,.0f} mentions/s")  # fmt: skip
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--estimate", type=int, default=20_000, help="mentions for the text-estimator timing (0: skip)")
    parser.add_argument("--stage", type=int, default=20_000, help="mentions for the whole-stage timing (0: skip)")
    args = parser.parse_args()
    bench_attribution(args.n)
    if args.estimate:
        bench_estimate(args.estimate)
    if args.stage:
        bench_stage(args.stage)


if __name__ == "__main__":
    main()
