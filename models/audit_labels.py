"""How often a dev set's labels agree with the bundled models where the models are sure.

    python models/audit_labels.py                    # every 3-class tweet set: TweetEval val and UMSAB val
    python models/audit_labels.py --min-score 0.8

A model that reads a set well agrees with its labels far more often on the texts it is sure of than on the rest;
a set whose labels do not follow its texts stays at chance (one in three for three classes) however sure the model
is. Texts go through the product's routing, and each row is split by the model a text went to, so a set can be set
beside TweetEval read by the same English model. Train files can be audited too (``--split train``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.evaluate import read_dataset  # noqa: E402
from models.train_multilingual import UMSAB_LANGUAGES  # noqa: E402

LABELS = ("complaint", "neutral", "praise")


def audit(classifier, texts: list[str], gold: list[int], min_score: float) -> dict[str, tuple[int, int, int, int]]:
    """Per model a text went to: (texts, agreeing, sure texts, sure and agreeing)."""
    rows: dict[str, list[int]] = {}
    for (_, pred, name), label in zip(classifier.classify(texts), gold, strict=True):
        if pred is None:
            continue
        counts = rows.setdefault(Path(name).name, [0, 0, 0, 0])
        agrees = LABELS.index(pred.label) == label
        counts[0] += 1
        counts[1] += agrees
        if pred.score >= min_score:
            counts[2] += 1
            counts[3] += agrees
    return {name: tuple(c) for name, c in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--min-score", type=float, default=0.9, help="a prediction this likely counts as sure")
    parser.add_argument("--split", choices=("val", "train"), default="val", help="which UMSAB files")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    config = ModelConfig()
    config.threads = args.threads
    classifier = Classifier(config)
    paths = [args.data / "en" / "tweeteval_val.jsonl"]
    paths += [args.data / "multi" / f"umsab_{lang}_{args.split}.jsonl" for lang in UMSAB_LANGUAGES]
    print(f"| set | model | texts | agree | sure (score ≥ {args.min_score}) | sure and agree |")
    print("|---|---|---:|---:|---:|---:|")
    for path in paths:
        texts, gold = read_dataset(path)
        for name, (n, agree, sure, sure_agree) in sorted(audit(classifier, texts, gold, args.min_score).items()):
            print(f"| {path.stem} | {name} | {n} | {agree / n:.3f} | {sure} | "
                  f"{sure_agree / sure if sure else float('nan'):.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
