"""The GPU fine-tuning trip (models/gpu_pack.py → train_multilingual_gpu.py → gpu_unpack.py) on a tiny corpus, on
the CPU: the pack holds only token ids and the rows they use, the trainer writes pieces under 16 MB, and the
unpacked model loads and classifies like a bundled one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "sentiment-multi"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pack_train_unpack_round_trip(tiny_sentiment_data: Path, tmp_path: Path) -> None:
    pack, out, model = tmp_path / "pack", tmp_path / "out", tmp_path / "model"
    meta = json.loads(
        _run("models/gpu_pack.py", "--model", str(BUNDLED), "--data", str(tiny_sentiment_data), "--out", str(pack))
        .strip()
        .splitlines()[-1]
    )
    assert meta["train"]["zh"] == 2  # the dev review never travels as training data, duplicates dropped
    assert meta["dev"]["chnsenticorp"] == 2
    arrays = np.load(pack / "data.npz")
    assert arrays["train_tokens"].dtype == np.uint16 and int(arrays["train_tokens"].max()) < meta["distinct_tokens"]
    rows = load_file(str(pack / "embeddings.safetensors"))["rows"]
    assert rows.shape[0] == meta["distinct_tokens"] < 1000  # only the rows the texts use travel

    # One step with a learning rate of 0: the weights come back unchanged, so the pieces are the bundled model.
    _run(
        str(pack / "train_multilingual_gpu.py"),
        "--pack",
        str(pack),
        "--out",
        str(out),
        "--lr",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--deadline",
        "120",
        "--evals-per-epoch",
        "1",
    )
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 1 and "chnsenticorp" in result["best"]
    if not list(out.glob("encoder-*.safetensors")):  # the start stayed best: nothing was written; write it now
        sys.path.insert(0, str(pack))
        import train_multilingual_gpu as trainer  # noqa: PLC0415

        trainer.save_pieces(_load_pack_model(pack, trainer), out)
    assert all(p.stat().st_size < 16_000_000 for p in out.glob("encoder-*.safetensors"))

    _run("models/gpu_unpack.py", "--base", str(BUNDLED), "--trained", str(out), "--output", str(model))
    before, after = load_file(str(BUNDLED / "model.safetensors")), load_file(str(model / "model.safetensors"))
    assert set(before) == set(after)
    assert all(float((before[k].float() - after[k].float()).abs().max()) < 1e-2 for k in before)

    from monitor.classify.model import SentimentModel

    prediction = SentimentModel(str(model), threads=1).predict(["服务员态度很差，等了一个小时，再也不来了"])[0]
    assert prediction.label == "complaint"


def _load_pack_model(pack: Path, trainer):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig.from_dict(json.loads((pack / "config.json").read_text()))
    model = BertForSequenceClassification(config)
    state = {k: v.float() for k, v in load_file(str(pack / "encoder.safetensors")).items()}
    packed = load_file(str(pack / "embeddings.safetensors"))
    state[trainer.WORD_EMBEDDINGS] = packed["rows"].float() * packed["scales"].float()[:, None]
    model.load_state_dict(state, strict=False)
    return model.to(torch.float32)


def test_unpack_refuses_pieces_that_do_not_fit(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    (tmp_path / "trained").mkdir()
    save_file({"bert.pooler.dense.bias": torch.zeros(3)}, str(tmp_path / "trained" / "encoder-0.safetensors"))
    (tmp_path / "trained" / "result.json").write_text("{}")
    done = subprocess.run(
        [
            sys.executable,
            "models/gpu_unpack.py",
            "--base",
            str(BUNDLED),
            "--trained",
            str(tmp_path / "trained"),
            "--output",
            str(tmp_path / "model"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "do not match" in done.stderr
    assert not (tmp_path / "model").exists()
