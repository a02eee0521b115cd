"""Complaint spikes: a period with far more complaints than the brand's recent normal.

The baseline is the mean complaints per period over the previous
``baseline_periods`` periods since the brand was first mentioned (at least
three of them). A period is a spike when its count is at least
``min_complaints`` and a count as variable as the history would reach it with
probability below ``alpha``: real complaint counts vary more than a Poisson
count (weekday rhythms, busy seasons), so the Poisson tail is taken on counts
scaled by the history's dispersion φ = max(1, variance ÷ mean), the
quasi-Poisson approximation. A quiet brand's one bad day stands out; a busy or
bursty brand's ordinary noise does not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from monitor.trends.series import TrendPoint

MIN_BASELINE_PERIODS = 3
BASELINE_FLOOR = 0.5  # complaints per period, so a brand with no history is not "infinitely" surprised


@dataclass
class Spike:
    brand: str
    period: date
    complaints: int
    baseline: float
    p_value: float
    net_sentiment: float | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["period"] = self.period.isoformat()
        return out


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), in log space so large counts do not overflow."""
    if k <= 0:
        return 1.0
    if k > mean:  # sum the (small) upper tail itself, so tiny p-values keep their precision
        terms, i = 0.0, k
        while True:
            term = math.exp(i * math.log(mean) - mean - math.lgamma(i + 1))
            terms += term
            if term < terms * 1e-17 or i > k + 10_000:
                return min(1.0, terms)
            i += 1
    below = sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - below)


def dispersion(counts: list[int]) -> float:
    """φ = variance ÷ mean of the history, at least 1 (Poisson)."""
    if len(counts) < 2:
        return 1.0
    mean = sum(counts) / len(counts)
    if mean <= 0:
        return 1.0
    variance = sum((c - mean) ** 2 for c in counts) / (len(counts) - 1)
    return max(1.0, variance / mean)


def find_spikes(
    points: list[TrendPoint], baseline_periods: int = 14, alpha: float = 0.01, min_complaints: int = 5
) -> list[Spike]:
    """Spikes in ``points`` (as from ``sentiment_series``), oldest first within each brand."""
    by_brand: dict[str, list[TrendPoint]] = {}
    for point in points:
        by_brand.setdefault(point.brand, []).append(point)
    spikes = []
    for brand, series in sorted(by_brand.items()):
        series.sort(key=lambda p: p.period)
        # Before the first mention the brand was not watched: those zeros are not its normal.
        first = next((i for i, p in enumerate(series) if p.mentions), len(series))
        for i, point in enumerate(series):
            history = series[max(first, i - baseline_periods) : i]
            if len(history) < MIN_BASELINE_PERIODS or point.complaint < min_complaints:
                continue
            counts = [p.complaint for p in history]
            mean = max(sum(counts) / len(counts), BASELINE_FLOOR)
            phi = dispersion(counts)
            if alpha < 0.5 and math.ceil(point.complaint / phi) <= mean / phi:
                # Not above its mean: a Poisson count reaches its median (>= floor of the mean) at least half
                # the time, so the tail is over 0.5 and no spike; skipping it saves summing thousands of terms.
                continue
            p_value = poisson_tail(math.ceil(point.complaint / phi), mean / phi)
            if p_value < alpha:
                spikes.append(Spike(brand, point.period, point.complaint, round(mean, 2), p_value, point.net_sentiment))
    return spikes
