"""CSV export of the queue. Cells that a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from monitor.escaping import csv_cell

EXPORT_COLUMNS = (
    "id", "state", "priority", "reason", "sla_due_at", "assignee", "first_replied_at", "source", "kind", "author",
    "rating", "label", "topics", "location", "brand", "posted_at", "url", "title", "text",
)  # fmt: skip


# ``monitor.escaping.csv_cell`` is the one implementation (leading whitespace, invisible characters and
# full-width forms before = + - @ included); the export calls it by the name that says what it is for.
formula_safe = csv_cell


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
