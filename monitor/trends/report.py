"""The trends report the CLI and the digest use: series plus spikes over the last N days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from monitor.config import TrendsConfig
from monitor.trends.series import TrendPoint, sentiment_series, undated_counts
from monitor.trends.spikes import Spike, find_spikes


@dataclass
class TrendsReport:
    by: str
    points: list[TrendPoint]
    spikes: list[Spike]  # in the shown range only
    # Backfill mentions without a date first seen in the shown range, per brand: in no point (no day).
    undated: dict[str, int] = field(default_factory=dict)

    def brand_summary(self) -> list[dict[str, object]]:
        """Per brand over the whole range: mentions, net sentiment, share of voice, spikes."""
        out = []
        total = sum(p.mentions for p in self.points) or 1
        for brand in sorted({p.brand for p in self.points} | set(self.undated)):
            mine = [p for p in self.points if p.brand == brand]
            classified = sum(p.complaint + p.neutral + p.praise for p in mine)
            net = (
                (sum(p.praise for p in mine) - sum(p.complaint for p in mine)) / classified * 100
                if classified
                else None
            )
            out.append({"brand": brand, "mentions": sum(p.mentions for p in mine),
                        "net_sentiment": None if net is None else round(net, 1),
                        "share_of_voice": round(sum(p.mentions for p in mine) / total, 4),
                        "spikes": sum(1 for s in self.spikes if s.brand == brand),
                        "undated": self.undated.get(brand, 0)})  # fmt: skip
        return out


def trends_report(
    db: sqlite_utils.Database,
    config: TrendsConfig,
    days: int = 30,
    by: str = "day",
    brands: list[str] | None = None,
    now: datetime | None = None,
) -> TrendsReport:
    """The last ``days`` days up to today (local), with enough history before them to judge spikes."""
    zone = ZoneInfo(config.timezone)
    now = now or datetime.now(UTC)
    local_today = now.astimezone(zone).date()
    end = datetime.combine(local_today + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    start = end - timedelta(days=days)
    first_shown = start.date() - timedelta(days=start.date().weekday()) if by == "week" else start.date()
    # Whole periods of history before the first one shown (a week's starts on its Monday).
    history_start = first_shown - timedelta(days=config.baseline_periods * (7 if by == "week" else 1))
    since = datetime.combine(history_start, datetime.min.time(), tzinfo=zone)
    points = sentiment_series(db, since, end, by, config.timezone, brands)
    spikes = find_spikes(points, config.baseline_periods, config.spike_alpha, config.min_spike_complaints)
    shown_since = datetime.combine(first_shown, datetime.min.time(), tzinfo=zone)
    return TrendsReport(
        by=by,
        points=[p for p in points if p.period >= first_shown],
        spikes=[s for s in spikes if s.period >= first_shown],
        undated=undated_counts(db, shown_since, end, brands),
    )
