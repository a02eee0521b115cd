"""Store a model directory's word embeddings as int8 rows (one fp16 scale per row) to halve its size.

    python models/pack_embeddings.py models/sentiment-multi

Most of a multilingual model's bytes are its vocabulary (74k rows × 384 here). Symmetric per-row int8 keeps
every row's direction to within ~0.4 % of its largest value, far below the 4-bit error the base weights came
with. ``monitor.classify.model.load_classifier`` unpacks it at load time; the rest of the weights stay fp16.
Prints the largest absolute change of any weight and the mean cosine between old and new rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.train_topics import encoder_fingerprint  # noqa: E402
from monitor.classify.int8_rows import dequantize_rows, quantize_rows  # noqa: E402
from monitor.classify.model import INT8_EMBEDDINGS  # noqa: E402
from monitor.classify.topic_head import HEAD_META  # noqa: E402

EMBEDDING_SUFFIX = "embeddings.word_embeddings.weight"


def pack(directory: Path) -> dict:
    model_file = directory / "model.safetensors"
    state = load_file(str(model_file))
    name = next((k for k in state if k.endswith(EMBEDDING_SUFFIX)), None)
    if name is None:
        raise SystemExit(f"{model_file}: no word embeddings to pack (already packed?)")
    # Only a topic head reads the fingerprint; hashing ~100 MB for nothing would double the I/O.
    fingerprint_before = encoder_fingerprint(directory) if (directory / HEAD_META).exists() else None
    weight = state.pop(name)
    rows, scales = quantize_rows(weight)
    restored = dequantize_rows(rows, scales)
    nonzero = weight.float().abs().amax(dim=1) > 0  # the padding row is all zeros: no direction to keep
    cosine = torch.nn.functional.cosine_similarity(restored[nonzero], weight.float()[nonzero], dim=1)
    save_file({"rows": rows, "scales": scales}, str(directory / INT8_EMBEDDINGS), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in state.items()}, str(model_file), metadata={"format": "pt"})
    restamp_topic_head(directory, fingerprint_before)
    return {
        "tensor": name,
        "rows": rows.shape[0],
        "max_abs_change": float((restored - weight.float()).abs().max()),
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
    }


def restamp_topic_head(directory: Path, fingerprint_before: str | None) -> None:
    """A topic head records the encoder it was trained on (``encoder_sha256``); packing changes the files, not the
    encoder beyond int8 rounding, so a head that matched the weights before packing is stamped with the packed
    files' fingerprint and keeps the old one under ``encoder_packed``. A head that was already stale stays stale,
    for the test that compares them to catch."""
    meta_file = directory / HEAD_META
    if fingerprint_before is None or not meta_file.exists():
        return
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("encoder_sha256") != fingerprint_before:
        return
    meta["encoder_sha256"] = encoder_fingerprint(directory)
    meta["encoder_packed"] = {
        "sha256_trained_on": fingerprint_before,
        "note": "word embeddings stored as int8 rows (models/pack_embeddings.py) after this head was trained",
    }
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(pack(args.directory)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
