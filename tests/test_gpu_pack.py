"""The GPU fine-tuning trip (models/gpu_pack.py → train_multilingual_gpu.py → gpu_unpack.py) on a tiny corpus, on
the CPU: the pack holds only token ids and the rows they use, the trainer writes pieces under 16 MB, and the
unpacked model loads and classifies like a bundled one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "sentiment-multi"
UMSAB = ("arabic", "french", "german", "hindi", "italian", "portuguese", "spanish")


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows), "utf-8")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    en = [
        ("the service was awful and slow", "negative"),
        ("it is a tuesday", "neutral"),
        ("loved it, great staff", "positive"),
    ]
    _write(data / "en" / "semeval2017_4a_train.jsonl", en * 2)
    _write(data / "en" / "tweeteval_val.jsonl", en[:1])
    _write(
        data / "en" / "reviews_stars_train.jsonl",
        [("terrible food, cold and late", "negative"), ("fine place", "neutral")],
    )
    _write(
        data / "en" / "sst2_train.jsonl",
        [("a dull , lifeless and tiresome film", "negative"), ("a warm , funny and moving story", "positive")],
    )
    _write(data / "en" / "sst2_dev.jsonl", [("bad", "negative")])
    zh = [("服务员态度很差，等了一个小时", "negative"), ("房间干净，早餐很好吃", "positive")]
    for name in ("chnsenticorp_train", "chnsenticorp_htl_all", "waimai_train", "online_shopping_10_cats"):
        _write(data / "zh" / f"{name}.jsonl", zh)
    _write(data / "zh" / "chnsenticorp_dev.jsonl", [("太吵了，不会再来", "negative"), ("位置好，服务周到", "positive")])
    for lang in UMSAB:
        rows = [("muy malo, nunca más", "negative"), ("hoy es lunes", "neutral"), ("me encanta", "positive")]
        _write(data / "multi" / f"umsab_{lang}_train.jsonl", rows)
        _write(data / "multi" / f"umsab_{lang}_val.jsonl", rows)
    return data


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pack_train_unpack_round_trip(tiny_data: Path, tmp_path: Path) -> None:
    pack, out, model = tmp_path / "pack", tmp_path / "out", tmp_path / "model"
    meta = json.loads(
        _run("models/gpu_pack.py", "--model", str(BUNDLED), "--data", str(tiny_data), "--out", str(pack))
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
