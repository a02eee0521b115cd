"""No dev text trains: the training mixes drop rows that repeat a dev text (models/dev_overlap.py finds them)."""

from __future__ import annotations

import json

from tests.test_language_branch import tiny_corpus

DEV_SENTENCE = "It 's a charming , funny and moving film ."
TRAIN_REPEAT = "it's a charming, funny and moving film"  # the same text, other spacing and punctuation
TRAIN_OTHER = "a dull , plodding and wholly forgettable picture"


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def with_english(root):
    en = root / "en"
    write(en / "sst2_dev.jsonl", [{"text": DEV_SENTENCE, "label": "positive"}])
    write(en / "sst2_train.jsonl", [{"text": TRAIN_REPEAT, "label": "positive"},
                                    {"text": TRAIN_OTHER, "label": "negative"}])  # fmt: skip
    write(en / "reviews_stars_train.jsonl", [{"text": "fine food, slow service", "label": "neutral"}])
    return root


def test_sst2_training_rows_that_repeat_a_dev_text_are_dropped(tmp_path):
    from models.train import build_training_set
    from models.train_multilingual import build_mix

    data = with_english(tiny_corpus(tmp_path / "data"))
    english = {t for t, _, _ in build_training_set(data / "en", sst2_cap=10, seed=1)}
    assert TRAIN_OTHER in english and TRAIN_REPEAT not in english
    caps = {"tweets_en": 0, "reviews_en_praise": 0, "reviews_en_rest": 0, "sst2": 10, "zh_each": 0, "umsab_each": 0}
    mixed = {t for t, _, _ in build_mix(data, 1, caps)}
    assert TRAIN_OTHER in mixed and TRAIN_REPEAT not in mixed
    # An old pass is rebuilt with its own filter (lower case only): a pool of another size would shuffle
    # differently and draw every later corpus otherwise, so dev_overlap.py would count the wrong texts.
    old = {t for t, _, _ in build_mix(data, 1, caps, keep_dev=True)}
    assert TRAIN_REPEAT in old


def build_mix_before_dev_filter(data, seed, caps):
    """train_multilingual.build_mix as passes 1-7 ran it (before 870d4f9), kept here as the reference."""
    import random

    from models.train import read_jsonl
    from models.train_multilingual import (
        DATASET_LABELS,
        UMSAB_LANGUAGES,
        english_tweets,
        reviews_split,
        stars_label,
    )

    rng = random.Random(seed)
    out = []

    def take(rows, cap):
        rng.shuffle(rows)
        out.extend(rows[:cap] if cap else rows)

    en = data / "en"
    take(english_tweets(en), caps["tweets_en"])
    reviews = [r for r in read_jsonl(en / "reviews_stars_train.jsonl") if reviews_split(r["text"]) == "train"]
    by_label = {0: [], 1: [], 2: []}
    for r in reviews:
        by_label[stars_label(r)].append((r["text"], stars_label(r), "reviews_en"))
    for label, rows in by_label.items():
        take(rows, caps["reviews_en_praise"] if label == 2 else caps.get("reviews_en_rest", 0))
    sst_dev = {r["text"].lower() for r in read_jsonl(en / "sst2_dev.jsonl")}
    sst = [(r["text"], DATASET_LABELS[r["label"]], "sst2") for r in read_jsonl(en / "sst2_train.jsonl")
           if len(r["text"].split()) >= 6 and r["text"].lower() not in sst_dev]  # fmt: skip
    take(sst, caps["sst2"])
    for name in ("chnsenticorp_train", "waimai_train", "online_shopping_10_cats"):
        take([(r["text"], DATASET_LABELS[r["label"]], "zh") for r in read_jsonl(data / "zh" / f"{name}.jsonl")],
             caps["zh_each"])  # fmt: skip
    for lang in UMSAB_LANGUAGES:
        path = data / "multi" / f"umsab_{lang}_train.jsonl"
        take([(r["text"], DATASET_LABELS[r["label"]], "umsab") for r in read_jsonl(path)], caps["umsab_each"])
    rng.shuffle(out)
    return out


