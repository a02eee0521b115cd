import json

import pytest

from monitor.classify.language import detect_language
from monitor.classify.model import ModelLoadError, SentimentModel, build_label_map
from monitor.classify.rating import combine_with_rating
from monitor.classify.stage import UNCLASSIFIED_LANGUAGE, Classifier, classify_objects, classify_pending
from monitor.classify.textprep import head_and_tail, normalise_for_model
from monitor.classify.topics import tag_topics, urgency_flags
from monitor.config import ModelConfig
from monitor.store import record_mentions

from .conftest import build_tiny_model


@pytest.mark.parametrize(
    ("labels", "label_map", "expected"),
    [
        (["negative", "neutral", "positive"], None, ["complaint", "neutral", "praise"]),
        (["LABEL_0", "LABEL_1", "LABEL_2"], None, ["complaint", "neutral", "praise"]),
        (["1 star", "2 stars", "3 stars", "4 stars", "5 stars"], None,
         ["complaint", "complaint", "neutral", "praise", "praise"]),
        (["NEG", "POS"], None, ["complaint", "praise"]),
        (["bad", "meh", "good"], {"bad": "complaint", "meh": "neutral", "good": "praise"},
         ["complaint", "neutral", "praise"]),
    ],
)  # fmt: skip
def test_label_maps(labels, label_map, expected):
    assert build_label_map(dict(enumerate(labels)), label_map) == expected


def test_unmappable_labels_name_the_config_key():
    with pytest.raises(ModelLoadError, match=r"model\.label_map"):
        build_label_map({0: "toxic", 1: "fine"})


