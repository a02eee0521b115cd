"""Pack the multilingual model's fine-tuning job for a GPU machine that takes at most ~64 MB per trip.

    python models/gpu_pack.py --model models/sentiment-multi --out .gpu
    # on the GPU machine:  python .gpu/train_multilingual_gpu.py --pack .gpu --out OUT ...
    python models/gpu_unpack.py --pack .gpu --trained OUT --output .train/multi-gpu

The word embeddings stay frozen while fine-tuning (as on CPU, ``train_multilingual.py``), so the trip carries
only the rows of the tokens the training and dev texts use, int8 as the bundled model stores them; the texts
travel already tokenised (ids renumbered into that subset, uint16); the rest of the weights travel as they are
(fp16). The GPU machine needs torch and transformers, no tokenizer and no text. What comes back is the encoder
without its word embeddings, which ``gpu_unpack.py`` puts beside the bundled int8 rows.

The training mix: every Chinese corpus (ChnSentiCorp train, the hotel reviews minus anything in ChnSentiCorp's
dev or train split, food delivery, a sample of the shopping reviews), every UMSAB training tweet, English tweets
(TweetEval val removed), star-rated reviews (the 15 % dev part removed) and SST-2 sentences (dev removed).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.train import DATASET_LABELS, dedup_key, read_jsonl  # noqa: E402
from models.train_multilingual import UMSAB_LANGUAGES, english_tweets, reviews_split  # noqa: E402
from monitor.classify.model import INT8_EMBEDDINGS  # noqa: E402
from monitor.classify.textprep import head_and_tail, normalise_for_model  # noqa: E402

# Group codes: the loss of "two-class" groups compares complaint vs praise only.
GROUPS = ["tweets_en", "reviews_en", "sst2", "zh", "umsab"]
DEV_SETS = ["chnsenticorp", *UMSAB_LANGUAGES]


def training_rows(data: Path, seed: int, caps: dict[str, int]) -> list[tuple[str, int, str]]:
    rng = random.Random(seed)
    out: list[tuple[str, int, str]] = []

    def take(rows: list[tuple[str, int, str]], cap: int) -> None:
        rng.shuffle(rows)
        out.extend(rows[:cap] if cap else rows)

    en = data / "en"
    take(english_tweets(en), caps["tweets_en"])
    reviews = [
        (r["text"], DATASET_LABELS[r["label"]], "reviews_en")
        for r in read_jsonl(en / "reviews_stars_train.jsonl")
        if reviews_split(r["text"]) == "train"
    ]
    take(reviews, caps["reviews_en"])
    sst_dev = {dedup_key(r["text"]) for r in read_jsonl(en / "sst2_dev.jsonl")}  # as in train.py
    sst = [
        (r["text"], DATASET_LABELS[r["label"]], "sst2")
        for r in read_jsonl(en / "sst2_train.jsonl")
        if len(r["text"].split()) >= 6 and dedup_key(r["text"]) not in sst_dev
    ]
    take(sst, caps["sst2"])

    zh = data / "zh"
    dev_keys = {dedup_key(r["text"]) for r in read_jsonl(zh / "chnsenticorp_dev.jsonl")}
    zh_seen = set(dev_keys)
    for name, cap in (
        ("chnsenticorp_train", 0),
        ("chnsenticorp_htl_all", 0),
        ("waimai_train", 0),
        ("online_shopping_10_cats", caps["zh_shopping"]),
    ):
        rows = []
        for r in read_jsonl(zh / f"{name}.jsonl"):
            key = dedup_key(r["text"])
            if key in zh_seen or not r["text"].strip():
                continue
            zh_seen.add(key)
            rows.append((r["text"], DATASET_LABELS[r["label"]], "zh"))
        take(rows, cap)
    for lang in UMSAB_LANGUAGES:
        rows = [
            (r["text"], DATASET_LABELS[r["label"]], "umsab")
            for r in read_jsonl(data / "multi" / f"umsab_{lang}_train.jsonl")
        ]
        take(rows, 0)
    rng.shuffle(out)
    return out


def dev_rows(data: Path) -> list[tuple[str, int, str]]:
    rows = [
        (r["text"], DATASET_LABELS[r["label"]], "chnsenticorp")
        for r in read_jsonl(data / "zh" / "chnsenticorp_dev.jsonl")
    ]
    for lang in UMSAB_LANGUAGES:
        rows += [
            (r["text"], DATASET_LABELS[r["label"]], lang)
            for r in read_jsonl(data / "multi" / f"umsab_{lang}_val.jsonl")
        ]
    return rows


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    ids = tokenizer([normalise_for_model(t) for t in texts], add_special_tokens=False)["input_ids"]
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [[bos, *head_and_tail(seq, max_length - 2), eos] for seq in ids]


def flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    return np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(offsets[-1])), offsets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/sentiment-multi"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--tweets-en", type=int, default=10000)
    parser.add_argument("--reviews-en", type=int, default=4000)
    parser.add_argument("--sst2", type=int, default=5000)
    parser.add_argument("--zh-shopping", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    caps = {
        "tweets_en": args.tweets_en,
        "reviews_en": args.reviews_en,
        "sst2": args.sst2,
        "zh_shopping": args.zh_shopping,
    }
    train = training_rows(args.data, args.seed, caps)
    dev = dev_rows(args.data)
    train_ids = encode(tokenizer, [t for t, _, _ in train], args.max_length)
    dev_ids = encode(tokenizer, [t for t, _, _ in dev], args.max_length)

    used = sorted({t for s in train_ids + dev_ids for t in s} | {tokenizer.pad_token_id})
    if len(used) >= 65536:
        raise SystemExit(f"{len(used)} distinct tokens: too many for uint16 ids")
    renumber = {old: new for new, old in enumerate(used)}
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, seqs, rows, names in (("train", train_ids, train, GROUPS), ("dev", dev_ids, dev, DEV_SETS)):
        tokens, offsets = flat([[renumber[t] for t in s] for s in seqs])
        arrays[f"{name}_tokens"] = tokens.astype(np.uint16)
        arrays[f"{name}_offsets"] = offsets
        arrays[f"{name}_labels"] = np.array([y for _, y, _ in rows], dtype=np.int8)
        arrays[f"{name}_groups"] = np.array([names.index(g) for _, _, g in rows], dtype=np.int8)
    np.savez_compressed(args.out / "data.npz", **arrays)

    packed = load_file(str(args.model / INT8_EMBEDDINGS))
    index = np.array(used)
    save_file(
        {"rows": packed["rows"][index].contiguous(), "scales": packed["scales"][index].contiguous()},
        str(args.out / "embeddings.safetensors"),
    )
    shutil.copy(args.model / "model.safetensors", args.out / "encoder.safetensors")
    config = json.loads((args.model / "config.json").read_text())
    config["vocab_size"] = len(used)
    config["pad_token_id"] = renumber[tokenizer.pad_token_id]
    (args.out / "config.json").write_text(json.dumps(config, indent=1))
    meta = {
        "model": str(args.model),
        "max_length": args.max_length,
        "caps": caps,
        "seed": args.seed,
        "train": {g: sum(1 for _, _, x in train if x == g) for g in GROUPS},
        "dev": {g: sum(1 for _, _, x in dev if x == g) for g in DEV_SETS},
        "groups": GROUPS,
        "dev_sets": DEV_SETS,
        "distinct_tokens": len(used),
    }
    (args.out / "pack.json").write_text(json.dumps(meta, indent=1))
    shutil.copy(Path(__file__).with_name("train_multilingual_gpu.py"), args.out / "train_multilingual_gpu.py")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
