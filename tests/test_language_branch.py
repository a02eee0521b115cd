"""Language branches: one language's own top layers on a shared model (monitor/classify/language_branch.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from monitor.classify.language_branch import (
    BRANCHES_FILE,
    LanguageBranch,
    branch_file,
    read_branch_state,
    read_branches,
    write_branch,
)
from monitor.classify.model import ModelLoadError, SentimentModel
from monitor.classify.stage import Classifier
from monitor.config import ModelConfig
from tests.conftest import build_tiny_model

TEXTS = ["the food was terrible", "great service", "ok", "worst wait ever and rude staff"]


def perturbed_branch(model, from_layer: int, seed: int = 5) -> LanguageBranch:
    branch = LanguageBranch.from_model(model, from_layer)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in branch.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.5)
    return branch.eval()


@pytest.fixture
def branched_dir(tmp_path):
    """A tiny 2-layer model with a ``zh`` branch from layer 1 whose weights differ from the model's own."""
    path = build_tiny_model(tmp_path / "multi", ["negative", "neutral", "positive"])
    base = SentimentModel(str(path), max_length=32, threads=1, device="cpu")
    write_branch(path, "zh", ["zh"], perturbed_branch(base.model, 1), {"from_layer": 1, "note": "test"})
    return path


def test_branch_view_runs_the_stored_branch_on_the_shared_lower_layers(branched_dir, tmp_path):
    model = SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")
    view = model.for_language("zh")
    assert view is not model and view.branch == "zh" and model.branch is None
    assert view.name == f"{model.name}#zh"  # stored with each classification
    assert view.model.bert.embeddings is model.model.bert.embeddings
    assert view.model.bert.encoder.layer[0] is model.model.bert.encoder.layer[0]
    assert view.model.bert.encoder.layer[1] is not model.model.bert.encoder.layer[1]

    # What the product's view computes is what the training script's LanguageBranch computes from the cached
    # hidden state at the branch's layer, with the stored (int8-row) weights.
    stored = LanguageBranch.from_model(model.model, 1)
    stored.load_state_dict(read_branch_state(branched_dir, "zh"))
    stored.eval()
    expected, own = {}, {}
    for idx, logits, states, attention in model._forward(TEXTS, hidden=True):
        for row, (i, out) in enumerate(zip(idx, stored(states[1], attention), strict=True)):
            expected[i], own[i] = out, logits[row]
    got = {i: logits[row] for idx, logits, _, _ in view._forward(TEXTS, hidden=False) for row, i in enumerate(idx)}
    assert all(torch.allclose(got[i], expected[i], atol=1e-4) for i in range(len(TEXTS)))
    assert not any(torch.allclose(got[i], own[i], atol=1e-3) for i in range(len(TEXTS)))  # it really differs


def test_other_languages_keep_the_model_as_it_is(branched_dir, tmp_path):
    plain_dir = tmp_path / "plain"
    shutil.copytree(branched_dir, plain_dir)
    (plain_dir / BRANCHES_FILE).unlink()
    branched = SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")
    plain = SentimentModel(str(plain_dir), max_length=32, threads=1, device="cpu")
    assert branched.for_language("es") is branched and plain.for_language("zh") is plain
    assert [p.probs for p in branched.predict(TEXTS)] == [p.probs for p in plain.predict(TEXTS)]
    assert [p.probs for p in branched.for_language("zh").predict(TEXTS)] != [p.probs for p in plain.predict(TEXTS)]


def test_classifier_routes_a_language_with_a_branch_to_its_view(branched_dir, tiny_model_dir):
    classifier = Classifier(ModelConfig(default=str(tiny_model_dir), multilingual=str(branched_dir), max_length=32))
    zh, es = classifier.model_for("zh"), classifier.model_for("es")
    assert zh.branch == "zh" and es.branch is None
    assert zh.model is not es.model and zh.tokenizer is es.tokenizer
    out = classifier.classify(["服务员态度很差，等了一个小时", "El servicio fue terrible"], langs=["zh", "es"])
    assert [lang for lang, _, _ in out] == ["zh", "es"] and all(pred is not None for _, pred, _ in out)
    direct = zh.predict(["服务员态度很差，等了一个小时"])[0]
    assert out[0][1].probs == direct.probs


