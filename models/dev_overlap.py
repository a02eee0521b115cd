"""Which dev texts a training corpus holds, and what that did to a dev figure.

    python models/dev_overlap.py                       # dev texts found in each training corpus
    python models/dev_overlap.py --score                # and accuracy apart for the dev texts found
    python models/dev_overlap.py --passes --compare .train/multi-pass5
    git show 6a51aac:models/sentiment-multi/training_meta.json > /tmp/old.json
    python models/dev_overlap.py --passes --meta /tmp/old.json      # the soup bundled before 2026-11-27 17:01 UTC

A dev figure is only a figure on unseen text if no training row repeats a dev text. Texts are matched the way
training de-duplicates them (``models.train.dedup_key``: case, spaces and punctuation ignored). ``--passes``
rebuilds the training mixes of the bundled multilingual model's CPU passes from their recorded arguments
(``training_meta.json``) and scores ChnSentiCorp dev apart for the texts those passes read and the rest, for
the bundled model and any ``--compare`` model directories.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.train import dedup_key, read_jsonl  # noqa: E402
from models.train_multilingual import UMSAB_LANGUAGES, build_mix  # noqa: E402

CAPS = ("tweets_en", "reviews_en_praise", "reviews_en_rest", "sst2", "zh_each", "umsab_each")


def pairs(data: Path) -> list[tuple[Path, list[Path]]]:
    """Each dev file with the training files that could repeat its texts."""
    zh = [data / "zh" / f"{n}.jsonl" for n in ("chnsenticorp_train", "chnsenticorp_htl_all", "waimai_train",
                                                "online_shopping_10_cats")]  # fmt: skip
    out = [(data / "zh" / "chnsenticorp_dev.jsonl", zh),
           (data / "en" / "sst2_dev.jsonl", [data / "en" / "sst2_train.jsonl"]),
           (data / "en" / "tweeteval_val.jsonl", [data / "en" / "semeval2017_4a_train.jsonl"])]  # fmt: skip
    for lang in UMSAB_LANGUAGES:
        out.append((data / "multi" / f"umsab_{lang}_val.jsonl", [data / "multi" / f"umsab_{lang}_train.jsonl"]))
    return out


def overlap(dev: Path, train: Path) -> tuple[int, int]:
    """(dev texts found in ``train``, training rows that repeat one)."""
    keys = {dedup_key(r["text"]) for r in read_jsonl(dev)}
    hits = [dedup_key(r["text"]) for r in read_jsonl(train) if dedup_key(r["text"]) in keys]
    return len(set(hits)), len(hits)


def recorded_passes(meta: dict, where: Path) -> list[dict]:
    """The arguments of every CPU pass (``train_multilingual.py``) a ``training_meta.json`` records: keys named
    ``cpu_pass…``, a pass's own top-level ``args``, and the parents of a soup (``average_weights.py``) whose
    directories are still there."""
    found = [meta["args"]] if isinstance(meta.get("args"), dict) and all(c in meta["args"] for c in CAPS) else []
    for name, record in meta.items():
        args = record.get("args", {}) if isinstance(record, dict) else {}
        if name.startswith("cpu_pass") and all(c in args for c in CAPS):
            found.append(args)
    averaged = meta.get("averaged", {})
    for parent in averaged.get("models", [averaged.get("first"), averaged.get("second")]):
        parent_meta = (where / parent / "training_meta.json") if parent else None
        if parent_meta and parent_meta.is_file():
            found += recorded_passes(json.loads(parent_meta.read_text(encoding="utf-8")), where)
    unique = {json.dumps(a, sort_keys=True): a for a in found}
    return list(unique.values())


def passes_seen(data: Path, meta_path: Path) -> tuple[set[str], int]:
    """Chinese texts a model's recorded CPU passes read (their mixes rebuilt from their arguments), and how many
    passes were found. Earlier passes (the GPU pass, passes 1-4) are not counted."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    seen: set[str] = set()
    passes = recorded_passes(meta, Path.cwd())
    for args in passes:
        # A pass recorded without the option ran before dev texts were filtered, so it kept them.
        keep = args.get("keep_chnsenticorp_dev", "True") == "True"
        mix = build_mix(data, int(args["seed"]), {c: int(args[c]) for c in CAPS}, keep_dev=keep)
        seen |= {dedup_key(t) for t, _, group in mix if group == "zh"}
    return seen, len(passes)


