"""Wilson score intervals and the "this shift is worse than the rest" test.

The flag test, per location: for each shift with at least ``min_mentions`` mentions
and ``min_complaints`` complaints, a one-sided two-proportion z-test (pooled
variance) of H0 "the shift's complaint rate equals that of the location's other
shifts together" against H1 "it is higher". The shift is flagged when its p-value
is below ``alpha / m``, m being the number of shifts of the location that were
tested (Bonferroni), so a location with many shifts does not flag one by chance.
Counts are the overlap-weighted sums, so they can be fractional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (``(0, 1)`` when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def one_sided_p_above(x1: float, n1: float, x2: float, n2: float) -> float:
    """P-value of the pooled two-proportion z-test that rate 1 (x1/n1) exceeds rate 2."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class FlagResult:
    tested: bool
    p_value: float | None
    flagged: bool


def flag_shifts(
    counts: dict[str, tuple[float, float]],
    alpha: float = 0.05,
    min_mentions: int = 20,
    min_complaints: int = 5,
) -> dict[str, FlagResult]:
    """``counts``: shift -> (complaints, mentions) for one location's shifts (not off-shift)."""
    total_x = sum(x for x, _ in counts.values())
    total_n = sum(n for _, n in counts.values())
    eligible = {
        name
        for name, (x, n) in counts.items()
        if n >= min_mentions and x >= min_complaints and total_n - n >= min_mentions
    }
    m = max(len(eligible), 1)
    out = {}
    for name, (x, n) in counts.items():
        if name not in eligible:
            out[name] = FlagResult(False, None, False)
            continue
        p = one_sided_p_above(x, n, total_x - x, total_n - n)
        out[name] = FlagResult(True, p, p < alpha / m)
    return out