def test_languages_that_share_a_branch_share_its_view_and_batches(branched_dir):
    listing = json.loads((branched_dir / BRANCHES_FILE).read_text())
    listing["zh"]["languages"] = ["zh", "ja"]
    (branched_dir / BRANCHES_FILE).write_text(json.dumps(listing))
    model = SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")
    assert model.for_language("ja") is model.for_language("zh") is not model


def test_a_language_served_by_two_branches_is_refused(branched_dir):
    shutil.copy(branch_file(branched_dir, "zh"), branch_file(branched_dir, "cjk"))
    listing = json.loads((branched_dir / BRANCHES_FILE).read_text())
    listing["cjk"] = {**listing["zh"], "languages": ["ja", "zh"]}
    (branched_dir / BRANCHES_FILE).write_text(json.dumps(listing))
    with pytest.raises(ModelLoadError, match="'zh' is served by both 'zh' and 'cjk'"):
        SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")


def test_int8_path_quantises_the_branch_too(branched_dir):
    model = SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu", quantize="int8")
    view = model.for_language("zh")
    assert model.quantized and any("quantized" in type(m).__module__ for m in view.model.modules())
    # Quantised in place, so the lower layers and the embeddings stay shared rather than copied.
    assert view.model.bert.embeddings is model.model.bert.embeddings
    assert view.model.bert.encoder.layer[0] is model.model.bert.encoder.layer[0]
    preds = view.predict(TEXTS)
    assert len(preds) == len(TEXTS) and all(abs(sum(p.probs.values()) - 1) < 1e-4 for p in preds)


def test_branch_file_holds_int8_rows_for_matrices(branched_dir):
    from safetensors.torch import load_file

    tensors = load_file(str(branch_file(branched_dir, "zh")))
    assert tensors["classifier.weight.int8"].dtype == torch.int8
    assert tensors["classifier.bias"].dtype == torch.float16
    assert read_branches(branched_dir)["zh"] == {"languages": ["zh"], "from_layer": 1, "note": "test"}


@pytest.mark.parametrize(
    "listing, message",
    [
        ("{not json", "not a language branch list"),
        (json.dumps({"zh": {"languages": ["zh"]}}), "not a language branch list"),
        (json.dumps({"zh": {"from_layer": 1}}), "not a language branch list"),
        (json.dumps({"de": {"languages": ["de"], "from_layer": 1}}), "branch-de.safetensors is missing"),
        (json.dumps({"zh": {"languages": ["zh"], "from_layer": 7}}), "starts at layer 7"),
    ],
)
def test_a_broken_branch_list_is_named_at_load(branched_dir, listing, message):
    (branched_dir / BRANCHES_FILE).write_text(listing, encoding="utf-8")
    with pytest.raises(ModelLoadError, match="language branches") as caught:
        SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")
    assert message in str(caught.value) and str(branched_dir) in str(caught.value)


def tiny_corpus(root):
    """Every file the training recipes read, a few lines each."""
    from models.train_multilingual import UMSAB_LANGUAGES

    for folder in ("zh", "multi", "en"):
        (root / folder).mkdir(parents=True)
    bad, good = ["太难吃了", "服务很差", "等了很久"], ["很好吃", "服务很好", "干净舒服"]
    rows = [{"text": f"{t}{i}", "label": lab} for i in range(6) for t, lab in
            [(bad[i % 3], "negative"), (good[i % 3], "positive")]]  # fmt: skip

    def write(path, lines):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")

    for name in ("chnsenticorp_dev", "chnsenticorp_train", "chnsenticorp_htl_all", "waimai_train",
                 "online_shopping_10_cats"):  # fmt: skip
        write(root / "zh" / f"{name}.jsonl", [{**r, "text": r["text"] + name} for r in rows])
    tweets = [{"text": f"{w} tweet {i}", "label": lab} for i in range(10)
              for w, lab in (("awful", "negative"), ("meh", "neutral"), ("lovely", "positive"))]  # fmt: skip
    for lang in UMSAB_LANGUAGES:
        write(root / "multi" / f"umsab_{lang}_train.jsonl", [{**t, "text": f"{lang} {t['text']}"} for t in tweets])
    write(root / "en" / "semeval2017_4a_train.jsonl", tweets)
    write(root / "en" / "tweeteval_val.jsonl", tweets[:3])
    return root


