"""Classify-stage throughput: ours vs a plain ``transformers.pipeline`` on the same models and mentions.

    python bench/classify.py [--n 5000] [--repeats 3] [--device cpu|cuda] [--branch-cost] [--prior-cost]

The corpus mixes languages as a crawl of an international business delivers them, in shuffled order: English
tweets (SemEval-2017), short sentences (SST-2) and restaurant reviews (whole SemEval-2016 reviews, some joined
into multi-paragraph ones), Chinese hotel and food-delivery reviews, and UMSAB tweets in es, de, fr, it, pt,
ar and hi. "Ours" is the whole classify stage: language identification, routing to the English or the
multilingual model, the rating rule, topics, urgency and the database writes. The baseline is the plain
pipeline, inference only, given each text with the model our routing picked (the grouping is not timed), so
the comparison favours the baseline. Both get the same threads and the same max length. Runs alternate
(ours, pipeline, ours int8, …) and repeat; the table shows the median and the range over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"


def restaurant_reviews() -> list[str]:
    tree = ET.parse(DATA / "aspects" / "semeval2016_restaurants_train.xml")
    return [" ".join(s.findtext("text") for s in review.iter("sentence")) for review in tree.iter("Review")]


def _jsonl(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]


def build_corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    tweets = _jsonl(DATA / "sentiment/en/semeval2017_4a_train.jsonl")
    sst = _jsonl(DATA / "sentiment/en/sst2_dev.jsonl")
    chinese = _jsonl(DATA / "sentiment/zh/chnsenticorp_dev.jsonl") + _jsonl(DATA / "sentiment/zh/waimai_train.jsonl")
    others = [t for path in sorted((DATA / "sentiment/multi").glob("umsab_*_val.jsonl")) for t in _jsonl(path)]
    reviews = restaurant_reviews()
    n_long, n_reviews, n_sst, n_zh, n_other = n // 20, n // 10, n // 10, n // 5, n // 4
    long_reviews = [" ".join(rng.sample(reviews, 4)) for _ in range(n_long)]  # 300-600 words: truncated
    corpus = (
        rng.sample(tweets, n - n_long - n_reviews - n_sst - n_zh - n_other)
        + rng.sample(sst, n_sst)
        + [rng.choice(reviews) for _ in range(n_reviews)]
        + long_reviews
        + [rng.choice(chinese) for _ in range(n_zh)]
        + [rng.choice(others) for _ in range(n_other)]
    )
    rng.shuffle(corpus)
    return corpus


def model_config(threads: int, max_length: int, device: str, quantize: str = "none"):
    from monitor.config import ModelConfig

    return ModelConfig(threads=threads, max_length=max_length, device=device, quantize=quantize)


def bench_ours(texts: list[str], config) -> tuple[float, int]:
    from monitor.classify.stage import Classifier, classify_pending
    from monitor.store import open_db, record_mentions

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        record_mentions(db, "bench", [{"external_id": str(i), "text": t, "kind": "post"} for i, t in enumerate(texts)])
        classifier = Classifier(config)
        for lang in classifier.specs:  # load outside the timed part, as the pipeline's models are
            classifier.model_for(lang)
        classifier.detect("warm up")
        start = time.perf_counter()
        counts = classify_pending(db, classifier)
        elapsed = time.perf_counter() - start
        db.conn.close()
    return elapsed, counts.classified


def bench_ours_without_branch(texts: list[str], config) -> tuple[float, int]:
    """Ours with the topic branch's layers never run (every text gets phrase-list topics): what the branch costs."""
    from monitor.classify import model

    saved = model.BRANCH_MIN_COMPLAINT
    model.BRANCH_MIN_COMPLAINT = float("inf")
    try:
        return bench_ours(texts, config)
    finally:
        model.BRANCH_MIN_COMPLAINT = saved


def bench_ours_without_priors(texts: list[str], config) -> tuple[float, int]:
    """Ours with no model reading its n-gram priors (the transformers alone): what the priors cost."""
    from monitor.classify import ngram_prior

    saved = ngram_prior.read_priors
    ngram_prior.read_priors = lambda directory: {}
    try:
        return bench_ours(texts, config)
    finally:
        ngram_prior.read_priors = saved


