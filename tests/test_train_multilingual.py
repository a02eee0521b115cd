"""The training scripts on a tiny model and corpus: which weights a pass may move, and bundled (int8-packed)
directories read back as trained, never with random word embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from models.average_weights import main as average_main
from models.pack_embeddings import pack
from models.train import export, load_for_training
from models.train_multilingual import build_mix, main
from monitor.classify.textprep import normalise_for_model
from tests.conftest import TINY_VOCAB, build_tiny_model

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
CAPS = {"tweets_en": 6, "reviews_en_praise": 2500, "reviews_en_rest": 0, "sst2": 2, "zh_each": 2, "umsab_each": 0}


def _train(base: Path, data: Path, out: Path, *extra: str) -> dict:
    argv = [
        "--data", str(data), "--base", str(base), "--output", str(out), "--checkpoint-dir", str(out / "ckpt"),
        "--tweets-en", str(CAPS["tweets_en"]), "--sst2", str(CAPS["sst2"]), "--zh-each", str(CAPS["zh_each"]),
        "--batch-size", "4", "--lr", "1e-2",
        "--max-length", "32", "--threads", "1", *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return load_file(out / "model.safetensors")


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    return build_tiny_model(tmp_path / "base", ["negative", "neutral", "positive"])


def test_word_embeddings_stay_frozen_by_default(tiny_base, tiny_sentiment_data, tmp_path):
    before = load_file(tiny_base / "model.safetensors")
    after = _train(tiny_base, tiny_sentiment_data, tmp_path / "frozen")
    assert after[WORD_EMBEDDINGS].equal(before[WORD_EMBEDDINGS].half())
    assert not after["classifier.weight"].equal(before["classifier.weight"].half())


def test_train_embeddings_moves_the_rows_the_mix_uses_and_no_other(tiny_base, tiny_sentiment_data, tmp_path):
    before = load_file(tiny_base / "model.safetensors")[WORD_EMBEDDINGS].half()
    after = _train(tiny_base, tiny_sentiment_data, tmp_path / "trained", "--train-embeddings")[WORD_EMBEDDINGS]
    moved = {TINY_VOCAB[row] for row in range(len(TINY_VOCAB)) if not after[row].equal(before[row])}
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    mix = build_mix(tiny_sentiment_data, 13, CAPS)
    used = {token for text, _, _ in mix for token in tokenizer.tokenize(normalise_for_model(text))}
    # Every row a training text reads moves; no other does (weight decay would shrink them all).
    assert moved == used | {"[CLS]", "[SEP]"}
    assert {"[UNK]", "great", "staff"} <= moved
    assert "coffee" not in moved


def _packed_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    pack(target)
    return target


def test_a_packed_directory_loads_for_training_with_its_own_embeddings(tiny_base, tmp_path):
    original = load_file(tiny_base / "model.safetensors")[WORD_EMBEDDINGS].float()
    model = load_for_training(_packed_copy(tiny_base, tmp_path / "packed"))
    loaded = model.get_input_embeddings().weight.detach()
    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded, original, atol=original.abs().max().item() / 100)


def test_averaging_packed_directories_averages_their_embeddings(tmp_path):
    labels = ["negative", "neutral", "positive"]
    bases = [build_tiny_model(tmp_path / name, labels, seed=seed) for name, seed in (("a", 1), ("b", 2))]
    packed = [_packed_copy(base, tmp_path / f"{base.name}-packed") for base in bases]
    for directory in packed:
        (directory / "training_meta.json").write_text("{}")
    assert average_main([*map(str, packed), "--no-dev", "--output", str(tmp_path / "soup")]) == 0
    mean = sum(load_file(b / "model.safetensors")[WORD_EMBEDDINGS].float() for b in bases) / 2
    soup = load_for_training(tmp_path / "soup").get_input_embeddings().weight.detach()
    assert torch.allclose(soup, mean, atol=mean.abs().max().item() / 50)


def test_a_directory_with_both_embeddings_is_refused_and_an_export_clears_stale_rows(tiny_base, tmp_path):
    from monitor.classify.model import INT8_EMBEDDINGS, ModelLoadError, SentimentModel

    packed = _packed_copy(tiny_base, tmp_path / "packed")
    model = load_for_training(packed)
    shutil.copy(tiny_base / "model.safetensors", packed / "model.safetensors")  # new weights copied over
    with pytest.raises(ModelLoadError, match=INT8_EMBEDDINGS):
        SentimentModel(str(packed), max_length=16)
    export(model, AutoTokenizer.from_pretrained(tiny_base), packed, {})
    assert not (packed / INT8_EMBEDDINGS).exists()
    SentimentModel(str(packed), max_length=16)


def test_packing_twice_says_so(tiny_base, tmp_path):
    packed = _packed_copy(tiny_base, tmp_path / "packed")
    with pytest.raises(SystemExit, match="already packed"):
        pack(packed)


def test_loading_a_packed_directory_leaves_the_seeded_random_stream_alone(tiny_base, tmp_path):
    packed = _packed_copy(tiny_base, tmp_path / "packed")
    draws = []
    for directory in (tiny_base, packed):
        torch.manual_seed(0)
        model = load_for_training(directory)
        draws.append(torch.rand(3))
        assert not model.training
    assert torch.equal(draws[0], draws[1])
