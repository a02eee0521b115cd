"""The topic head: aspect data loading, the grouped split, the head file, and tag_topics' union."""

from __future__ import annotations

import json

import pytest
import torch

from models.train_topics import (
    CATEGORY_TOPICS,
    MAMS_CATEGORY_TOPICS,
    best_threshold,
    corpus_name,
    grouped_folds,
    grouped_split,
    load_aspects,
    split_corpora,
    topics_for,
    train_head,
)
from monitor.classify import topic_head
from monitor.classify.model import SentimentModel
from monitor.classify.stage import classify_record
from monitor.classify.topic_head import TopicHead, mean_pool
from monitor.classify.topics import DECISION_SCORE, TOPICS, tag_topics

from .conftest import build_tiny_model

ABSA = """<?xml version="1.0" encoding="UTF-8"?>
<Reviews>
  <Review rid="r1"><sentences>
    <sentence id="r1:0"><text>The waiter was rude and the pasta was cold.</text><Opinions>
      <Opinion target="waiter" category="SERVICE#GENERAL" polarity="negative" from="4" to="10"/>
      <Opinion target="pasta" category="FOOD#QUALITY" polarity="negative" from="30" to="35"/>
    </Opinions></sentence>
    <sentence id="r1:1"><text>Great prices though.</text><Opinions>
      <Opinion target="NULL" category="RESTAURANT#PRICES" polarity="positive" from="0" to="0"/>
    </Opinions></sentence>
  </sentences></Review>
  <Review rid="r2"><sentences>
    <sentence id="r2:0"><text>Overpriced drinks, noisy room, bad place.</text><Opinions>
      <Opinion target="drinks" category="DRINKS#PRICES" polarity="negative" from="11" to="17"/>
      <Opinion target="room" category="AMBIENCE#GENERAL" polarity="negative" from="25" to="29"/>
      <Opinion target="place" category="RESTAURANT#GENERAL" polarity="negative" from="35" to="40"/>
    </Opinions></sentence>
    <sentence id="r2:1"><text>We went on a Tuesday.</text></sentence>
  </sentences></Review>
</Reviews>
"""


def test_load_aspects_maps_negative_categories(tmp_path):
    path = tmp_path / "absa.xml"
    path.write_text(ABSA, encoding="utf-8")
    sentences = load_aspects(path)
    assert [s.review for s in sentences] == ["r1", "r1", "r2", "r2"]
    assert sentences[0].topics == {"staff_attitude", "product_quality"}
    assert sentences[1].topics == set()  # positive opinions carry no complaint topic
    assert sentences[2].topics == {"price_billing", "cleanliness_ambience"}  # RESTAURANT#GENERAL: none
    assert sentences[3].topics == set() and sentences[3].text == "We went on a Tuesday."


MAMS = """<?xml version="1.0" encoding="utf-8"?>
<sentences>
  <sentence><text>Though the service might be a little slow, the waitresses are very friendly.</text>
    <aspectCategories>
      <aspectCategory category="service" polarity="negative"/>
      <aspectCategory category="staff" polarity="positive"/>
    </aspectCategories></sentence>
  <sentence><text>The food was great but the service was insulting and the room cramped.</text>
    <aspectCategories>
      <aspectCategory category="food" polarity="positive"/>
      <aspectCategory category="service" polarity="negative"/>
      <aspectCategory category="place" polarity="negative"/>
    </aspectCategories></sentence>
  <sentence><text>Overpriced menu, and the hostess had an attitude.</text>
    <aspectCategories>
      <aspectCategory category="menu" polarity="negative"/>
      <aspectCategory category="price" polarity="negative"/>
      <aspectCategory category="staff" polarity="negative"/>
      <aspectCategory category="miscellaneous" polarity="negative"/>
    </aspectCategories></sentence>
  <sentence><text>We went on a Tuesday, the wait staff were lovely.</text>
    <aspectCategories>
      <aspectCategory category="staff" polarity="positive"/>
      <aspectCategory category="miscellaneous" polarity="neutral"/>
    </aspectCategories></sentence>
</sentences>
"""


