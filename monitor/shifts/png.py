"""The weekday x hour complaint heatmap as a PNG, written with zlib and struct.

A whole plotting library for one grid of coloured squares is not worth the
dependency; labels use a 3x5 pixel font scaled up.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# 3x5 glyphs, one string of 15 bits per character, rows top to bottom.
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    "-": "000000111000000", ":": "000010000010000", ".": "000000000000010", "_": "000000000000111",
    "/": "001001010100100", "(": "010100100100010", ")": "010001001001010", "%": "101001010100101",
}  # fmt: skip
_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
CELL, SCALE, MARGIN_LEFT, MARGIN_TOP = 22, 2, 44, 34
WHITE, INK, GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def rect(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        for row in range(max(y, 0), min(y + h, self.height)):
            start, end = row * self.width + max(x, 0), row * self.width + min(x + w, self.width)
            if end > start:
                self.pixels[start * 3 : end * 3] = bytes(colour) * (end - start)

    def text(self, x: int, y: int, text: str, colour: tuple[int, int, int] = INK, scale: int = SCALE) -> None:
        for char in text.upper():
            glyph = _FONT.get(char)
            if glyph:
                for i, bit in enumerate(glyph):
                    if bit == "1":
                        self.rect(x + (i % 3) * scale, y + (i // 3) * scale, scale, scale, colour)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[row * self.width * 3 : (row + 1) * self.width * 3])
            for row in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )


def _shade(value: float, peak: float) -> tuple[int, int, int]:
    """White (none) to deep red (the busiest cell)."""
    if peak <= 0 or value <= 0:
        return (248, 248, 248)
    t = min(value / peak, 1.0) ** 0.7
    return (int(255 - 75 * t), int(240 - 220 * t), int(235 - 215 * t))


def write_heatmap_png(
    grids: dict[str, list[list[float]]], path: Path, title: str = "complaints by incident time"
) -> Path:
    """One panel per location: rows Monday..Sunday, columns local hours 0..23."""
    panel_height = MARGIN_TOP + 7 * CELL + 16
    width = MARGIN_LEFT + 24 * CELL + 16
    canvas = Canvas(width, 24 + panel_height * max(len(grids), 1))
    canvas.text(8, 8, title)
    for p, (location, grid) in enumerate(grids.items()):
        top = 24 + p * panel_height
        peak = max((v for row in grid for v in row), default=0.0)
        canvas.text(8, top + 4, f"{location}  (max {peak:.1f})")
        for hour in range(0, 24, 3):
            canvas.text(MARGIN_LEFT + hour * CELL + 2, top + MARGIN_TOP - 12, str(hour))
        for day in range(7):
            y = top + MARGIN_TOP + day * CELL
            canvas.text(8, y + 6, _DAYS[day])
            for hour in range(24):
                x = MARGIN_LEFT + hour * CELL
                canvas.rect(x, y, CELL, CELL, GRID)
                canvas.rect(x + 1, y + 1, CELL - 2, CELL - 2, _shade(grid[day][hour], peak))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())
    return path
