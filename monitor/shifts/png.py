"""The weekday x hour complaint heatmap as a PNG, drawn with matplotlib (Agg, no display needed).

Location names come from the config and may be in any script ("Café Zürich", "北京三里屯"). Text is
drawn with DejaVu Sans, falling back to a font with CJK glyphs for what DejaVu lacks. That font is a
system package (Debian: ``fonts-wqy-zenhei`` or ``fonts-noto-cjk``; ``.ci/run`` installs one); without
it one warning says so and Chinese shows as boxes -- the chart is still written.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# Families with Chinese glyphs, best first: Debian's fonts-noto-cjk and fonts-wqy-zenhei, then others.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Source Han Sans SC", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "Noto Sans SC", "Droid Sans Fallback", "AR PL UMing CN", "Microsoft YaHei",
    "PingFang SC", "SimHei",
)  # fmt: skip
# Font files of those families, for when matplotlib's font cache predates the font's installation.
_CJK_FILES = ("notosanscjk", "sourcehansans", "wqyzenhei", "wqymicrohei", "notosanssc", "droidsansfallback")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@functools.cache
def cjk_font_family() -> str | None:
    """The name of an installed font family with CJK glyphs, or None (after one warning) when there is none."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = next((family for family in CJK_FAMILIES if family in installed), None)
    if found is None:
        # matplotlib caches the font list when it first runs; a font installed since is not in it.
        for path in font_manager.findSystemFonts():
            if any(stem in Path(path).name.lower().replace("-", "").replace("_", "") for stem in _CJK_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        installed = {font.name for font in font_manager.fontManager.ttflist}
        found = next((family for family in CJK_FAMILIES if family in installed), None)
    if found is None:
        log.warning(
            "no font with Chinese glyphs found (Debian: apt-get install fonts-wqy-zenhei or fonts-noto-cjk); "
            "charts show Chinese text as boxes"
        )
    else:
        # WenQuanYi Zen Hei has only a medium weight: matplotlib uses it, and would say so on every text.
        logging.getLogger("matplotlib.font_manager").addFilter(_quiet_weight_fallback)
    return found


def _quiet_weight_fallback(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("findfont: Failed to find font weight")


def font_families() -> list[str]:
    """matplotlib ``font.family``: DejaVu Sans for Latin text (accents included), a CJK font for the rest."""
    cjk = cjk_font_family()
    return ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]


def heatmap_figure(
    grids: dict[str, list[list[float]]],
    title: str = "Complaints by estimated incident time",
    names: dict[str, str] | None = None,
    zones: dict[str, str] | None = None,
) -> Figure:
    """One panel per location (rows Monday..Sunday, columns local hours 0..23) on one shared colour scale,
    with the scale drawn beside them. ``names`` maps location ids to display names, ``zones`` to time zones.

    Call it inside ``chart_fonts()`` (as ``write_heatmap_png`` does) so text is measured with the right fonts.
    """
    from matplotlib.figure import Figure

    names, zones = names or {}, zones or {}
    panels = list(grids.items()) or [("", [[0.0] * 24 for _ in range(7)])]
    peak = max((value for _, grid in panels for row in grid for value in row), default=0.0)
    fig = Figure(figsize=(10, 0.6 + 2.3 * len(panels)), dpi=110, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    image = None
    for ax, (location, grid) in zip(axes, panels, strict=True):
        image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=peak or 1.0, aspect="auto", interpolation="nearest")
        label = names.get(location, location)
        heading = f"{label} ({location})" if label != location and location else label
        total, busiest = sum(map(sum, grid)), max(map(max, grid))
        ax.set_title(f"{heading} · {total:.1f} complaints, busiest hour {busiest:.1f}", loc="left")
        ax.set_yticks(range(7), _DAYS)
        ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        ax.set_xlabel(f"local hour ({zones[location]})" if location in zones else "local hour")
        ax.set_xticks([x - 0.5 for x in range(1, 24)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, 7)], minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    colour_scale = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01)
    colour_scale.set_label("complaints per hour (a window spread over its hours)")
    return fig


@contextmanager
def chart_fonts() -> Iterator[None]:
    """matplotlib settings for our charts: DejaVu Sans, then a CJK font; no per-glyph warnings without one."""
    import matplotlib

    with matplotlib.rc_context({"font.family": font_families(), "font.size": 9}), warnings.catch_warnings():
        # Without a CJK font matplotlib warns once per missing glyph; cjk_font_family has said it once.
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        yield


def write_heatmap_png(
    grids: dict[str, list[list[float]]],
    path: Path,
    title: str = "Complaints by estimated incident time",
    names: dict[str, str] | None = None,
    zones: dict[str, str] | None = None,
) -> Path:
    """Write :func:`heatmap_figure` as a PNG at ``path``."""
    with chart_fonts():
        fig = heatmap_figure(grids, title, names, zones)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    return path
