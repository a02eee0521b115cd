"""The topic branch: copied top layers of the sentiment encoder, run on its hidden state, scoring topics."""

from __future__ import annotations

import json

import pytest
import torch

from models.topic_branch import Branch, cache_hidden, pad_batch, to_head, train_branch
from monitor.classify import model as model_module
from monitor.classify.model import ModelLoadError, SentimentModel
from monitor.classify.topic_head import BRANCH_POOLING, TopicHead, mean_pool

from .conftest import build_tiny_model

TOPICS = ["staff_attitude", "price_billing"]
TEXTS = ["the coffee was cold", "rude staff never again and the bill was wrong", "great", "ok"]


def _branch_head(model: SentimentModel, from_layer: int = 1, seed: int = 0) -> TopicHead:
    torch.manual_seed(seed)
    branch = Branch(model.model, from_layer, model.model.config.num_hidden_layers - from_layer, len(TOPICS))
    # Move the layers off the encoder's weights, so a test can tell the branch from the encoder.
    with torch.no_grad():
        for p in branch.layers.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return to_head(branch, TOPICS, [0.4, 0.6], from_layer)


@pytest.fixture(scope="module")
def branch_model_dir(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-branch"), ["negative", "neutral", "positive"])
    head = _branch_head(SentimentModel(str(path), max_length=64))
    head.phrase_floors = [0.05, 0.0]
    head.save(path)
    return path


def test_copied_layers_reproduce_the_encoder_with_padding(tiny_model_dir):
    # A branch that is an unchanged copy of the top layer gives the encoder's own last hidden state, for
    # texts of different lengths in one padded batch: the attention mask reaches the copied layers.
    model = SentimentModel(str(tiny_model_dir), max_length=64)
    branch = Branch(model.model, 1, 1, 2)
    hidden = cache_hidden(model, TEXTS, from_layer=1)
    assert len({h.shape[0] for h in hidden}) > 1
    x, mask = pad_batch(hidden)
    with torch.inference_mode():
        ours = mean_pool(model_module_layers(branch, x, mask), mask)
    _, pooled_last = model.predict_and_embed(TEXTS)
    assert torch.allclose(ours, pooled_last, atol=1e-5)


def model_module_layers(branch: Branch, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from monitor.classify.topic_head import run_layers

    return run_layers(branch.layers, x, mask)


def test_branch_round_trip(tmp_path, tiny_model_dir):
    model = SentimentModel(str(tiny_model_dir), max_length=64)
    head = _branch_head(model)
    head.save(tmp_path)
    meta = json.loads((tmp_path / "topic_head.json").read_text())
    assert meta["branch"] == {"from_layer": 1, "layers": 1} and meta["pooling"] == BRANCH_POOLING
    loaded = TopicHead.load(tmp_path)
    assert loaded.has_branch and loaded.from_layer == 1 and loaded.branch_size == 1
    for key, value in head.branch_state.items():
        # Stored in fp16, like the encoders.
        assert torch.allclose(loaded.branch_state[key].float(), value.float(), atol=1e-2)
    # A head file whose layers do not match its description is refused.
    meta["branch"]["layers"] = 2
    (tmp_path / "topic_head.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="branch"):
        TopicHead.load(tmp_path)


def test_a_branch_longer_than_the_encoder_is_a_load_error(tmp_path):
    path = build_tiny_model(tmp_path / "m", ["negative", "neutral", "positive"])
    head = _branch_head(SentimentModel(str(path), max_length=64))
    head.from_layer = 2  # two-layer encoder: layer 2 is its output, nothing above it to copy
    head.save(path)
    with pytest.raises(ModelLoadError, match="topic head"):
        SentimentModel(str(path))


def test_sentiment_model_scores_topics_through_the_branch(branch_model_dir, monkeypatch):
    monkeypatch.setattr(model_module, "BRANCH_MIN_COMPLAINT", 0.0)
    model = SentimentModel(str(branch_model_dir), max_length=64, batch_size=2)
    assert model.topic_head.has_branch
    preds = model.predict(TEXTS)
    assert all(set(p.topic_scores) == set(TOPICS) for p in preds)
    assert preds[0].topic_phrase_floors == {"staff_attitude": 0.05, "price_billing": 0.0}
    # By hand: the encoder's hidden state 1, the branch's layer, the mean, the head.
    head = model.topic_head
    hidden = cache_hidden(model, TEXTS, from_layer=1)
    x, mask = pad_batch(hidden)
    with torch.inference_mode():
        features = mean_pool(model_module_layers(head, x, mask), mask)
    for pred, expected in zip(preds, head.scores(features), strict=True):
        assert pred.topic_scores == pytest.approx(expected, abs=1e-5)
    # ... and the branch is not the encoder's own top layer.
    last, _ = pad_batch(cache_hidden(model, TEXTS, from_layer=2))
    assert not torch.allclose(features, mean_pool(last, mask), atol=1e-3)


def test_branch_runs_only_where_a_complaint_is_possible(branch_model_dir, monkeypatch):
    model = SentimentModel(str(branch_model_dir), max_length=64)
    complaint_p = [p.probs["complaint"] for p in model.predict(TEXTS)]
    cut = sorted(complaint_p)[1]  # half the texts below, half at or above
    monkeypatch.setattr(model_module, "BRANCH_MIN_COMPLAINT", cut)
    preds = model.predict(TEXTS)
    for p, pc in zip(preds, complaint_p, strict=True):
        assert (p.topic_scores is not None) == (pc >= cut)
    # Embedding for training ignores the gate: every text gets the branch's features.
    _, features = model.predict_and_embed(TEXTS)
    assert bool((features.abs().sum(1) > 0).all())


def test_int8_and_branch(branch_model_dir, monkeypatch):
    monkeypatch.setattr(model_module, "BRANCH_MIN_COMPLAINT", 0.0)
    fp32 = SentimentModel(str(branch_model_dir), max_length=64).predict(TEXTS)
    int8 = SentimentModel(str(branch_model_dir), max_length=64, quantize="int8").predict(TEXTS)
    for a, b in zip(fp32, int8, strict=True):
        assert set(a.topic_scores) == set(b.topic_scores)
        assert all(abs(a.topic_scores[t] - b.topic_scores[t]) < 0.2 for t in TOPICS)


def test_train_branch_learns_a_separable_topic(tiny_model_dir):
    model = SentimentModel(str(tiny_model_dir), max_length=64)
    texts = ["rude staff", "the staff was rude", "cold coffee", "the bill was wrong", "great coffee", "rude"] * 4
    targets = torch.tensor([[float("rude" in t), float("bill" in t), 0.0] for t in texts])
    hidden = cache_hidden(model, texts, from_layer=1)
    gold = targets[:, :2]

    def select(probs: torch.Tensor) -> float:
        return float(((probs >= 0.5) == gold.bool()).float().mean())

    branch, history = train_branch(
        model,
        hidden,
        targets,
        hidden,
        select,
        from_layer=1,
        n_layers=1,
        n_topics=2,
        epochs=40,
        lr=1e-3,
        seed=0,
        head_lr=0.05,
    )
    assert [h["epoch"] for h in history] == list(range(1, 41))
    assert max(h["selection_micro_f1"] for h in history) == select(branch.probabilities(hidden, 2))
    # It learns (a random 16-wide encoder's features do not separate everything) and keeps its best epoch.
    assert select(branch.probabilities(hidden, 2)) >= history[0]["selection_micro_f1"] + 0.1


def test_bundled_head_keeps_the_phrase_lists_airline_topics():
    # The head learnt restaurants; on customer-service tweets it may add a topic but must not veto the
    # phrase lists' delays, holds and rude agents (its phrase floors are capped for this).
    from monitor.classify.model import BUNDLED_MODEL
    from monitor.classify.topics import tag_topics

    from .test_topic_signals import AIRLINE_STAFF, AIRLINE_WAITS

    if not (BUNDLED_MODEL / "topic_head.json").exists():
        pytest.skip("no bundled topic head")
    model = SentimentModel("bundled", max_length=128)
    for texts, topic in [(AIRLINE_WAITS, "wait_time"), (AIRLINE_STAFF, "staff_attitude")]:
        preds = model.predict(texts)
        missed = [
            t
            for t, p in zip(texts, preds, strict=True)
            if topic not in tag_topics(t, "complaint", p.topic_scores, p.topic_phrase_floors)
        ]
        assert not missed, missed
