"""Complaint spikes: a period with far more complaints than the brand's recent normal.

The baseline is the mean complaints per period over the previous
``baseline_periods`` periods; a period is a spike when its count is at least
``min_complaints`` and a Poisson count with the baseline's mean would reach it
with probability below ``alpha``. A quiet brand's one bad day stands out; a busy
brand's ordinary noise does not.
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
    """P(X >= k) for X ~ Poisson(mean), summed in log space so large counts do not overflow."""
    if k <= 0:
        return 1.0
    below = sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - below)


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
        for i, point in enumerate(series):
            history = series[max(0, i - baseline_periods) : i]
            if len(history) < MIN_BASELINE_PERIODS or point.complaint < min_complaints:
                continue
            mean = max(sum(p.complaint for p in history) / len(history), BASELINE_FLOOR)
            p_value = poisson_tail(point.complaint, mean)
            if p_value < alpha:
                spikes.append(Spike(brand, point.period, point.complaint, round(mean, 2), p_value, point.net_sentiment))
    return spikes