def test_an_old_pass_is_rebuilt_exactly_as_it_ran(tmp_path):
    """Every row of a pass run before the dev filter, in its order: the filters change the pools' sizes, so a
    rebuild with today's filters would shuffle differently and draw other rows from every later corpus."""
    from models.train_multilingual import build_mix

    data = with_english(tiny_corpus(tmp_path / "data"))
    dev = [json.loads(line) for line in (data / "zh" / "chnsenticorp_dev.jsonl").read_text().splitlines()]
    with (data / "zh" / "chnsenticorp_train.jsonl").open("a", encoding="utf-8") as fh:
        for row in dev:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (data / "en" / "sst2_train.jsonl").open("a", encoding="utf-8") as fh:
        for i in range(6):
            fh.write(json.dumps({"text": f"a plain and {i} times forgettable film", "label": "negative"}) + "\n")
    for seed in (1, 7, 20):
        caps = {"tweets_en": 5, "reviews_en_praise": 0, "reviews_en_rest": 0, "sst2": 3, "zh_each": 2,
                "umsab_each": 1}  # fmt: skip
        old = build_mix_before_dev_filter(data, seed, caps)
        assert build_mix(data, seed, caps, keep_dev=True) == old
        assert build_mix(data, seed, caps) != old  # the filters do change the draw here


def test_chinese_rows_that_repeat_a_chnsenticorp_dev_text_are_dropped_unless_kept(tmp_path):
    from models.train import dedup_key
    from models.train_multilingual import build_mix

    data = with_english(tiny_corpus(tmp_path / "data"))
    dev = [json.loads(line) for line in (data / "zh" / "chnsenticorp_dev.jsonl").read_text().splitlines()]
    with (data / "zh" / "online_shopping_10_cats.jsonl").open("a", encoding="utf-8") as fh:
        for row in dev:
            fh.write(json.dumps({**row, "text": row["text"] + "！"}, ensure_ascii=False) + "\n")
    dev_keys = {dedup_key(r["text"]) for r in dev}
    caps = {"tweets_en": 0, "reviews_en_praise": 0, "reviews_en_rest": 0, "sst2": 0, "zh_each": 0, "umsab_each": 0}
    clean = [dedup_key(t) for t, _, g in build_mix(data, 1, caps) if g == "zh"]
    assert clean and not dev_keys & set(clean)
    # A pass recorded before the filter is rebuilt as it ran (models/dev_overlap.py --passes).
    kept = [dedup_key(t) for t, _, g in build_mix(data, 1, caps, keep_dev=True) if g == "zh"]
    assert dev_keys <= set(kept)


def test_overlap_counts_dev_texts_and_the_training_rows_repeating_them(tmp_path):
    from models.dev_overlap import overlap

    data = with_english(tiny_corpus(tmp_path / "data"))
    assert overlap(data / "en" / "sst2_dev.jsonl", data / "en" / "sst2_train.jsonl") == (1, 1)
    assert overlap(data / "zh" / "chnsenticorp_dev.jsonl", data / "zh" / "waimai_train.jsonl") == (0, 0)


def test_passes_are_found_in_a_soup_s_parents_and_a_meta_without_any_says_so(tmp_path):
    from models.dev_overlap import main, recorded_passes

    args = {"seed": "20", "tweets_en": "1", "reviews_en_praise": "0", "reviews_en_rest": "0", "sst2": "0",
            "zh_each": "2", "umsab_each": "0", "keep_chnsenticorp_dev": "False"}  # fmt: skip
    for seed in ("20", "21"):
        (tmp_path / seed).mkdir()
        (tmp_path / seed / "training_meta.json").write_text(json.dumps({"args": {**args, "seed": seed}}))
    soup = {"args": {**args, "seed": "21"}, "averaged": {"first": str(tmp_path / "20"), "second": str(tmp_path / "21")}}
    assert sorted(a["seed"] for a in recorded_passes(soup, tmp_path)) == ["20", "21"]
    bundled = {"cpu_pass_6_clean": {"args": args}, "gpu_pass_5": {"args": {"lr": "4e-05"}}}
    assert [a["seed"] for a in recorded_passes(bundled, tmp_path)] == ["20"]
    (tmp_path / "none.json").write_text(json.dumps({"gpu_pass_5": {"args": {"lr": "4e-05"}}}))
    data = with_english(tiny_corpus(tmp_path / "data"))
    assert main(["--data", str(data), "--passes", "--meta", str(tmp_path / "none.json")]) == 1
