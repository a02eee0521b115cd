"""Classify-stage throughput: ours vs a plain ``transformers.pipeline`` on the same model and mentions.

    python bench/classify.py [--n 5000] [--model bundled]

The corpus mixes tweets (SemEval-2017), short sentences (SST-2) and long
restaurant reviews (whole SemEval-2016 reviews, some joined into multi-paragraph
ones), in shuffled order, as a crawl would deliver them. "Ours" is the whole
classify stage: language detection, model, rating rule, topics, urgency and
the database writes. The baseline is inference only, so the comparison
favours the baseline. Both get the same threads and the same max length.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def build_corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    tweets = [json.loads(line)["text"] for line in (DATA / "sentiment/en/semeval2017_4a_train.jsonl").open()]
    sst = [json.loads(line)["text"] for line in (DATA / "sentiment/en/sst2_dev.jsonl").open()]
    reviews = restaurant_reviews()
    long_reviews = [" ".join(rng.sample(reviews, 4)) for _ in range(n // 10)]  # 300-600 words: truncated
    n_long, n_reviews, n_sst = n // 10, n // 5, n // 5
    corpus = (
        rng.sample(tweets, n - n_long - n_reviews - n_sst)
        + rng.sample(sst, n_sst)
        + [rng.choice(reviews) for _ in range(n_reviews)]
        + long_reviews[:n_long]
    )
    rng.shuffle(corpus)
    return corpus


def bench_ours(texts: list[str], model_spec: str, threads: int, max_length: int) -> tuple[float, int]:
    from monitor.classify.stage import Classifier, classify_pending
    from monitor.config import ModelConfig
    from monitor.store import open_db, record_mentions

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        record_mentions(db, "bench", [{"external_id": str(i), "text": t, "kind": "post"} for i, t in enumerate(texts)])
        classifier = Classifier(ModelConfig(default=model_spec, threads=threads, max_length=max_length))
        classifier.model_for("en")  # load outside the timed part, as the pipeline is
        start = time.perf_counter()
        counts = classify_pending(db, classifier)
        elapsed = time.perf_counter() - start
        db.conn.close()
    return elapsed, counts.classified


def bench_pipeline(texts: list[str], model_dir: str, threads: int, max_length: int, batch_size: int | None):
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    kwargs = {"batch_size": batch_size} if batch_size else {}
    classifier = pipeline("text-classification", model=model_dir, device="cpu")
    start = time.perf_counter()
    out = classifier(texts, truncation=True, max_length=max_length, **kwargs)
    return time.perf_counter() - start, len(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--pipeline-batch", type=int, default=32, help="also time the pipeline with this batch size")
    args = parser.parse_args(argv)

    from monitor.classify.model import resolve_model

    model_dir = resolve_model(args.model)
    texts = build_corpus(args.n)
    words = sorted(len(t.split()) for t in texts)
    print(f"{len(texts)} mentions; words per mention: median {words[len(words) // 2]}, max {words[-1]}")
    print(f"model {model_dir}, {args.threads} threads, max_length {args.max_length}", flush=True)
    rows = []

    def report(name: str, n: int, seconds: float) -> None:
        # Each row as soon as it is measured: the batched baseline can take many minutes.
        rows.append((name, n, seconds))
        print(f"  {name}: {n} mentions in {seconds:.1f}s = {n / seconds:.1f}/s", flush=True)

    report(
        "ours: classify stage (lang, model, rules, topics, DB writes)",
        *_swap(bench_ours(texts, args.model, args.threads, args.max_length)),
    )
    report(
        "transformers.pipeline, defaults", *_swap(bench_pipeline(texts, model_dir, args.threads, args.max_length, None))
    )
    if args.pipeline_batch:
        name = f"transformers.pipeline, batch_size={args.pipeline_batch}"
        report(name, *_swap(bench_pipeline(texts, model_dir, args.threads, args.max_length, args.pipeline_batch)))
    base_rate = rows[1][1] / rows[1][2]
    print("\n| run | mentions | seconds | mentions/s | vs plain pipeline |\n|---|---|---|---|---|")
    for name, n, seconds in rows:
        print(f"| {name} | {n} | {seconds:.1f} | {n / seconds:.1f} | {n / seconds / base_rate:.2f}× |")
    return 0


def _swap(result: tuple[float, int]) -> tuple[int, float]:
    seconds, n = result
    return n, seconds


if __name__ == "__main__":
    raise SystemExit(main())