def test_load_mams_splits_service_into_wait_and_staff(tmp_path):
    path = tmp_path / "mams_acsa_train.xml"
    path.write_text(MAMS, encoding="utf-8")
    sentences = load_aspects(path)
    assert [s.topics for s in sentences] == [
        {"wait_time"},  # slow service is a wait
        {"staff_attitude", "cleanliness_ambience"},  # service with no waiting; place → the room
        {"product_quality", "price_billing", "staff_attitude"},  # miscellaneous: no topic
        set(),
    ]
    assert [s.negative for s in sentences] == [True, True, True, False]
    assert {s.corpus for s in sentences} == {"mams_acsa"} and len({s.review for s in sentences}) == 4
    # SemEval's SERVICE#GENERAL follows the same rule.
    assert topics_for(["SERVICE#GENERAL"], "we waited an hour for a table") == {"wait_time"}
    assert topics_for(["SERVICE#GENERAL"], "the wait staff ignored us") == {"staff_attitude"}


def test_split_corpora_holds_out_reviews_only_where_no_held_out_file(tmp_path):
    semeval, train, val = tmp_path / "absa_train.xml", tmp_path / "mams_acsa_train.xml", tmp_path / "mams_acsa_val.xml"
    semeval.write_text(ABSA, encoding="utf-8")
    train.write_text(MAMS, encoding="utf-8")
    val.write_text(MAMS, encoding="utf-8")
    assert corpus_name(val) == corpus_name(train) == "mams_acsa"
    training, held = split_corpora([semeval, train], [val], 0.5, seed=1)
    names = [name for name, _ in held]
    assert names[0].startswith("absa (50% of reviews") and names[1] == "mams_acsa (mams_acsa_val.xml)"
    assert sum(s.corpus == "mams_acsa" for s in training) == 4  # trained on whole
    held_reviews = {s.review for s in held[0][1]}
    assert held_reviews and not held_reviews & {s.review for s in training if s.corpus == "absa"}


def test_category_mapping_targets_our_topics():
    assert set(CATEGORY_TOPICS.values()) <= set(TOPICS) - {"other"}
    assert set(MAMS_CATEGORY_TOPICS.values()) <= set(TOPICS) - {"other"}
    assert topics_for(["FOOD#STYLE_OPTIONS", "RESTAURANT#PRICES", "LOCATION#GENERAL"]) == {
        "product_quality",
        "price_billing",
    }


def test_grouped_split_keeps_reviews_whole():
    groups = [f"r{i // 3}" for i in range(300)] + [f"s{i}" for i in range(50)]
    train, test = grouped_split(groups, 0.2, seed=1)
    assert sorted(train + test) == list(range(len(groups)))
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert 0.18 <= len(test) / len(groups) <= 0.25
    assert grouped_split(groups, 0.2, seed=1) == (train, test)  # seeded
    folds = grouped_folds([groups[i] for i in train], 5, seed=1)
    fold_groups = [{groups[train[i]] for i in fold} for fold in folds]
    assert sum(len(f) for f in folds) == len(train)
    assert all(not (a & b) for n, a in enumerate(fold_groups) for b in fold_groups[n + 1 :])


def test_best_threshold_separates():
    threshold, f1 = best_threshold([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert f1 == 1.0 and 0.3 < threshold <= 0.8


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 2.0]]


def _random_head(hidden: int = 16) -> TopicHead:
    torch.manual_seed(0)
    n = 120
    x = torch.randn(n, hidden)
    # Topic A follows feature 0, topic B feature 1: learnable from a handful of points.
    y = torch.stack([(x[:, 0] > 0.5).float(), (x[:, 1] > 0.5).float()], dim=1)
    head, chosen = train_head(x, y, ["staff_attitude", "price_billing"], [f"g{i // 2}" for i in range(n)], folds=3)
    assert set(chosen) == {"staff_attitude", "price_billing"}
    return head


def test_head_round_trip(tmp_path):
    head = _random_head()
    assert head.weight.shape == (2, 16) and head.bias.shape == (2,)
    head.save(tmp_path)
    loaded = TopicHead.load(tmp_path)
    assert loaded is not None and loaded.topics == ["staff_attitude", "price_billing"]
    assert torch.equal(loaded.weight, head.weight) and loaded.thresholds == head.thresholds
    meta = json.loads((tmp_path / "topic_head.json").read_text())
    assert meta["pooling"] == topic_head.POOLING
    x = torch.zeros(2, 16)
    x[0, :2] = torch.tensor([3.0, -3.0])
    x[1, :2] = torch.tensor([-3.0, 3.0])
    scores = loaded.scores(x)
    assert scores[0]["staff_attitude"] >= DECISION_SCORE > scores[0]["price_billing"]
    assert scores[1]["price_billing"] >= DECISION_SCORE > scores[1]["staff_attitude"]
    assert TopicHead.load(tmp_path / "nothing-here") is None


