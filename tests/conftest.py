from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789.,!?'-@#",
    "the", "coffee", "was", "cold", "rude", "great", "staff", "wait", "love", "never", "again",
]  # fmt: skip


@pytest.fixture
def fresh_db(tmp_path):
    from monitor.store import open_db

    db = open_db(tmp_path / "test.db")
    yield db
    db.conn.close()


def build_tiny_model(path: Path, labels: list[str], seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT with our label names: tests the plumbing, not accuracy."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), ["negative", "neutral", "positive"])


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    # The tiny model stands in for the multilingual one too, so no test loads the bundled weights by accident.
    return Classifier(ModelConfig(default=str(tiny_model_dir), multilingual=str(tiny_model_dir), max_length=64))


def write_config(tmp_path: Path, body: str, model: str | None = None) -> Path:
    path = tmp_path / "config.toml"
    # The tiny model also stands in for the multilingual one, so tests never load the bundled weights by accident.
    header = f'[model]\ndefault = "{model}"\nmultilingual = "{model}"\n' if model else ""
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's end-to-end tests (modules call ``tests.browser.require_chromium``)."""
    from playwright.sync_api import sync_playwright

    from .browser import CHROMIUM, LAUNCH_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