def split_accuracy(spec: str, texts: list[str], gold: list[str], seen: list[bool]) -> tuple[float, float, float]:
    """Two-class accuracy through the product's routing (``spec`` the multilingual model): all, seen, unseen."""
    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    classifier = Classifier(ModelConfig(multilingual=spec))
    right = []
    for (_, pred, _), label in zip(classifier.classify(texts), gold, strict=True):
        said = None if pred is None else ("negative" if pred.probs["complaint"] > pred.probs["praise"] else "positive")
        right.append(said == label)

    def rate(rows: list[bool]) -> float:
        return sum(rows) / len(rows) if rows else float("nan")

    return (
        rate(right),
        rate([r for r, s in zip(right, seen, strict=True) if s]),
        rate([r for r, s in zip(right, seen, strict=True) if not s]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--passes", action="store_true", help="score ChnSentiCorp dev apart for texts passes read")
    parser.add_argument("--score", action="store_true", help="score the two-class dev sets apart for texts found")
    parser.add_argument("--compare", nargs="*", default=[], help="more multilingual model directories to score")
    parser.add_argument(
        "--meta",
        type=Path,
        default=None,
        help="whose passes --passes rebuilds (a training_meta.json; default: the bundled multilingual model's)",
    )
    args = parser.parse_args(argv)
    print("| dev set | training file | dev texts found | training rows repeating one |\n|---|---|---:|---:|")
    for dev, trains in pairs(args.data):
        for train in trains:
            if not (dev.is_file() and train.is_file()):
                print(f"| {dev.stem} | {train.stem} | (file missing) | |", flush=True)
                continue
            found, rows = overlap(dev, train)
            print(f"| {dev.stem} | {train.stem} | {found} | {rows} |", flush=True)
    if args.score:
        print("\n| dev set | all | texts found in a training file | the rest |\n|---|---:|---:|---:|")
        for dev, trains in pairs(args.data):
            rows = read_jsonl(dev)
            if dev.stem not in ("chnsenticorp_dev", "sst2_dev"):
                continue
            keys = {dedup_key(r["text"]) for train in trains for r in read_jsonl(train)}
            seen = [dedup_key(r["text"]) in keys for r in rows]
            scores = split_accuracy("bundled", [r["text"] for r in rows], [r["label"] for r in rows], seen)
            print(f"| {dev.stem} | {scores[0]:.4f} | {scores[1]:.4f} ({sum(seen)}) | {scores[2]:.4f} "
                  f"({len(rows) - sum(seen)}) |", flush=True)  # fmt: skip
    if args.passes:
        from monitor.classify.model import BUNDLED_MULTILINGUAL

        dev = read_jsonl(args.data / "zh" / "chnsenticorp_dev.jsonl")
        meta = args.meta or BUNDLED_MULTILINGUAL / "training_meta.json"
        seen_keys, passes = passes_seen(args.data, meta)
        if not passes:
            print(f"\n{meta} records no CPU pass (train_multilingual.py args): nothing to rebuild", file=sys.stderr)
            return 1
        seen = [dedup_key(r["text"]) in seen_keys for r in dev]
        print(f"\nChnSentiCorp dev texts read by the {passes} CPU passes {meta} records: {sum(seen)} of {len(dev)}")
        print("(earlier passes, the GPU pass included, are not rebuilt)\n")
        print(f"| model | all {len(dev)} | read in training ({sum(seen)}) | never read ({len(dev) - sum(seen)}) |")
        print("|---|---:|---:|---:|")
        for spec in ["bundled", *args.compare]:
            scores = split_accuracy(spec, [r["text"] for r in dev], [r["label"] for r in dev], seen)
            print(f"| {spec} | " + " | ".join(f"{x:.4f}" for x in scores) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
