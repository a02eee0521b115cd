"""Evaluate a sentiment model, with VADER as a baseline, on JSONL files of ``text`` / ``label``.

    python models/evaluate.py ../shared/data/sentiment/en/tweeteval_val.jsonl ../shared/data/sentiment/en/sst2_dev.jsonl

Labels may be negative/neutral/positive or complaint/neutral/praise. A file
with no neutral examples is scored as a two-class task (complaint vs praise,
neutral ignored at prediction time), the usual protocol for SST-2.
Prints accuracy, macro-recall, macro-F1 and the confusion matrix per file
and model; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.metrics import classification_report  # noqa: E402

LABELS = ["complaint", "neutral", "praise"]
ALIASES = {"negative": 0, "complaint": 0, "neutral": 1, "positive": 2, "praise": 2}


def read_dataset(path: Path) -> tuple[list[str], list[int]]:
    texts, gold = [], []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in ALIASES:
                raise SystemExit(f"{path}:{number}: unknown label {row.get('label')!r}")
            texts.append(row["text"])
            gold.append(ALIASES[row["label"]])
    return texts, gold


def predict_ours(model, texts: list[str], two_class: bool) -> list[int]:
    preds = model.predict(texts)
    if two_class:
        return [0 if p.probs["complaint"] > p.probs["praise"] else 2 for p in preds]
    return [LABELS.index(p.label) for p in preds]


def predict_vader(texts: list[str], two_class: bool) -> list[int]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        if two_class:
            out.append(2 if compound >= 0 else 0)
        else:  # VADER's documented thresholds
            out.append(2 if compound >= 0.05 else 0 if compound <= -0.05 else 1)
    return out


def format_report(name: str, model_name: str, report: dict, seconds: float) -> str:
    lines = [
        f"{name} · {model_name}: n={report['n']} accuracy={report['accuracy']:.4f} "
        f"macro-recall={report['macro_recall']:.4f} macro-F1={report['macro_f1']:.4f} ({seconds:.1f}s)"
    ]
    header = "gold / pred"
    lines.append(f"    {header:<12}" + "".join(f"{label:>11}" for label in LABELS) + f"{'recall':>9}")
    for i, label in enumerate(LABELS):
        if not report["per_class"][label]["support"]:
            continue
        row = "".join(f"{count:>11}" for count in report["confusion"][i])
        lines.append(f"    {label:<12}{row}{report['per_class'][label]['recall']:>9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--model", default="bundled", help='"bundled", a model directory, or a cached hub id')
    parser.add_argument("--no-vader", action="store_true", help="skip the VADER baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    from monitor.classify.model import SentimentModel

    model = SentimentModel(args.model, max_length=128, batch_size=64, threads=args.threads)
    results = {}
    summary = []
    for path in args.datasets:
        texts, gold = read_dataset(path)
        two_class = 1 not in gold
        runs = [("ours", lambda t, tc=two_class: predict_ours(model, t, tc))]
        if not args.no_vader:
            runs.append(("vader", lambda t, tc=two_class: predict_vader(t, tc)))
        for model_name, predict in runs:
            start = time.perf_counter()
            pred = predict(texts)
            seconds = time.perf_counter() - start
            report = classification_report(gold, pred, LABELS)
            results[f"{path.name}:{model_name}"] = report
            summary.append((path.name, model_name, report))
            print(format_report(path.name, model_name, report, seconds), flush=True)
    print()
    print("| dataset | model | n | accuracy | macro-recall | macro-F1 |\n|---|---|---|---|---|---|")
    for name, model_name, r in summary:
        scores = f"{r['accuracy']:.4f} | {r['macro_recall']:.4f} | {r['macro_f1']:.4f}"
        print(f"| {name} | {model_name} | {r['n']} | {scores} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