def test_star_model_probabilities_are_summed_into_our_labels(tmp_path):
    stars = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    model = SentimentModel(str(build_tiny_model(tmp_path / "stars", stars)), max_length=32)
    [pred] = model.predict(["the coffee was cold"])
    assert set(pred.probs) == {"complaint", "neutral", "praise"}
    assert sum(pred.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.score == max(pred.probs.values())


def test_predictions_keep_input_order_across_length_sorted_batches(tiny_model_dir):
    model = SentimentModel(str(tiny_model_dir), max_length=64, batch_size=2)
    texts = ["great " * n for n in (9, 1, 5, 3, 7)]
    batched = model.predict(texts)
    one_by_one = [model.predict([t])[0] for t in texts]
    for a, b in zip(batched, one_by_one, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_long_text_keeps_head_and_tail():
    assert head_and_tail(list(range(10)), 4) == [0, 1, 8, 9]
    assert head_and_tail([1, 2], 4) == [1, 2]


def test_normalise_for_model_matches_training_data_conventions():
    assert normalise_for_model("@acme_coffee see https://t.co/x \\u002c ok") == "@user see http , ok"


@pytest.mark.parametrize(
    ("probs", "rating", "label"),
    [
        ({"complaint": 0.05, "neutral": 0.15, "praise": 0.80}, 1, "complaint"),  # polite one-star
        ({"complaint": 0.10, "neutral": 0.30, "praise": 0.60}, 2, "complaint"),
        ({"complaint": 0.50, "neutral": 0.30, "praise": 0.20}, 3, "complaint"),
        ({"complaint": 0.20, "neutral": 0.50, "praise": 0.30}, 3, "neutral"),
        ({"complaint": 0.30, "neutral": 0.30, "praise": 0.40}, 5, "praise"),
        ({"complaint": 0.90, "neutral": 0.05, "praise": 0.05}, 5, "complaint"),  # 5★ "waited an hour, rude"
        ({"complaint": 0.70, "neutral": 0.10, "praise": 0.20}, None, "complaint"),
    ],
)
def test_rating_rule(probs, rating, label):
    final, combined = combine_with_rating(probs, rating)
    assert final == label
    assert sum(combined.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Great coffee!", "en"),
        ("The barista was rude and I waited forty minutes for a latte this morning.", "en"),
        ("昨晚的咖啡太难喝了，服务员态度很差", "zh"),
        ("Le café était froid et le serveur très désagréable ce matin, je ne reviendrai pas.", "fr"),
        ("コーヒーが冷たかった", "ja"),
        ("El café estaba frío y el camarero fue muy grosero esta mañana, no volveré.", "es"),
        ("Der Kaffee war kalt und der Kellner war heute Morgen sehr unhöflich, ich komme nicht wieder.", "de"),
        ("@acme it's the third time this week that my order was wrong", "en"),
    ],
)
def test_language_detection(text, lang):
    assert detect_language(text) == lang


def test_language_routing_leaves_unsupported_languages_unclassified(tiny_model_dir, tmp_path):
    zh_dir = build_tiny_model(tmp_path / "zh", ["negative", "positive"], seed=1)
    config = ModelConfig(default=str(tiny_model_dir), languages={"zh": str(zh_dir)}, multilingual="")
    classifier = Classifier(config)
    french = "Le café était froid et le serveur très désagréable ce matin."
    rows = classify_objects([{"text": "the coffee was cold"}, {"text": "咖啡太难喝了"}, {"text": french}], classifier)
    assert [r["lang"] for r in rows] == ["en", "zh", "fr"]
    assert rows[0]["label"] in {"complaint", "neutral", "praise"}
    assert rows[1]["label"] in {"complaint", "praise"}  # two-class model: never neutral
    assert rows[2]["label"] == UNCLASSIFIED_LANGUAGE and rows[2]["probs"] is None


def test_classify_pending_is_idempotent(fresh_db, tiny_classifier):
    record_mentions(fresh_db, "s", [{"external_id": str(i), "text": f"coffee {i}", "rating": 1} for i in range(5)])
    first = classify_pending(fresh_db, tiny_classifier)
    assert first.classified == 5 and first.by_label == {"complaint": 5}  # 1★ always complaint
    assert classify_pending(fresh_db, tiny_classifier).classified == 0
    record_mentions(fresh_db, "s", [{"external_id": "0", "text": "coffee 0 edited", "rating": 1}])
    assert classify_pending(fresh_db, tiny_classifier).classified == 1  # an edit is re-classified
    row = fresh_db.execute("select probs, lang from classifications where mention_id = 1").fetchone()
    assert set(json.loads(row[0])) == {"complaint", "neutral", "praise"} and row[1] == "en"


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("Waited 40 minutes for a latte and the barista was rude", ["wait_time", "staff_attitude"]),
        ("They charged me twice and I still haven't got a refund", ["not_resolved", "price_billing"]),
        ("Tables were sticky and the bathroom was filthy", ["cleanliness_ambience"]),
        ("The app crashed at checkout", ["app_website"]),
        ("Just bad", ["other"]),
    ],
)
def test_topics(text, topics):
    assert tag_topics(text, "complaint") == topics
    assert tag_topics(text, "praise") == []


def test_urgency_flags():
    assert "safety_health" in urgency_flags("I got food poisoning from the sandwich")
    assert "legal_threat" in urgency_flags("my lawyer will hear about this")
    assert "churn_threat" in urgency_flags("never coming back")
    assert "question" in urgency_flags("Does the airport store open before 6am?")
    assert urgency_flags("Lovely latte", author_reach=50_000) == ["high_reach"]


def test_token_budget_batches_cover_every_text_once_and_fit_the_budget():
    from monitor.classify.model import MAX_BATCH_ROWS, token_budget_batches

    lengths = [3] * 500 + [64] * 40 + [256] * 9 + [900]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = token_budget_batches(order, lengths, batch_size=32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * width <= 32 * 64
        assert len(batch) <= MAX_BATCH_ROWS
    assert max(len(b) for b in batches) == MAX_BATCH_ROWS  # short texts fill large batches
    assert [len(b) for b in batches if lengths[b[0]] == 256] == [8, 2]  # 256 + 900 still fit 32 × 64
    assert token_budget_batches([], [], 32) == []