def test_a_branch_file_that_does_not_fit_or_is_corrupt_is_named_at_load(branched_dir):
    from safetensors.torch import load_file, save_file

    path = branch_file(branched_dir, "zh")
    tensors = load_file(str(path))
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.bias")}, str(path))
    with pytest.raises(ModelLoadError, match="the 'zh' branch does not fit this model"):
        SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")
    path.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load the language branches"):
        SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")


def test_a_branch_beside_class_offsets_is_refused(branched_dir):
    # A branch's own classifier would silently drop the offsets for its languages.
    (branched_dir / "calibration.json").write_text(json.dumps({"logit_offsets": {"complaint": 0.2}}))
    with pytest.raises(ModelLoadError, match="cannot also have a topic head or class offsets"):
        SentimentModel(str(branched_dir), max_length=32, threads=1, device="cpu")


def test_chinese_recipe_never_trains_on_a_selection_text(tmp_path):
    from argparse import Namespace

    from models.train import dedup_key
    from models.train_language_branch import chinese_recipe

    data = tiny_corpus(tmp_path / "data")
    zh = data / "zh"
    # The online-shopping corpus shares texts with ChnSentiCorp (its hotel reviews), dev included.
    shared = [json.loads(line) for line in (zh / "chnsenticorp_train.jsonl").read_text().splitlines()]
    dev = [json.loads(line) for line in (zh / "chnsenticorp_dev.jsonl").read_text().splitlines()]
    shopping = zh / "online_shopping_10_cats.jsonl"
    with shopping.open("a", encoding="utf-8") as fh:
        for row in shared + dev:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    args = Namespace(data=data, seed=3, held_out=20, online_shopping=0, umsab=5)
    recipe = chinese_recipe(args)
    trained = {dedup_key(t) for t, _, _ in recipe.train}
    dev_keys = {dedup_key(r["text"]) for r in dev}
    held = {
        name: {dedup_key(t) for t, _ in rows} for name, rows in recipe.selection.items() if name != "chnsenticorp_dev"
    }
    assert all(rows for rows in held.values())
    for keys in held.values():
        assert not keys & trained and not keys & dev_keys
    assert not dev_keys & trained
    assert not held["waimai_held_out"] & held["online_shopping_held_out"]


@pytest.mark.parametrize("recipe, languages", [("zh", ["zh"]), ("tweets", ["ar", "fr", "de", "hi", "it", "pt", "es"])])
def test_training_script_runs_end_to_end_on_a_tiny_corpus(tmp_path, tiny_model_dir, recipe, languages):
    from models.train_language_branch import main

    data = tiny_corpus(tmp_path / "data")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    out = tmp_path / "out"
    code = main(["--recipe", recipe, "--data", str(data), "--model", str(model_dir), "--from-layer", "1",
                 "--held-out", "4", "--epochs", "1", "--umsab", "7", "--english-tweets", "5", "--threads", "1",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    meta = read_branches(out)[recipe]
    assert meta["languages"] == languages and meta["from_layer"] == 1
    if recipe == "zh":
        assert set(meta["selection"]["without_branch"]) == {"chnsenticorp_dev", "waimai_held_out",
                                                            "online_shopping_held_out"}  # fmt: skip
        assert meta["examples"]["train"] - meta["examples"]["two_class"] == 7  # the UMSAB tweets
    else:
        assert len(meta["selection"]["without_branch"]) == 7 and meta["examples"]["two_class"] == 0
        # 27 of each language's 30 tweets (a tenth held out), English tweets: 5 (TweetEval val ones removed)
        assert meta["examples"]["train"] == 7 * 27 + 5
    assert branch_file(out, recipe).is_file()
    # The product loads what the script wrote.
    shutil.copy(branch_file(out, recipe), model_dir)
    shutil.copy(out / BRANCHES_FILE, model_dir)
    model = SentimentModel(str(model_dir), max_length=32, threads=1, device="cpu")
    assert model.for_language(languages[0]).branch == recipe and model.for_language("en") is model
