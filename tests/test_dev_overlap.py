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


def test_an_old_pass_is_rebuilt_exactly_as_it_ran(tmp_path):
    """Every row of a pass run before the dev filter, in its order, even where the new filter changes a pool."""
    import random

    from models.train_multilingual import build_mix

    data = with_english(tiny_corpus(tmp_path / "data"))
    caps = {"tweets_en": 0, "reviews_en_praise": 0, "reviews_en_rest": 0, "sst2": 1, "zh_each": 2, "umsab_each": 0}
    rebuilt = build_mix(data, 7, caps, keep_dev=True)
    # The same draw with the old filter written out: SST-2 dev matched by lower case, nothing Chinese dropped.
    rng = random.Random(7)
    sst = [(TRAIN_REPEAT, 2, "sst2"), (TRAIN_OTHER, 0, "sst2")]
    rng.shuffle(sst)
    assert [r for r in rebuilt if r[2] == "sst2"] == sst[:1]


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