def test_decision_score_matches_topic_head():
    assert DECISION_SCORE == topic_head.DECISION_SCORE


def test_tag_topics_union():
    scores = {"product_quality": 0.9, "price_billing": 0.2, "staff_attitude": 0.5}
    assert tag_topics("the barista was rude", "complaint", scores) == ["staff_attitude", "product_quality"]
    assert tag_topics("way too expensive", "complaint", scores) == [
        "staff_attitude",
        "product_quality",
        "price_billing",
    ]
    assert tag_topics("meh", "complaint", {"product_quality": 0.1}) == ["other"]
    assert tag_topics("meh", "complaint", None) == ["other"]
    assert tag_topics("meh", "praise", scores) == []
    assert tag_topics("meh", "complaint", {"other": 0.99}) == ["other"]


@pytest.fixture(scope="module")
def headed_model_dir(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-headed"), ["negative", "neutral", "positive"])
    _random_head(hidden=16).save(path)
    return path


def test_sentiment_model_scores_topics_in_the_same_pass(headed_model_dir, tiny_model_dir):
    texts = ["the coffee was cold", "rude staff never again", "great"]
    model = SentimentModel(str(headed_model_dir), max_length=64, batch_size=2)
    preds = model.predict(texts)
    assert all(set(p.topic_scores) == {"staff_attitude", "price_billing"} for p in preds)
    _, pooled = model.predict_and_embed(texts)
    expected = model.topic_head.scores(pooled)
    for pred, exp in zip(preds, expected, strict=True):
        assert pred.topic_scores == pytest.approx(exp, abs=1e-5)
    record = classify_record(texts[0], 1, None, "en", preds[0])
    assert json.loads(record["topics"]) == tag_topics(texts[0], "complaint", preds[0].topic_scores)
    # No head file: no topic scores, and no hidden states requested.
    plain = SentimentModel(str(tiny_model_dir), max_length=64)
    assert plain.topic_head is None and all(p.topic_scores is None for p in plain.predict(texts))


def test_broken_head_is_a_load_error(tmp_path):
    from monitor.classify.model import ModelLoadError

    path = build_tiny_model(tmp_path / "broken", ["negative", "neutral", "positive"])
    _random_head(hidden=8).save(path)  # the tiny model's hidden size is 16
    with pytest.raises(ModelLoadError, match="topic head"):
        SentimentModel(str(path))
    (path / "topic_head.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="topic head"):
        SentimentModel(str(path))


def test_bundled_head_matches_bundled_model():
    from models.train_topics import encoder_fingerprint
    from monitor.classify.model import BUNDLED_MODEL

    meta_path = BUNDLED_MODEL / "topic_head.json"
    if not meta_path.exists():
        pytest.skip("no bundled topic head")
    meta = json.loads(meta_path.read_text())
    assert meta["encoder_sha256"] == encoder_fingerprint(BUNDLED_MODEL), (
        "models/sentiment-en was retrained after its topic head: re-run models/train_topics.py"
    )


def test_fingerprint_covers_packed_word_embeddings(tmp_path):
    import hashlib
    import shutil

    from safetensors.torch import load_file, save_file

    from models.pack_embeddings import pack
    from models.train_topics import encoder_fingerprint
    from monitor.classify.model import INT8_EMBEDDINGS

    plain = build_tiny_model(tmp_path / "plain", ["negative", "neutral", "positive"])
    weights = (plain / "model.safetensors").read_bytes()
    assert encoder_fingerprint(plain) == hashlib.sha256(weights).hexdigest()
    packed = tmp_path / "packed"
    shutil.copytree(plain, packed)
    pack(packed)
    before = encoder_fingerprint(packed)
    rows = load_file(packed / INT8_EMBEDDINGS)
    rows["rows"][5] = -rows["rows"][5]  # retrained embeddings, the rest of the weights unchanged
    save_file(rows, packed / INT8_EMBEDDINGS)
    assert encoder_fingerprint(packed) != before


@pytest.mark.parametrize("matches", [True, False])
def test_packing_restamps_a_topic_head_that_matched_its_encoder(tmp_path, matches):
    from models.pack_embeddings import pack
    from models.train_topics import encoder_fingerprint

    model_dir = build_tiny_model(tmp_path / "model", ["negative", "neutral", "positive"])
    before = encoder_fingerprint(model_dir)
    recorded = before if matches else "0" * 64  # a head trained on other weights
    (model_dir / "topic_head.json").write_text(json.dumps({"encoder_sha256": recorded}))
    pack(model_dir)
    meta = json.loads((model_dir / "topic_head.json").read_text())
    if matches:
        assert meta["encoder_sha256"] == encoder_fingerprint(model_dir) != before
        assert meta["encoder_packed"]["sha256_trained_on"] == before
    else:  # still stale, so test_bundled_head_matches_bundled_model would catch it
        assert meta == {"encoder_sha256": recorded}


def test_phrase_floor_lets_the_head_veto_a_phrase_match():
    # A waiting phrase in a sentence the head is sure is not about waiting: the head vetoes it.
    assert "wait_time" in tag_topics("we waited 40 minutes", "complaint", {"wait_time": 0.01})
    floors = {"wait_time": 0.05}
    assert "wait_time" not in tag_topics("we waited 40 minutes", "complaint", {"wait_time": 0.01}, floors)
    assert "wait_time" in tag_topics("we waited 40 minutes", "complaint", {"wait_time": 0.2}, floors)
    # Topics the head does not score (phrase-only ones) are never vetoed.
    assert "staff_knowledge" in tag_topics("the staff had no idea", "complaint", {"wait_time": 0.0}, floors)
    # Nor are phrases that name the problem beyond doubt (the head learnt restaurants, not airports).
    for text in ["the line at the check-in counter is insane", "on hold for 2 hours", "flight delayed again"]:
        assert "wait_time" in tag_topics(text, "complaint", {"wait_time": 0.0}, floors), text


def test_best_phrase_floor_is_chosen_on_out_of_fold_scores():
    from models.train_topics import best_phrase_floor

    # Phrase matches on 4 sentences: two true (head unsure, 0.3) and two false (head sure they are not, 0.0).
    scores = [0.3, 0.3, 0.0, 0.0, 0.9]
    phrase = [True, True, True, True, False]
    gold = [True, True, False, False, True]
    floor, f1 = best_phrase_floor(scores, phrase, gold)
    assert 0.0 < floor <= 0.3 and f1 == 1.0
    # When every phrase match is right, the lowest floor (believe them all) wins the tie.
    assert best_phrase_floor([0.0, 0.9], [True, False], [True, True])[0] == 0.0
    # A sure match counts whatever the floor: here the false matches are sure ones, so no floor can help.
    sure = [False, False, True, True, False]
    assert best_phrase_floor(scores, phrase, gold, sure) == (0.0, pytest.approx(2 * 3 / (2 * 3 + 2)))


def test_head_round_trip_keeps_phrase_floors(tmp_path):
    head = _random_head()
    head.phrase_floors = [0.05, 0.0]
    head.save(tmp_path)
    loaded = TopicHead.load(tmp_path)
    assert loaded.phrase_floors == [0.05, 0.0]
    assert loaded.phrase_floor_map == {"staff_attitude": 0.05, "price_billing": 0.0}
    meta = json.loads((tmp_path / "topic_head.json").read_text())
    meta["phrase_floors"] = [0.1]
    (tmp_path / "topic_head.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="phrase_floors"):
        TopicHead.load(tmp_path)


def test_train_head_chooses_phrase_floors():
    torch.manual_seed(1)
    n = 40
    x = torch.randn(n, 16)
    y = torch.stack([(x[:, 0] > 0.5).float(), (x[:, 1] > 0.5).float()], dim=1)
    phrase = [{"staff_attitude"} if i % 3 == 0 else set() for i in range(n)]
    head, chosen = train_head(x, y, ["staff_attitude", "price_billing"], [f"g{i // 2}" for i in range(n)], 3, 0, phrase)
    assert head.phrase_floors is not None and len(head.phrase_floors) == 2
    assert all("phrase_floor" in c and "cv_f1_with_phrases" in c for c in chosen.values())


def test_average_weights_is_the_midpoint(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from models.average_weights import average

    first = build_tiny_model(tmp_path / "a", ["negative", "neutral", "positive"], seed=1)
    second = build_tiny_model(tmp_path / "b", ["negative", "neutral", "positive"], seed=2)
    a = AutoModelForSequenceClassification.from_pretrained(first)
    b = AutoModelForSequenceClassification.from_pretrained(second)
    expected = {k: (v + b.state_dict()[k]) / 2 for k, v in a.state_dict().items() if v.is_floating_point()}
    average(a, b, 0.5)
    for name, value in expected.items():
        assert torch.allclose(a.state_dict()[name], value)


def test_average_weights_of_three_seeds_is_their_plain_mean(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from models.average_weights import average_all, main

    labels = ["negative", "neutral", "positive"]
    paths = [build_tiny_model(tmp_path / n, labels, seed=s) for n, s in zip("abc", (1, 2, 3), strict=True)]
    models = [AutoModelForSequenceClassification.from_pretrained(p) for p in paths]
    states = [m.state_dict() for m in models]
    expected = {k: sum(s[k] for s in states) / 3 for k, v in states[0].items() if v.is_floating_point()}
    average_all(models)
    for name, value in expected.items():
        assert torch.allclose(models[0].state_dict()[name], value, atol=1e-6)
    with pytest.raises(SystemExit):
        main([*map(str, paths), "--alpha", "0.3", "--output", str(tmp_path / "soup")])
    # The command writes the mean of all three (fp16) and names every parent.
    (tmp_path / "c" / "training_meta.json").write_text("{}")
    assert main([*map(str, paths), "--no-dev", "--output", str(tmp_path / "soup")]) == 0
    soup = AutoModelForSequenceClassification.from_pretrained(tmp_path / "soup", dtype=torch.float32).state_dict()
    for name, value in expected.items():
        assert torch.allclose(soup[name], value, atol=2e-3), name
    meta = json.loads((tmp_path / "soup" / "training_meta.json").read_text())
    assert meta["averaged"]["models"] == [str(p) for p in paths]


def test_encoder_topic_training_never_sees_held_out_or_unseen_sentences(tmp_path):
    """models/train.py --aspects trains the encoder on a part; train_topics --fit-unseen-only fits on the rest."""
    import argparse

    from models.train import TOPIC_HELD_OUT_SHARE, TOPIC_SPLIT_SEED, aspect_training_sentences
    from models.train_topics import unseen_sentences

    semeval, train, val = tmp_path / "absa_train.xml", tmp_path / "mams_acsa_train.xml", tmp_path / "mams_acsa_val.xml"
    semeval.write_text(ABSA, encoding="utf-8")
    train.write_text(MAMS, encoding="utf-8")
    val.write_text(MAMS.replace("<text>", "<text>val "), encoding="utf-8")
    seen, unseen = aspect_training_sentences([semeval, train], [val], 0.5, seed=3)
    assert seen and unseen
    key = lambda s: (s.corpus, s.review, s.text)  # noqa: E731
    assert not {key(s) for s in seen} & {key(s) for s in unseen}
    _, held = split_corpora([semeval, train], [val], TOPIC_HELD_OUT_SHARE, TOPIC_SPLIT_SEED)
    held_keys = {key(s) for _, sentences in held for s in sentences}
    assert not held_keys & {key(s) for s in seen + unseen}
    # train_topics reads the split back from the model's training_meta.json.
    model = tmp_path / "model"
    model.mkdir()
    meta = {"files": [semeval.name, train.name], "held_out_files": [val.name], "unseen_share": 0.5, "seed": 3}
    (model / "training_meta.json").write_text(json.dumps({"topic_sentences": meta}))
    args = argparse.Namespace(model=str(model), aspects=[semeval, train], held_out_files=[val], held_out=0.2, seed=13)
    assert [key(s) for s in unseen_sentences(args)] == [key(s) for s in unseen]
    with pytest.raises(SystemExit, match="differ"):
        unseen_sentences(argparse.Namespace(**{**vars(args), "aspects": [semeval]}))