def routed_groups(texts: list[str], config) -> dict[str, list[str]]:
    """Model directory → the texts our routing sends to it (computed once, untimed)."""
    from monitor.classify.model import resolve_model
    from monitor.classify.stage import Classifier

    classifier = Classifier(config)
    groups: dict[str, list[str]] = {}
    for text in texts:
        spec = classifier.specs.get(classifier.detect(text))
        if spec is not None:
            groups.setdefault(resolve_model(spec), []).append(text)
    return groups


def bench_pipeline(groups: dict[str, list[str]], threads: int, max_length: int, batch_size: int | None, device: str):
    import torch
    from transformers import AutoTokenizer, pipeline

    from monitor.classify.model import load_classifier

    torch.set_num_threads(threads)
    kwargs = {"batch_size": batch_size} if batch_size else {}
    pipes = []
    for model_dir in groups:
        model = load_classifier(model_dir)
        if device.startswith("cuda"):
            model = model.half()
        pipe = pipeline(
            "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir), device=device
        )
        pipes.append((pipe, groups[model_dir]))
    start = time.perf_counter()
    done = sum(len(pipe(texts, truncation=True, max_length=max_length, **kwargs)) for pipe, texts in pipes)
    return time.perf_counter() - start, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default="cpu", help='"cpu" or "cuda"')
    parser.add_argument("--pipeline-batch", type=int, default=64, help="also time the pipeline with this batch size")
    parser.add_argument("--no-int8", action="store_true", help="skip our int8 run")
    parser.add_argument(
        "--branch-cost", action="store_true", help="also time ours with the topic branch off (what it costs)"
    )
    parser.add_argument(
        "--prior-cost", action="store_true", help="also time ours with the n-gram priors off (what they cost)"
    )
    args = parser.parse_args(argv)

    texts = build_corpus(args.n)
    words = sorted(len(t.split()) for t in texts)
    print(f"{len(texts)} mentions; words per mention: median {words[len(words) // 2]}, max {words[-1]}")
    print(f"{args.threads} threads, max_length {args.max_length}, device {args.device}", flush=True)
    config = model_config(args.threads, args.max_length, args.device)
    groups = routed_groups(texts, config)
    print("pipeline groups:", {Path(k).name: len(v) for k, v in groups.items()}, flush=True)
    runs = [("ours: classify stage (lang id, routing, models, rules, topics, DB writes)",
             lambda: bench_ours(texts, config))]  # fmt: skip
    if args.branch_cost:
        runs.append(("ours, topic branch off", lambda: bench_ours_without_branch(texts, config)))
    if args.prior_cost:
        runs.append(("ours, n-gram priors off", lambda: bench_ours_without_priors(texts, config)))
    if not args.no_int8 and not args.device.startswith("cuda"):
        int8 = model_config(args.threads, args.max_length, args.device, "int8")
        runs.append(("ours, quantize = int8", lambda: bench_ours(texts, int8)))
    runs.append(("transformers.pipeline, defaults",
                 lambda: bench_pipeline(groups, args.threads, args.max_length, None, args.device)))  # fmt: skip
    if args.pipeline_batch:
        batch = args.pipeline_batch
        runs.append((f"transformers.pipeline, batch_size={batch}",
                     lambda: bench_pipeline(groups, args.threads, args.max_length, batch, args.device)))  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    for repeat in range(args.repeats):
        for name, run in runs:
            seconds, n = run()
            rates[name].append(n / seconds)
            print(f"  repeat {repeat + 1}: {name}: {n} mentions in {seconds:.1f}s = {n / seconds:.1f}/s", flush=True)
    baseline = statistics.median(rates["transformers.pipeline, defaults"])
    print("\n| run | mentions/s (median) | range | vs plain pipeline (median) |\n|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}–{max(values):.1f}"
        print(f"| {name} | {median:.1f} | {spread} | {median / baseline:.2f}× |")
    return 0


def _swap(result: tuple[float, int]) -> tuple[int, float]:
    seconds, n = result
    return n, seconds


if __name__ == "__main__":
    raise SystemExit(main())
