"""Average the weights of fine-tuned models of one architecture (a "model soup") and report the dev sets.

    python models/average_weights.py .train/stage3-model .train/stage4-model --alpha 0.5 --output .train/soup
    python models/average_weights.py .train/multi-seed20 .train/multi-seed21 .train/multi-seed22 --no-dev \
        --output .train/multi-soup                       # three or more: the plain mean

The models must come from the same starting weights (here: stage 4 continues stage 3). Averaging keeps most
of what each learnt: stage 3 reads tweets and review sentences best, stage 4 star-rated reviews and complaint
topics; the average (alpha 0.5) was better than either on the mix of English dev sets (docs in models/README.md).
Several seeds of one recipe average the same way, each with an equal share. The output is in Hugging Face
layout, fp16, with ``training_meta.json`` recording the parents and the dev figures; fit the topic head on it
afterwards (``models/train_topics.py --fit-unseen-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from models.train import evaluate_dev, export, load_for_training  # noqa: E402


def average(first, second, alpha: float) -> None:
    """Set ``first``'s weights to (1 - alpha) · first + alpha · second, in place."""
    other = second.state_dict()
    mixed = {
        name: (1 - alpha) * value + alpha * other[name] if value.is_floating_point() else value
        for name, value in first.state_dict().items()
    }
    first.load_state_dict(mixed)


def average_all(models: list) -> None:
    """Set the first model's weights to the plain mean of all of them, in place (a running mean, one at a time)."""
    for count, other in enumerate(models[1:], start=2):
        average(models[0], other, 1 / count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="two or more model directories from the same starting weights")
    parser.add_argument("--alpha", type=float, default=None, help="weight of the second of two models (0.5)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/sentiment/en"))
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-dev", action="store_true", help="skip the English dev sets (a multilingual soup: models/evaluate.py)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if len(args.models) < 2:
        parser.error("give two or more model directories")
    if args.alpha is not None and len(args.models) != 2:
        parser.error("--alpha weighs the second of two models; three or more are averaged equally")
    models = [load_for_training(m) for m in args.models]
    kinds = {str(m.config.to_dict().get("architectures")) for m in models}
    if len(kinds) != 1:
        raise SystemExit("the models have different architectures")
    if args.alpha is None:
        average_all(models)  # two models: alpha 0.5
    else:
        average(models[0], models[1], args.alpha)
    alpha = 0.5 if args.alpha is None else args.alpha
    model = models[0]
    tokenizer = AutoTokenizer.from_pretrained(args.models[0])
    results = {} if args.no_dev else evaluate_dev(model, tokenizer, args.data_dir, args.max_length)
    dev = {k: {m: v[m] for m in ("accuracy", "macro_recall", "macro_f1")} for k, v in results.items()}
    for name, figures in dev.items():
        print(f"{name}: " + " ".join(f"{m}={v:.4f}" for m, v in figures.items()))

    meta = json.loads((Path(args.models[-1]) / "training_meta.json").read_text(encoding="utf-8"))
    if len(args.models) == 2:
        meta["averaged"] = {"first": args.models[0], "second": args.models[1], "alpha": alpha, "dev": dev}
    else:
        meta["averaged"] = {"models": args.models, "weights": "equal", "dev": dev}
    export(model, tokenizer, args.output, meta)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
