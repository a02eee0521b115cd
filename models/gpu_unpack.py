"""Turn what ``train_multilingual_gpu.py`` sent back into a model directory.

    python models/gpu_unpack.py --base models/sentiment-multi --trained /work/.device/N --output .train/multi-gpu

The trained pieces hold every weight but the (frozen) word embeddings; those, the tokenizer and the config come
from ``--base``, the model the pack was made from. Refuses pieces that miss or add a weight.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.classify.model import INT8_EMBEDDINGS  # noqa: E402

COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", INT8_EMBEDDINGS)


def unpack(base: Path, trained: Path, output: Path) -> dict:
    state: dict = {}
    for piece in sorted(trained.glob("encoder-*.safetensors")):
        state.update(load_file(str(piece)))
    expected = load_file(str(base / "model.safetensors"))
    if set(state) != set(expected):
        raise SystemExit(
            f"pieces do not match {base}: missing {sorted(set(expected) - set(state))}, "
            f"extra {sorted(set(state) - set(expected))}"
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise SystemExit(f"{key}: shape {tuple(state[key].shape)} != {tuple(value.shape)}")
    output.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (base / name).exists():
            shutil.copy(base / name, output / name)
    save_file(
        {k: v.to(expected[k].dtype).contiguous() for k, v in state.items()},
        str(output / "model.safetensors"),
        metadata={"format": "pt"},
    )
    result = json.loads((trained / "result.json").read_text())
    previous = json.loads((base / "training_meta.json").read_text()) if (base / "training_meta.json").exists() else {}
    meta = {
        "gpu_pass": {
            k: result[k] for k in ("args", "best", "steps", "total_steps", "gpu", "train_ex_per_s") if k in result
        },
        "pack": result.get("pack", {}),
        "previous": previous,
    }
    (output / "training_meta.json").write_text(json.dumps(meta, indent=1))
    return {"weights": len(state), "best": result.get("best", {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=Path("models/sentiment-multi"))
    parser.add_argument("--trained", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(unpack(args.base, args.trained, args.output)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
