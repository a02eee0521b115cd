"""Evaluate the sentiment models, with VADER as a baseline, on JSONL files of ``text`` / ``label``.

    python models/evaluate.py --all                      # every dev set, through the product's language routing
    python models/evaluate.py ../shared/data/sentiment/en/tweeteval_val.jsonl --model models/sentiment-en

``--all`` reads every dev set under ``--data`` (TweetEval val, SST-2 dev, the held-out 15 % of the star-rated
reviews, ChnSentiCorp dev and the UMSAB val tweets of seven languages) and classifies them the way
``monitor classify`` does: language identified per text, then the model configured for that language
(``--config``, or the defaults: the English model for English, the multilingual one for the rest). A text
sent to no model counts as wrong, and the "unrouted" column says how many there were. ``--model`` instead
sends every text to one model, which is how the routing choice itself was measured.

``--all`` also scores complaint topics on MAMS-ACSA val (``--aspects``): the English model's topic head and
the phrase lists, as ``models/train_topics.py`` measures them (every sentence counted as a complaint; the
"product" figure keeps only the sentences the model calls complaints).

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


UNROUTED = -1  # a text no configured model took: always wrong


def predict_routed(classifier, texts: list[str], two_class: bool) -> list[int]:
    out = []
    for _, pred, _ in classifier.classify(texts):
        if pred is None:
            out.append(UNROUTED)
        elif two_class:
            out.append(0 if pred.probs["complaint"] > pred.probs["praise"] else 2)
        else:
            out.append(LABELS.index(pred.label))
    return out


def dev_sets(data: Path, tmp: Path) -> list[Path]:
    """Every dev set we have; the star-rated reviews' held-out part is cut the way training cut it."""
    from models.train_multilingual import UMSAB_LANGUAGES, reviews_split

    reviews = tmp / "reviews_stars_dev.jsonl"
    with (data / "en/reviews_stars_train.jsonl").open(encoding="utf-8") as fh, reviews.open("w") as out:
        for line in fh:
            if line.strip() and reviews_split(json.loads(line)["text"]) == "dev":
                out.write(line)
    paths = [data / "en/tweeteval_val.jsonl", data / "en/sst2_dev.jsonl", reviews, data / "zh/chnsenticorp_dev.jsonl"]
    return paths + [data / f"multi/umsab_{lang}_val.jsonl" for lang in UMSAB_LANGUAGES]


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


def topic_report(aspects: Path, model_spec: str, threads: int, max_length: int) -> dict[str, float]:
    """Micro-F1 of complaint topics on an ABSA file: head alone, head + phrase lists, and gated to complaints."""
    from models.train_topics import HeldOut, evaluate, load_aspects
    from monitor.classify.model import SentimentModel

    model = SentimentModel(model_spec, max_length=max_length, batch_size=64, threads=threads)
    if model.topic_head is None:
        return {}
    sentences = load_aspects(aspects)
    # Labelled as the product labels them: English, so the model's English n-gram prior (if any) joins in.
    predictions, x = model.predict_and_embed([s.text for s in sentences], ["en"] * len(sentences))
    results = evaluate(HeldOut(aspects.name, sentences, x, [p.label for p in predictions]), model.topic_head, True)
    return {method: r["micro"]["f1"] for method, r in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every dev set under --data")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument(
        "--aspects", type=Path, default=Path("../shared/data/aspects/mams_acsa_val.xml"), help="topics dev set"
    )
    parser.add_argument("--model", default=None, help='one model for every text: "bundled", a directory, a hub id')
    parser.add_argument("--config", type=Path, default=None, help="route by language as this config does")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none")
    parser.add_argument("--no-vader", action="store_true", help="skip the VADER baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text (default: --config's [model] max_length, else the product's)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    import tempfile

    from monitor.classify.model import SentimentModel
    from monitor.config import ModelConfig, load_config

    model_config = load_config(args.config).model if args.config else ModelConfig()
    # Read texts as the product would: the configured length unless --max-length says otherwise.
    max_length = args.max_length if args.max_length is not None else model_config.max_length
    tmp = Path(tempfile.mkdtemp(prefix="evaluate-"))
    datasets = list(args.datasets) + (dev_sets(args.data, tmp) if args.all else [])
    if not datasets:
        parser.error("give dataset files or --all")
    if args.model:
        model = SentimentModel(
            args.model, max_length=max_length, batch_size=64, threads=args.threads, quantize=args.quantize
        )
        predict_main, main_name = (lambda t, tc: predict_ours(model, t, tc)), "ours"
    else:
        from monitor.classify.stage import Classifier

        model_config.max_length, model_config.batch_size, model_config.threads = max_length, 64, args.threads
        model_config.quantize = args.quantize
        classifier = Classifier(model_config, base_dir=args.config.parent if args.config else None)
        predict_main, main_name = (lambda t, tc: predict_routed(classifier, t, tc)), "ours (routed)"
    results = {}
    summary = []
    for path in datasets:
        texts, gold = read_dataset(path)
        two_class = 1 not in gold
        runs = [(main_name, lambda t, tc=two_class: predict_main(t, tc))]
        if not args.no_vader:
            runs.append(("vader", lambda t, tc=two_class: predict_vader(t, tc)))
        for model_name, predict in runs:
            start = time.perf_counter()
            pred = predict(texts)
            seconds = time.perf_counter() - start
            unrouted = pred.count(UNROUTED)
            # An unrouted text is wrong: score it as the class furthest from the truth.
            pred = [p if p != UNROUTED else (2 if g == 0 else 0) for p, g in zip(pred, gold, strict=True)]
            report = classification_report(gold, pred, LABELS)
            report["unrouted"] = unrouted
            results[f"{path.name}:{model_name}"] = report
            summary.append((path.name, model_name, report))
            print(format_report(path.name, model_name, report, seconds), flush=True)
    print()
    print("| dataset | model | n | accuracy | macro-recall | macro-F1 | unrouted |\n|---|---|---|---|---|---|---|")
    for name, model_name, r in summary:
        scores = f"{r['accuracy']:.4f} | {r['macro_recall']:.4f} | {r['macro_f1']:.4f} | {r['unrouted']}"
        print(f"| {name} | {model_name} | {r['n']} | {scores} |")
    umsab = [r["macro_f1"] for name, m, r in summary if name.startswith("umsab_") and m == main_name]
    if umsab:
        print(f"\nUMSAB val mean macro-F1 ({main_name}): {sum(umsab) / len(umsab):.4f} (lowest {min(umsab):.4f})")
    if args.all and args.aspects.is_file():
        topics = topic_report(args.aspects, args.model or "bundled", args.threads, max_length)
        results[f"{args.aspects.name}:topics"] = topics
        figures = ", ".join(f"{method} {f1:.4f}" for method, f1 in topics.items()) or "the model has no topic head"
        print(f"\n{args.aspects.name} complaint topics micro-F1: {figures}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
