"""Trends out of the tool: CSV (formula-safe) and a PNG chart (matplotlib, headless)."""

from __future__ import annotations

import csv
from pathlib import Path

from monitor.escaping import csv_cell
from monitor.trends.series import TrendPoint
from monitor.trends.spikes import Spike

CSV_COLUMNS = ("period", "brand", "mentions", "complaint", "neutral", "praise", "net_sentiment", "share_of_voice",
               "spike")  # fmt: skip


def write_trends_csv(path: Path, points: list[TrendPoint], spikes: list[Spike]) -> Path:
    flagged = {(s.brand, s.period) for s in spikes}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for p in sorted(points, key=lambda p: (p.period, p.brand)):
            net = "" if p.net_sentiment is None else p.net_sentiment
            voice = "" if p.share_of_voice is None else p.share_of_voice
            spike = int((p.brand, p.period) in flagged)
            row = [p.period.isoformat(), p.brand, p.mentions, p.complaint, p.neutral, p.praise, net, voice, spike]
            writer.writerow([csv_cell(value) for value in row])  # brand names come from config or crawled data
    return path


def write_trends_png(path: Path, points: list[TrendPoint], spikes: list[Spike], title: str = "") -> Path:
    """Net sentiment per brand (spikes marked) above share of voice."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):  # a "$" in a brand name is not TeX
        return _draw(plt, path, points, spikes, title)


def _label(brand: str) -> str:
    return " " + brand if brand.startswith("_") else brand  # matplotlib hides labels starting with "_"


def _draw(plt, path: Path, points: list[TrendPoint], spikes: list[Spike], title: str) -> Path:
    brands = sorted({p.brand for p in points})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=[3, 2])
    flagged = {(s.brand, s.period) for s in spikes}
    for brand in brands:
        series = sorted((p for p in points if p.brand == brand), key=lambda p: p.period)
        xs = [p.period for p in series]
        line = top.plot(xs, [p.net_sentiment for p in series], marker=".", label=_label(brand))[0]
        marks = [p for p in series if (brand, p.period) in flagged]
        if marks:
            top.scatter([p.period for p in marks], [p.net_sentiment or 0 for p in marks], s=90, marker="v",
                        color=line.get_color(), edgecolors="black", zorder=3)  # fmt: skip
    top.axhline(0, color="#999999", linewidth=0.8)
    top.set_ylim(-100, 100)
    top.set_ylabel("net sentiment")
    top.legend(loc="lower left", fontsize="small", ncols=min(len(brands), 4) or 1)
    top.set_title(title or "Net sentiment (▼ complaint spike) and share of voice")
    periods = sorted({p.period for p in points})
    bottom_stack = [0.0] * len(periods)
    for brand in brands:
        shares = {p.period: p.share_of_voice or 0.0 for p in points if p.brand == brand}
        values = [shares.get(period, 0.0) * 100 for period in periods]
        bottom.bar(periods, values, bottom=bottom_stack, label=_label(brand), width=0.8 if len(periods) < 60 else 1.0)
        bottom_stack = [a + b for a, b in zip(bottom_stack, values, strict=True)]
    bottom.set_ylabel("share of voice %")
    bottom.set_ylim(0, 100)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
