"""CSV export of the queue. Cells that a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable
from typing import Any

from monitor.escaping import csv_cell

FORMULA_CHARS = "=+-@"

EXPORT_COLUMNS = (
    "id", "state", "priority", "reason", "sla_due_at", "assignee", "first_replied_at", "source", "kind", "author",
    "rating", "label", "topics", "location", "brand", "posted_at", "url", "title", "text",
)  # fmt: skip


def _ignored_lead(ch: str) -> bool:
    """A character a spreadsheet may skip or trim before it looks for a formula: whitespace of any kind
    (line feed, NBSP, ideographic space), controls and invisible format characters (zero-width, BOM)."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def formula_safe(value: object) -> object:
    """``value`` with a leading ``'`` when a spreadsheet could read it as a formula.

    Besides ``= + - @`` (and tab / carriage return) at the start, that covers a formula character after
    leading whitespace or invisible characters, and the full-width and small forms (＝ ＋ － ＠ ﹦ …),
    which NFKC folds onto the ASCII ones and some spreadsheets accept in their place.
    """
    value = csv_cell(value)
    if not isinstance(value, str) or value.startswith("'"):
        return value
    for ch in value:
        if _ignored_lead(ch):
            continue
        if unicodedata.normalize("NFKC", ch)[:1] in tuple(FORMULA_CHARS):
            return "'" + value
        break
    return value


def queue_csv(items: Iterable[dict[str, Any]]) -> str:
    """The items as CSV text (header first); every cell passes through ``formula_safe``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for item in items:
        row = []
        for column in EXPORT_COLUMNS:
            value = item.get(column)
            if column == "topics" and value:
                value = ";".join(json.loads(value))
            row.append(formula_safe("" if value is None else value))
        writer.writerow(row)
    return out.getvalue()
