"""A model's class offsets: a prior shift added to its logits, chosen on a mix of dev sets (models/calibrate.py).

``calibration.json`` beside the weights holds ``logit_offsets`` by our label name; a model without the file is
used as trained. The offsets move where one class ends and the next begins (a model trained on tweets reads
star-rated reviews with too little "neutral"); they never reorder the texts within a class.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CALIBRATION_FILE = "calibration.json"
LABELS = ("complaint", "neutral", "praise")


def read_offsets(directory: str | Path) -> dict[str, float]:
    """The offsets in ``directory``'s calibration file by label (empty when there is none).

    Raises ValueError for a file that is there but unreadable, so a broken model directory is named at load."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        offsets = json.loads(path.read_text(encoding="utf-8"))["logit_offsets"]
        values = {str(label): float(value) for label, value in offsets.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a calibration file ({exc})") from None
    unknown = set(values) - set(LABELS)
    if unknown or not all(math.isfinite(v) and abs(v) <= 10 for v in values.values()):
        raise ValueError(f"{path}: logit_offsets must map {', '.join(LABELS)} to numbers within ±10")
    return values


def offsets_by_index(directory: str | Path, index_labels: list[str]) -> list[float] | None:
    """One offset per output of the model (its outputs named by our labels), or None when nothing shifts."""
    offsets = read_offsets(directory)
    vector = [offsets.get(label, 0.0) for label in index_labels]
    return vector if any(vector) else None
