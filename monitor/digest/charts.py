"""The digest's charts as PNG images: embedded as data: URIs in the HTML file, CID-attached in the email.

PNG, not the dashboards' SVG: mail clients (Gmail, Outlook) do not show SVG. The drawing reuses the
dashboards' helpers (monitor/web/charts.py: sizes, palette, date axes, legend, the CJK font through
``chart_fonts``), so a Chinese location or brand name renders and the charts look like the pages'.
Every chart is drawn from plain numbers; names in it are pixels, so hostile text in them is inert.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from monitor.web import charts as web

DPI = 160  # 3.4-4 in wide -> 544-640 px: sharp at the 480 px the digest shows them and on a phone's 2x screen
BAR_WIDTH = 3.4  # narrower than the pages' 4 in: the names above the bars stay about 14 px high on a phone


@dataclass
class Chart:
    """One embedded image: ``name`` is its stable file name, ``alt`` says what it shows in words."""

    name: str
    title: str
    alt: str
    png: bytes
    cid: str = ""  # set when the email attaches it

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def labelled_bars(rows: Sequence[tuple[str, float, bool]], xlabel: str) -> bytes:
    """Horizontal bars with each name written above its bar (long and Chinese names fit a phone),
    the whole-number value at the bar's end; ``True`` rows are drawn red (flagged), the others blue."""
    from matplotlib.figure import Figure

    count = max(len(rows), 1)
    height = 0.55 + 0.5 * count
    with web._lock, web.chart_fonts(), web._style():
        fig = Figure(figsize=(BAR_WIDTH, height))
        fig.subplots_adjust(left=0.12 / BAR_WIDTH, right=1 - 0.45 / BAR_WIDTH, top=1 - 0.08 / height,
                            bottom=0.42 / height)  # fmt: skip
        ax = fig.add_subplot()
        top = max([1.0, *(value for _, value, _ in rows)])
        for i, (name, value, flagged) in enumerate(rows):
            ax.barh(i, value, height=0.42, color="#d62728" if flagged else "#1f77b4")
            # 34 characters of 10 pt text fill the plot's width; longer names end in "…".
            ax.text(0, i - 0.3, web._label(name, 34), va="bottom", ha="left", fontsize=10,
                    color="#b42318" if flagged else "#1d232a")  # fmt: skip
            ax.text(value + top * 0.015, i, str(round(value)), va="center", ha="left", fontsize=10)
        ax.set_ylim(count - 0.5, -0.85)
        ax.set_xlim(0, top * 1.12)
        ax.set_yticks([])
        ax.spines[["top", "right", "left"]].set_visible(False)
        ax.grid(axis="x", color="#e4e7ec", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel(xlabel)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # counts are whole numbers
        return _png(fig)


def sentiment_lines(
    rolling: dict[str, list[tuple[date, float | None]]],
    daily: dict[str, list[tuple[date, float | None]]],
    palette: dict[str, str],
    ylabel: str,
) -> bytes:
    """Net sentiment per brand: a line for the rolling average over light dots for each day, as /trends draws it."""
    with web._lock, web.chart_fonts(), web._style():
        fig, (ax,) = web._figure(2.4, legend_rows=web._legend_rows(len(rolling)))
        for name, points in daily.items():
            ax.plot([p for p, v in points if v is not None], [v for _, v in points if v is not None], ".",
                    color=palette.get(name, "#999999"), alpha=0.5, markersize=4)  # fmt: skip
        for name, points in rolling.items():
            ax.plot([p for p, _ in points], web._ys(v for _, v in points), color=palette.get(name, "#555555"),
                    label=web._label(name), linewidth=1.6, marker=".")  # fmt: skip
        ax.axhline(0, color="#98a2b3", linewidth=0.8)
        ax.set_ylim(-106, 106)  # a day at ±100 shows as a dot, not half of one on the frame
        ax.set_yticks([-100, -50, 0, 50, 100])
        ax.set_ylabel(ylabel)
        web._dates(ax, [p for points in rolling.values() for p, _ in points])
        web._legend(fig, ax, len(rolling))
        return _png(fig)
