import json

from models.evaluate import main as evaluate_main
from models.metrics import classification_report


def test_classification_report_macro_averages_skip_absent_classes():
    report = classification_report([0, 0, 2, 2], [0, 2, 2, 2], ["complaint", "neutral", "praise"])
    assert report["accuracy"] == 0.75
    assert report["macro_recall"] == (0.5 + 1.0) / 2  # neutral absent from gold: not averaged
    assert report["confusion"] == [[1, 0, 1], [0, 0, 0], [0, 0, 2]]
    assert report["per_class"]["praise"]["precision"] == 2 / 3


def test_evaluate_prints_ours_and_vader(tmp_path, tiny_model_dir, capsys):
    three = tmp_path / "three.jsonl"
    three.write_text(
        "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in
                  [("I love it", "positive"), ("awful, hate it", "negative"), ("it opens at 9", "neutral")])
    )  # fmt: skip
    two = tmp_path / "two.jsonl"
    two.write_text(
        json.dumps({"text": "great", "label": "praise"}) + "\n" + json.dumps({"text": "bad", "label": "complaint"})
    )
    out = tmp_path / "results.json"
    assert evaluate_main([str(three), str(two), "--model", str(tiny_model_dir), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| three.jsonl | vader | 3 | 1.0000 |" in printed  # VADER gets these textbook cases right
    assert "| two.jsonl | ours | 2 |" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"three.jsonl:ours", "three.jsonl:vader", "two.jsonl:ours", "two.jsonl:vader"}
    assert results["two.jsonl:ours"]["per_class"]["neutral"]["support"] == 0


def test_evaluate_reads_texts_as_the_product_does(tmp_path, tiny_model_dir, monkeypatch):
    # Dev figures are only honest at the length the product reads: [model] max_length unless told otherwise.
    import monitor.classify.model as model_module
    import monitor.classify.stage as stage_module
    from monitor.config import ModelConfig

    seen = []
    real = model_module.SentimentModel

    def recording(*args, **kwargs):
        seen.append(kwargs["max_length"])
        return real(*args, **kwargs)

    monkeypatch.setattr(model_module, "SentimentModel", recording)
    monkeypatch.setattr(stage_module, "SentimentModel", recording)
    data = tmp_path / "two.jsonl"
    data.write_text(json.dumps({"text": "great", "label": "praise"}) + "\n")
    assert evaluate_main([str(data), "--model", str(tiny_model_dir), "--no-vader"]) == 0
    assert evaluate_main([str(data), "--model", str(tiny_model_dir), "--no-vader", "--max-length", "64"]) == 0
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\ndefault = "{tiny_model_dir}"\nmultilingual = ""\nmax_length = 48\n')
    assert evaluate_main([str(data), "--config", str(config), "--no-vader"]) == 0  # routed, as configured
    assert seen == [ModelConfig().max_length, 64, 48]


def test_audit_labels_counts_agreement_where_the_model_is_sure(tiny_model_dir):
    from models.audit_labels import LABELS, audit
    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    classifier = Classifier(ModelConfig(default=str(tiny_model_dir), multilingual=str(tiny_model_dir)))
    texts = ["I love it", "awful, hate it", "it opens at 9", "ok"]
    preds = [p for _, p, _ in classifier.classify(texts)]
    agreeing = [LABELS.index(p.label) for p in preds]
    flipped = [(label + 1) % 3 for label in agreeing]
    surest = max(p.score for p in preds)
    name = tiny_model_dir.name
    assert audit(classifier, texts, agreeing, 0.0) == {name: (4, 4, 4, 4)}
    assert audit(classifier, texts, flipped, 0.0) == {name: (4, 0, 4, 0)}
    sure = sum(p.score >= surest for p in preds)
    assert audit(classifier, texts, agreeing, surest) == {name: (4, 4, sure, sure)}
