"""Choose each bundled model's class offsets (a prior shift added to its logits) on a mix of dev sets.

    python models/calibrate.py                 # measure: the offsets each model would get, checked across halves
    python models/calibrate.py --write         # and write them to models/sentiment-*/calibration.json

A classifier trained on one class balance reads another with a bias: the star-rated reviews hold more neutral
text than the tweets it learned from, and a Chinese review is praise or complaint, never "neutral". One offset per
class (three numbers, the neutral one fixed at 0) is the least a model can be re-tuned by, and it is chosen on the
mix of dev sets, never one: for the English model the mean of TweetEval val macro-recall, SST-2 dev accuracy and
the star-rated reviews' held-out macro-recall; for the multilingual one the mean of ChnSentiCorp dev accuracy and
the UMSAB val mean macro-F1. Texts go through the product's language routing (``models/evaluate.py``'s protocol:
a text sent to no model is wrong), each through the model that would classify it.

To see whether the gain is real and not the dev sets' noise, every dev set is also cut in two halves (odd and even
lines): offsets chosen on one half are scored on the other, both ways, beside the uncalibrated score of that half.
``--write`` stores the offsets chosen on all of each set only when both held-out halves gain.

The offsets already in ``calibration.json`` are part of the predictions read here; a new run adds to them, so
running it twice changes nothing the second time (it finds offsets near 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from models.evaluate import ALIASES, dev_sets, read_dataset  # noqa: E402
from monitor.classify.calibration import CALIBRATION_FILE, LABELS, read_offsets  # noqa: E402

GRID = np.round(np.arange(-1.5, 1.5001, 0.05), 2)
# What each dev set is scored by (the dev targets), and which model's objective it belongs to.
SCORED_BY = {"tweeteval_val": "macro_recall", "sst2_dev": "accuracy", "reviews_stars_dev": "macro_recall",
             "chnsenticorp_dev": "accuracy"}  # fmt: skip
OBJECTIVES = {"sentiment-en": ["tweeteval_val", "sst2_dev", "reviews_stars_dev"],
              "sentiment-multi": ["chnsenticorp_dev", "umsab"]}  # fmt: skip
UNROUTED = -1


def collect(data: Path, threads: int) -> dict[str, dict]:
    """Per dev set: gold labels, whether it is two-class, each text's log-probabilities and its model's name."""
    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    config = ModelConfig()
    config.max_length, config.batch_size, config.threads = 128, 64, threads
    classifier = Classifier(config)
    sets = {}
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        for path in dev_sets(data, Path(tmp)):
            texts, gold = read_dataset(path)
            began = time.perf_counter()
            logp = np.zeros((len(texts), 3))
            model = []
            for i, (_lang, pred, name) in enumerate(classifier.classify(texts)):
                if pred is None:
                    model.append("")
                    continue
                logp[i] = np.log(np.clip([pred.probs[label] for label in LABELS], 1e-12, 1.0))
                model.append(Path(name).name)
            sets[path.stem] = {"gold": np.array(gold), "two_class": 1 not in gold, "logp": logp,
                               "model": np.array(model)}  # fmt: skip
            print(f"  {path.stem}: {len(texts)} texts in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return sets


def predictions(s: dict, offsets: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    logp = s["logp"][rows].copy()
    model = s["model"][rows]
    for name, offset in offsets.items():
        logp[model == name] += offset
    pred = np.where(logp[:, 0] > logp[:, 2], 0, 2) if s["two_class"] else logp.argmax(axis=1)
    pred[model == ""] = UNROUTED
    return pred


def score(gold: np.ndarray, pred: np.ndarray, metric: str) -> float:
    # An unrouted text is wrong: scored as the class furthest from the truth (models/evaluate.py).
    pred = np.where(pred == UNROUTED, np.where(gold == 0, 2, 0), pred)
    if metric == "accuracy":
        return float((gold == pred).mean())
    confusion = np.zeros((3, 3))
    np.add.at(confusion, (gold, pred), 1)
    present = confusion.sum(axis=1) > 0
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    if metric == "macro_recall":
        return float(recall[present].mean())
    precision = np.diag(confusion) / np.maximum(confusion.sum(axis=0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(f1[present].mean())


def set_scores(
    sets: dict, offsets: dict[str, np.ndarray], half: int | None, only: list[str] | None = None
) -> dict[str, float]:
    """Every dev set's score (UMSAB as the mean macro-F1 of its languages) on all rows or one half."""
    scores, umsab = {}, []
    for name, s in sets.items():
        if only is not None and (name.split("_")[0] if name.startswith("umsab_") else name) not in only:
            continue
        rows = np.arange(len(s["gold"]))
        if half is not None:
            rows = rows[rows % 2 == half]
        value = score(s["gold"][rows], predictions(s, offsets, rows), SCORED_BY.get(name, "macro_f1"))
        if name.startswith("umsab_"):
            umsab.append(value)
        else:
            scores[name] = value
    if umsab:
        scores["umsab"] = float(np.mean(umsab))
    return scores


