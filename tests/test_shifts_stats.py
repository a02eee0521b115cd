"""Wilson intervals and the flag test, including synthetic months with fixed seeds."""

from datetime import date

import numpy as np
import pytest

from monitor.config import Location, Shift
from monitor.shifts.attribute import attribute, occurrences
from monitor.shifts.stats import flag_shifts, one_sided_p_above, wilson_interval

SHIFTS = [Shift("morning", 6 * 60, 14 * 60), Shift("evening", 14 * 60, 22 * 60), Shift("overnight", 22 * 60, 6 * 60)]
VOLUME = {"morning": 15, "evening": 12, "overnight": 4}  # mentions per shift per day, a busy coffee shop
BASE_RATE = 0.10
SEEDS = range(20)


def test_wilson_interval_known_values():
    # Reference values from Wilson (1927) / statsmodels proportion_confint(method="wilson")
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 20)[0] == 0.0 and round(wilson_interval(0, 20)[1], 4) == 0.1611
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and round(low, 4) == 0.8389


def test_one_sided_p_value():
    assert one_sided_p_above(20, 100, 10, 100) == pytest.approx(0.02384, abs=1e-5)  # z = 1.980
    assert one_sided_p_above(10, 100, 20, 100) > 0.95
    assert one_sided_p_above(0, 10, 0, 10) == 1.0


def test_minimum_counts_keep_small_shifts_unflagged():
    flags = flag_shifts({"a": (4, 5), "b": (10, 200), "c": (10, 200)})
    assert not flags["a"].tested and not flags["a"].flagged  # 80 % of 5 mentions is noise, not a finding
    assert flags["b"].tested


def synthetic_month(seed: int, rates: dict[str, float]) -> dict[str, tuple[float, float]]:
    """A month of mentions at a New York location, spanning the November DST change.

    Visit times are uniform within each shift occurrence; half the mentions carry the
    platform's exact visit time (a point), half only a post time up to 2 h after the visit,
    so their window is [post - 2h, post] and may straddle a shift change.
    """
    rng = np.random.default_rng(seed)
    location = Location("dt", "America/New_York", shifts=SHIFTS)
    occ = occurrences(location, date(2026, 10, 15), date(2026, 11, 13))
    keep = occ.day >= 1  # the extra day before the range
    names = np.array([s.name for s in SHIFTS])
    volume = np.array([VOLUME[n] for n in names])[occ.shift[keep]]
    counts = rng.poisson(volume)
    starts, ends = np.repeat(occ.start[keep], counts), np.repeat(occ.end[keep], counts)
    shift_of = np.repeat(occ.shift[keep], counts)
    visits = rng.integers(starts, ends)
    complaint = rng.random(len(visits)) < np.array([rates[n] for n in names])[shift_of]
    exact = rng.random(len(visits)) < 0.5
    posts = visits + rng.integers(0, 2 * 3600, len(visits))
    window_start = np.where(exact, visits, posts - 2 * 3600)
    window_end = np.where(exact, visits, posts)
    result = attribute(occ, window_start, window_end)
    out = {}
    for index, name in enumerate(names):
        mask = result.shift == index
        weights = result.weight[mask]
        out[name] = (float(weights[complaint[result.row[mask]]].sum()), float(weights.sum()))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_doubled_rate_is_flagged(seed):
    counts = synthetic_month(seed, {"morning": BASE_RATE, "evening": 2 * BASE_RATE, "overnight": BASE_RATE})
    flags = flag_shifts(counts)
    assert flags["evening"].flagged, counts
    assert not flags["morning"].flagged and not flags["overnight"].flagged


def test_equal_rates_are_not_flagged():
    # With alpha 0.05 Bonferroni-corrected, about 1 run in 20 may flag something by chance; allow that, not more.
    runs_with_a_flag = 0
    for seed in SEEDS:
        counts = synthetic_month(1000 + seed, dict.fromkeys(VOLUME, BASE_RATE))
        runs_with_a_flag += any(f.flagged for f in flag_shifts(counts).values())
    assert runs_with_a_flag <= 1


def test_the_simulation_has_realistic_volumes():
    counts = synthetic_month(0, dict.fromkeys(VOLUME, BASE_RATE))
    assert 300 < counts["evening"][1] < 420 and 90 < counts["overnight"][1] < 160
