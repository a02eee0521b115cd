"""Server-side charts for the dashboard pages: matplotlib → SVG, no network, readable on a phone.

Each chart is a small figure (4 in wide, text at 10 pt) that the page shows as ``<img>`` at 100 % of
its column: on a 390 px phone the text stays about 12 px high. Text is drawn as paths with DejaVu Sans
and a CJK font (``monitor.shifts.png.chart_fonts``), so Chinese location and brand names render
without any font on the viewer's side, and an SVG shown through ``<img>`` runs no script whatever
names it carries. matplotlib's global settings are not thread-safe: charts are drawn one at a time.
The /sources chart (daily bars per source) is plain SVG written here, without matplotlib: it is drawn on every
look at the page and matplotlib took ~250 ms for it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

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
    partial_from: Any = None,
) -> bytes:
    """One line per name; ``marks`` as ▼ (spikes), ``faint`` as light dots under the lines (daily values).

    Periods from ``partial_from`` on (today, this week) are still filling up: drawn dotted, so a day that has
    only begun does not read as a collapse."""
    with _lock, chart_fonts(), _style():
        fig, (ax,) = _figure(2.4, legend_rows=_legend_rows(len(series)))
        for name, points in (faint or {}).items():
            ax.plot([p for p, v in points if v is not None], [v for _, v in points if v is not None], ".",
                    color=palette.get(name, "#999999"), alpha=0.5, markersize=4)  # fmt: skip
        for name, points in series.items():
            done = [pt for pt in points if partial_from is None or pt[0] < partial_from]
            colour = palette.get(name, "#555555")
            ax.plot([p for p, _ in done], _ys(v for _, v in done), color=colour,
                    label=_label(name), linewidth=1.6, marker="." if len(points) < 20 else None)  # fmt: skip
            if len(done) < len(points):
                tail = done[-1:] + points[len(done) :]
                ax.plot([p for p, _ in tail], _ys(v for _, v in tail), color=colour, linewidth=1.6, linestyle=":",
                        label=None if done else _label(name), marker="." if len(tail) == 1 else None)  # fmt: skip
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


# The /sources chart is drawn by hand, not by matplotlib (~250 ms for eight small plots): one row per source of
# daily bars, in SVG units shown at 100 % of the column (400 wide: 12-unit text stays ~12 px on a 390 px phone).
# Names are XML-escaped text; presentation attributes only (no style attribute: the app's CSP).
SPARK_WIDTH, SPARK_ROW, SPARK_TOP, SPARK_AXIS = 400, 50, 4, 22
SPARK_FONT = "DejaVu Sans, Noto Sans CJK SC, WenQuanYi Zen Hei, Microsoft YaHei, PingFang SC, sans-serif"


def sources_chart_height(rows: int) -> int:
    """The height, in the chart's units, of ``sources_chart`` for ``rows`` sources (for the page's <img>)."""
    return SPARK_TOP + SPARK_ROW * max(rows, 1) + SPARK_AXIS


def _xml_text(text: str) -> str:
    """Text for an SVG document: escaped, and without what XML 1.0 cannot hold (control characters, surrogates)."""
    from markupsafe import escape

    clean = "".join(c if c in "\t\n" or (ord(c) >= 0x20 and not 0xD800 <= ord(c) < 0xE000 and c not in "\ufffe\uffff")
                    else "\ufffd" for c in text)  # fmt: skip
    return str(escape(clean))


def _fit(name: str, room: float) -> str:
    """``name`` cut with "…" to about ``room`` units of 13-unit bold text (wide CJK characters count double)."""
    from unicodedata import east_asian_width

    used = 0.0
    for i, char in enumerate(name):
        used += 13.0 if east_asian_width(char) in "WF" else 8.0
        if used > room:
            return name[: max(i - 1, 1)] + "…"
    return name


def sources_chart(series: Series, days: Sequence[date]) -> bytes:
    """New items per day for each source: a row of bars per name, its total and busiest day, the first and last
    day under the last row. Each row has its own scale (a quiet source's days stay visible beside a busy one)."""
    left, right = 4, SPARK_WIDTH - 4
    names = list(series)
    height = sources_chart_height(len(names))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SPARK_WIDTH} {height}" width="{SPARK_WIDTH}" '
           f'height="{height}" font-family="{SPARK_FONT}" font-size="13" fill="#101828">',
           f'<rect width="{SPARK_WIDTH}" height="{height}" fill="#ffffff"/>']  # fmt: skip
    if not names:
        out.append(f'<text x="{left}" y="{SPARK_TOP + 28}" fill="#475467">No sources yet.</text>')
    slot = (right - left) / max(len(days), 1)
    for row, name in enumerate(names):
        top = SPARK_TOP + row * SPARK_ROW
        values = [max(v or 0, 0) for _d, v in series[name]]
        peak = max(values, default=0)
        total = sum(values)
        summary = f"{total:,.0f} new" + (f" · busiest day {peak:,.0f}" if peak else "")
        shown = _fit(name, right - left - 6.8 * len(summary) - 8)
        out.append(f'<text x="{left}" y="{top + 13}" font-weight="bold">{_xml_text(shown)}<title>{_xml_text(name)}'
                   "</title></text>")  # fmt: skip
        out.append(f'<text x="{right}" y="{top + 13}" text-anchor="end" fill="#475467" font-size="12">{summary}</text>')
        base = top + SPARK_ROW - 6
        out.append(f'<line x1="{left}" x2="{right}" y1="{base}" y2="{base}" stroke="#98a2b3" stroke-width="1"/>')
        bar_top = top + 19
        for i, value in enumerate(values):
            if value:
                h, x = max((base - bar_top) * value / peak, 1.5), left + i * slot + slot * 0.12
                tip = f"{days[i].strftime('%a %d %b')}: {value:,.0f}"
                out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.76:.1f}" height="{h:.1f}" '
                           f'fill="#1f77b4"><title>{tip}</title></rect>')  # fmt: skip
    if days:
        axis = height - 6
        out.append(f'<text x="{left}" y="{axis}" fill="#475467" font-size="12">{days[0].strftime("%a %d %b")}</text>')
        out.append(f'<text x="{right}" y="{axis}" text-anchor="end" fill="#475467" font-size="12">'
                   f'{days[-1].strftime("%a %d %b")}</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out).encode()


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