def objective(scores: dict[str, float], model: str) -> float:
    return float(np.mean([scores[name] for name in OBJECTIVES[model]]))


def choose(sets: dict, fixed: dict[str, np.ndarray], model: str, half: int | None) -> np.ndarray:
    """The (complaint, 0, praise) offsets for ``model`` with the best objective, the others' offsets fixed."""
    best, best_offset = -1.0, np.zeros(3)
    for complaint in GRID:
        for praise in GRID:
            offset = np.array([complaint, 0.0, praise])
            value = objective(set_scores(sets, {**fixed, model: offset}, half, OBJECTIVES[model]), model)
            # Ties go to the smaller shift: the least change that does as well.
            if value > best + 1e-9 or (abs(value - best) <= 1e-9 and np.abs(offset).sum() < np.abs(best_offset).sum()):
                best, best_offset = value, offset
    return best_offset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="keep the predictions here (an .npz) between runs")
    parser.add_argument("--write", action="store_true", help="write calibration.json when both halves gain")
    args = parser.parse_args(argv)

    if args.cache and args.cache.exists():
        loaded = np.load(args.cache, allow_pickle=True)
        sets = loaded["sets"].item()
    else:
        sets = collect(args.data, args.threads)
        if args.cache:
            np.savez(args.cache, sets=np.array(sets, dtype=object))
    models = list(OBJECTIVES)
    zero = {m: np.zeros(3) for m in models}

    print("| model | half tuned on | offsets (complaint, praise) | held-out half: before | after | gain |")
    print("|---|---|---|---:|---:|---:|")
    gains: dict[str, list[float]] = {m: [] for m in models}
    for tuned, held in ((0, 1), (1, 0)):
        chosen = dict(zero)
        for model in models:  # English first: the multilingual objective includes Hindi texts sent to English
            chosen[model] = choose(sets, chosen, model, tuned)
        for model in models:
            before = objective(set_scores(sets, zero, held), model)
            after = objective(set_scores(sets, chosen, held), model)
            gains[model].append(after - before)
            offset = chosen[model]
            print(f"| {model} | {'even' if tuned == 0 else 'odd'} lines | {offset[0]:+.2f}, {offset[2]:+.2f} | "
                  f"{before:.4f} | {after:.4f} | {after - before:+.4f} |")  # fmt: skip

    final = dict(zero)
    for model in models:
        final[model] = choose(sets, final, model, None)
    before, after = set_scores(sets, zero, None), set_scores(sets, final, None)
    print("\n| dev set (all of it) | before | after |\n|---|---:|---:|")
    for name in before:
        print(f"| {name} | {before[name]:.4f} | {after[name]:.4f} |")
    for model in models:
        chosen_text = f"complaint {final[model][0]:+.2f}, praise {final[model][2]:+.2f}"
        change = f"{objective(before, model):.4f} -> {objective(after, model):.4f}"
        print(f"\n{model}: offsets chosen on all of each dev set: {chosen_text}; objective {change}")

    if args.write:
        for model in models:
            if min(gains[model]) <= 0:
                print(f"{model}: not written (a held-out half did not gain: {gains[model]})")
                continue
            directory = args.models / model
            earlier = read_offsets(directory)
            offsets = {label: round(earlier.get(label, 0.0) + float(final[model][i]), 4)
                       for i, label in enumerate(LABELS)}  # fmt: skip
            record = {
                "logit_offsets": offsets,
                "chosen_on": OBJECTIVES[model],
                "held_out_half_gains": [round(g, 4) for g in gains[model]],
                "objective_before_after": [round(objective(before, model), 4), round(objective(after, model), 4)],
                "command": "python models/calibrate.py --write",
                "date": datetime.now(UTC).isoformat(timespec="minutes"),
            }
            (directory / CALIBRATION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"{model}: wrote {directory / CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    assert set(ALIASES.values()) == {0, 1, 2}
    raise SystemExit(main())
