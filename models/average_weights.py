"""Average the weights of two fine-tuned models of one architecture (a "model soup") and report the dev sets.

    python models/average_weights.py .train/stage3-model .train/stage4-model --alpha 0.5 --output .train/soup

Both models must come from the same starting weights (here: stage 4 continues stage 3). Averaging keeps most
of what each learnt: stage 3 reads tweets and review sentences best, stage 4 star-rated reviews and complaint
topics; the average (alpha 0.5) was better than either on the mix of English dev sets (docs in models/README.md).
The output is in Hugging Face layout, fp16, with ``training_meta.json`` recording both parents and the dev
figures; fit the topic head on it afterwards (``models/train_topics.py --fit-unseen-only``).
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
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from models.train import evaluate_dev  # noqa: E402


def average(first, second, alpha: float) -> None:
    """Set ``first``'s weights to (1 - alpha) · first + alpha · second, in place."""
    other = second.state_dict()
    mixed = {
        name: (1 - alpha) * value + alpha * other[name] if value.is_floating_point() else value
        for name, value in first.state_dict().items()
    }
    first.load_state_dict(mixed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the second model")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/sentiment/en"))
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-dev", action="store_true", help="skip the English dev sets (a multilingual soup: models/evaluate.py)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = AutoModelForSequenceClassification.from_pretrained(args.first, dtype=torch.float32)
    second = AutoModelForSequenceClassification.from_pretrained(args.second, dtype=torch.float32)
    if model.config.to_dict().get("architectures") != second.config.to_dict().get("architectures"):
        raise SystemExit("the two models have different architectures")
    average(model, second, args.alpha)
    tokenizer = AutoTokenizer.from_pretrained(args.first)
    results = {} if args.no_dev else evaluate_dev(model, tokenizer, args.data_dir, args.max_length)
    dev = {k: {m: v[m] for m in ("accuracy", "macro_recall", "macro_f1")} for k, v in results.items()}
    for name, figures in dev.items():
        print(f"{name}: " + " ".join(f"{m}={v:.4f}" for m, v in figures.items()))

    args.output.mkdir(parents=True, exist_ok=True)
    half = model.half()
    half.config.dtype = "float16"
    half.save_pretrained(args.output, safe_serialization=True)
    tokenizer.save_pretrained(args.output)
    meta = json.loads((Path(args.second) / "training_meta.json").read_text(encoding="utf-8"))
    meta["averaged"] = {"first": args.first, "second": args.second, "alpha": args.alpha, "dev": dev}
    (args.output / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
