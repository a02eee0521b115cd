"""Class offsets from calibration.json (models/calibrate.py) shift a model's logits; a broken file is named."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.calibrate import score
from monitor.classify.calibration import CALIBRATION_FILE, offsets_by_index, read_offsets
from monitor.classify.model import ModelLoadError, SentimentModel

TEXTS = ["the food was cold", "great staff", "we waited an hour", "ok"]


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_offsets_shift_every_prediction_the_same_way(tiny_model_dir: Path, tmp_path: Path) -> None:
    plain = SentimentModel(str(tiny_model_dir), max_length=64).predict(TEXTS)
    shifted_dir = _copy(tiny_model_dir, tmp_path)
    (shifted_dir / CALIBRATION_FILE).write_text(json.dumps({"logit_offsets": {"complaint": 1.0, "praise": -0.5}}))
    shifted = SentimentModel(str(shifted_dir), max_length=64).predict(TEXTS)
    for before, after in zip(plain, shifted, strict=True):
        # A prior shift: each probability ratio moves by exactly exp(offset difference).
        ratio_before = before.probs["complaint"] / before.probs["neutral"]
        ratio_after = after.probs["complaint"] / after.probs["neutral"]
        assert math.isclose(ratio_after / ratio_before, math.e, rel_tol=1e-4)
        ratio = (after.probs["praise"] / after.probs["neutral"]) / (before.probs["praise"] / before.probs["neutral"])
        assert math.isclose(ratio, math.exp(-0.5), rel_tol=1e-4)
        assert math.isclose(sum(after.probs.values()), 1.0, rel_tol=1e-6)
    big = _copy(tiny_model_dir, tmp_path / "big")
    (big / CALIBRATION_FILE).write_text(json.dumps({"logit_offsets": {"complaint": 9.0}}))
    assert {p.label for p in SentimentModel(str(big), max_length=64).predict(TEXTS)} == {"complaint"}


def test_no_file_means_the_model_as_trained(tiny_model_dir: Path) -> None:
    assert read_offsets(tiny_model_dir) == {}
    assert offsets_by_index(tiny_model_dir, ["complaint", "neutral", "praise"]) is None
    assert SentimentModel(str(tiny_model_dir), max_length=64).logit_offsets is None


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"offsets": {}}), json.dumps({"logit_offsets": {"angry": 1}}),
     json.dumps({"logit_offsets": {"complaint": "NaN"}}), json.dumps({"logit_offsets": {"praise": 1e9}})],
)  # fmt: skip
def test_a_broken_calibration_file_is_named_at_load(tiny_model_dir: Path, tmp_path: Path, content: str) -> None:
    broken = _copy(tiny_model_dir, tmp_path)
    (broken / CALIBRATION_FILE).write_text(content)
    with pytest.raises(ModelLoadError, match=CALIBRATION_FILE):
        SentimentModel(str(broken), max_length=64)


def test_the_bundled_models_ship_no_offsets_that_did_not_hold_up() -> None:
    """models/calibrate.py writes offsets only when both held-out halves gain; none did (models/README.md)."""
    models = Path(__file__).resolve().parents[1] / "models"
    for name in ("sentiment-en", "sentiment-multi"):
        path = models / name / CALIBRATION_FILE
        if path.exists():
            assert min(json.loads(path.read_text())["held_out_half_gains"]) > 0


def test_calibration_scores_match_the_evaluation_metrics() -> None:
    from models.metrics import classification_report

    rng = np.random.default_rng(3)
    gold, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    report = classification_report(gold.tolist(), pred.tolist(), ["complaint", "neutral", "praise"])
    assert math.isclose(score(gold, pred, "accuracy"), report["accuracy"])
    assert math.isclose(score(gold, pred, "macro_recall"), report["macro_recall"])
    assert math.isclose(score(gold, pred, "macro_f1"), report["macro_f1"])
