"""The model we ship: present, small, offline-loadable, right on clear cases."""

import json

import pytest

from monitor.classify.model import BUNDLED_MODEL, BUNDLED_MULTILINGUAL, INT8_EMBEDDINGS, SentimentModel

CLEAR_CASES = [
    ("The barista was rude and I waited 40 minutes for a cold latte.", "complaint"),
    ("Worst service ever. They charged me twice and nobody answers the phone.", "complaint"),
    ("I hate how slow the app is, it crashed twice today", "complaint"),
    ("Absolutely love this place, best coffee in town and the staff are so friendly!", "praise"),
    ("Thank you so much for the quick help, amazing service as always", "praise"),
    ("Great food, lovely atmosphere, we'll definitely be back", "praise"),
    ("The downtown store opens at 7am on weekdays.", "neutral"),
    ("Acme Coffee announced a new location on Main Street, opening in March.", "neutral"),
]


@pytest.fixture(scope="module")
def bundled():
    return SentimentModel("bundled", max_length=128)


def test_bundled_model_files_are_in_hugging_face_layout():
    files = {p.name for p in BUNDLED_MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", INT8_EMBEDDINGS} <= files
    assert (BUNDLED_MODEL / "model.safetensors").stat().st_size <= 50 * 1024 * 1024
    config = json.loads((BUNDLED_MODEL / "config.json").read_text())
    assert config["id2label"] == {"0": "complaint", "1": "neutral", "2": "praise"}


def test_bundled_weights_stay_within_what_a_repository_should_hold():
    # Every committed version stays in history: both bundled models together within ~120 MB.
    total = sum(p.stat().st_size for d in (BUNDLED_MODEL, BUNDLED_MULTILINGUAL) for p in d.iterdir() if p.is_file())
    assert total <= 120_000_000, f"bundled models take {total / 1e6:.1f} MB"


def test_bundled_model_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = SentimentModel("bundled")
    assert model.index_labels == ["complaint", "neutral", "praise"]


@pytest.mark.parametrize(("text", "label"), CLEAR_CASES)
def test_clear_cases(bundled, text, label):
    [prediction] = bundled.predict([text])
    assert prediction.label == label, prediction.probs


def test_batch_and_single_predictions_agree(bundled):
    texts = [text for text, _ in CLEAR_CASES]
    batched = bundled.predict(texts)
    for text, prediction in zip(texts, batched, strict=True):
        assert bundled.predict([text])[0].probs == pytest.approx(prediction.probs, abs=1e-4)
