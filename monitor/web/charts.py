"""Server-side charts for the dashboard pages: matplotlib → SVG, no network, readable on a phone.

Each chart is a small figure (4 in wide, text at 10 pt) that the page shows as ``<img>`` at 100 % of
its column: on a 390 px phone the text stays about 12 px high. Text is drawn as paths with DejaVu Sans
and a CJK font (``monitor.shifts.png.chart_fonts``), so Chinese location and brand names render
without any font on the viewer's side, and an SVG shown through ``<img>`` runs no script whatever
names it carries. matplotlib's global settings are not thread-safe: charts are drawn one at a time.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on a server

from monitor.shifts.png import chart_fonts  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH = 4.0  # inches: shown at 340-460 px, so 10 pt text stays 11-13 px high
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")  # fmt: skip
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Series = dict[str, list[tuple[date, float | None]]]
_lock = threading.Lock()


def _style():
    # After chart_fonts (which sets 9 pt): "$" in a name is not TeX, and ids are stable from one drawing to the next.
    return matplotlib.rc_context({"text.parse_math": False, "svg.hashsalt": "monitor", "font.size": 10})


def colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per name, the same on every chart of a page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _label(name: str, limit: int = 24) -> str:
    name = name if len(name) <= limit else name[: limit - 1] + "…"  # two legend columns fit a phone-wide chart
    return " " + name if name.startswith("_") else name  # matplotlib hides legend labels starting with "_"


def _figure(height: float, rows: int = 1, legend_rows: int = 0, right: float = 0.15) -> tuple[Figure, list]:
    """Fixed margins (inches) instead of a layout engine, which draws every chart two or three times over."""
    from matplotlib.figure import Figure

    total = height + 0.22 * legend_rows
    fig = Figure(figsize=(WIDTH, total))
    fig.subplots_adjust(left=0.85 / WIDTH, right=1 - right / WIDTH, bottom=0.42 / total,
                        top=1 - (0.12 + 0.22 * legend_rows) / total, hspace=0.55 if rows > 1 else 0.2)  # fmt: skip
    axes = fig.subplots(rows, 1, squeeze=False, sharex=True)[:, 0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#e4e7ec", linewidth=0.6)
    return fig, list(axes)


def _dates(ax, days: Sequence[date] = ()) -> None:
    """Date ticks, over exactly ``days`` when given (a single real point must not stretch the axis to years)."""
    import matplotlib.dates as mdates

    if days:
        first, last = min(days), max(days)
        ax.set_xlim(first - timedelta(days=0.5), last + timedelta(days=0.5))

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


def _svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _ys(values) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]  # a gap in the line, not a zero


def _legend_rows(count: int) -> int:
    return (count + 1) // 2


def _legend(fig: Figure, ax, count: int) -> None:
    """Above the plot in two columns, in rows the figure was made taller for (``_figure(legend_rows=…)``)."""
    if count:
        fig.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(0.01, 0.995), ncols=min(count, 2),
                   fontsize=9, frameon=False, handlelength=1.2, columnspacing=1.0, borderaxespad=0.1)  # fmt: skip


def line_chart(
    series: Series,
    ylabel: str,
    palette: dict[str, str],
    marks: Series | None = None,
    faint: Series | None = None,
    ylim: tuple[float, float] | None = None,
    zero_line: bool = False,
) -> bytes:
    """One line per name; ``marks`` as ▼ (spikes), ``faint`` as light dots under the lines (daily values)."""
    with _lock, chart_fonts(), _style():
        fig, (ax,) = _figure(2.4, legend_rows=_legend_rows(len(series)))
        for name, points in (faint or {}).items():
            ax.plot([p for p, v in points if v is not None], [v for _, v in points if v is not None], ".",
                    color=palette.get(name, "#999999"), alpha=0.5, markersize=4)  # fmt: skip
        for name, points in series.items():
            ax.plot([p for p, _ in points], _ys(v for _, v in points), color=palette.get(name, "#555555"),
                    label=_label(name), linewidth=1.6, marker="." if len(points) < 20 else None)  # fmt: skip
        for name, points in (marks or {}).items():
            if points:
                ax.scatter([p for p, _ in points], [v or 0 for _, v in points], marker="v", s=46, zorder=3,
                           color=palette.get(name, "#555555"), edgecolors="black", linewidths=0.6)  # fmt: skip
        if zero_line:
            ax.axhline(0, color="#98a2b3", linewidth=0.8)
        if ylim:
            ax.set_ylim(*ylim)
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(ylabel)
        _dates(ax, [p for points in series.values() for p, _ in points])
        _legend(fig, ax, len(series))
        return _svg(fig)


def share_chart(series: Series, palette: dict[str, str]) -> bytes:
    """Share of voice as stacked areas (per cent of all brands' mentions in each period)."""
    with _lock, chart_fonts(), _style():
        names = list(series)
        fig, (ax,) = _figure(2.4, legend_rows=_legend_rows(len(names)))
        if names:
            xs = [p for p, _ in series[names[0]]]
            stacks = [[100 * (v or 0) for _, v in series[n]] for n in names]
            fills = [palette.get(n, "#999999") for n in names]
            ax.stackplot(xs, *stacks, labels=[_label(n) for n in names], colors=fills, alpha=0.85)
        ax.set_ylim(0, 100)
        ax.set_ylabel("share of voice, %")
        _dates(ax, [p for points in series.values() for p, _ in points])
        _legend(fig, ax, len(names))
        return _svg(fig)


def heatmap_chart(grid: list[list[float]], zone_name: str) -> bytes:
    """Weekday × local hour complaints as vector cells, with the colour scale beside them."""
    import numpy as np

    with _lock, chart_fonts(), _style():
        fig, (ax,) = _figure(2.4, right=0.95)
        ax.grid(False)
        values = np.array(grid, dtype=float)
        mesh = ax.pcolormesh(values, cmap="Reds", vmin=0, vmax=max(float(values.max()), 1.0), edgecolors="white",
                             linewidth=0.4)  # fmt: skip
        ax.invert_yaxis()
        ax.set_yticks([i + 0.5 for i in range(7)], DAYS)
        ax.set_xticks(range(0, 25, 3), [f"{h:02d}" for h in range(0, 25, 3)])
        ax.set_xlabel(f"local hour ({zone_name})")
        ax.tick_params(length=0)
        # The scale gets its own strip of the figure (fixed margins: no layout engine to make room for it).
        scale = fig.colorbar(mesh, cax=fig.add_axes((1 - 0.75 / WIDTH, 0.42 / 2.4, 0.12 / WIDTH, 1 - 0.54 / 2.4)))
        scale.set_label("complaints")
        return _svg(fig)


def bars_by_name(series: Series, ylabel: str) -> bytes:
    """Small multiples: one row of daily bars per name (items per day per source)."""
    from matplotlib.ticker import MaxNLocator

    names = list(series) or [""]
    with _lock, chart_fonts(), _style():
        fig, axes = _figure(0.55 + 0.75 * len(names), rows=len(names))
        for ax, name in zip(axes, names, strict=True):
            points = series.get(name, [])
            ax.bar([p for p, _ in points], [v or 0 for _, v in points], color="#1f77b4", width=0.8)
            ax.set_title(_label(name), loc="left", fontsize=9, pad=2)
            ax.set_ylim(0, max([1, *(v or 0 for _, v in points)]) * 1.1)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=2, integer=True))  # items are whole numbers
        axes[-1].set_xlabel(ylabel)
        _dates(axes[-1], [p for points in series.values() for p, _ in points])
        return _svg(fig)


def metrics_chart(days: list[date], median_minutes: list[float | None], rates: list[float | None]) -> bytes:
    """First-response time (median, hours) above response rate (%), per day or week."""
    with _lock, chart_fonts(), _style():
        fig, (top, bottom) = _figure(3.2, rows=2)
        hours = [None if m is None else m / 60 for m in median_minutes]
        marker = "o" if len(days) < 20 else "."
        top.plot(days, _ys(hours), color="#1f77b4", marker=marker)
        top.set_ylabel("median first\nresponse, h")
        top.set_ylim(bottom=0)
        bottom.plot(days, _ys(None if r is None else 100 * r for r in rates), color="#2ca02c", marker=marker)
        bottom.set_ylabel("response\nrate, %")
        bottom.set_ylim(0, 105)
        _dates(bottom, days)
        return _svg(fig)
