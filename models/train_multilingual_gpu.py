"""Fine-tune the multilingual sentiment model on a GPU from a pack made by ``models/gpu_pack.py``.

    python train_multilingual_gpu.py --pack .gpu --out OUT --lr 3e-5 --epochs 4 --deadline 330

Self-contained (torch, transformers, safetensors, numpy; no tokenizer, no text): the same loss as
``train_multilingual.py`` (class-weighted cross-entropy; Chinese and SST-2 as complaint-vs-praise signals), the
word embeddings frozen, bf16 autocast over fp32 weights. The dev sets (ChnSentiCorp dev, UMSAB val) are scored
at the start and every half epoch; the best state (mean of ChnSentiCorp accuracy and UMSAB mean macro-F1) is
written to ``--out`` as fp16 safetensors in pieces under 16 MB, without the word embeddings.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForSequenceClassification

TWO_CLASS_WEIGHT = {"sst2": 0.5, "zh": 1.0}
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


def sequences(arrays, name: str) -> list[np.ndarray]:
    tokens, offsets = arrays[f"{name}_tokens"].astype(np.int64), arrays[f"{name}_offsets"]
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def padded(seqs: list[np.ndarray], idx: list[int], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(seqs[i]) for i in idx)
    ids = np.full((len(idx), width), pad, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    for row, i in enumerate(idx):
        ids[row, : len(seqs[i])] = seqs[i]
        mask[row, : len(seqs[i])] = 1
    return torch.from_numpy(ids).to(device, non_blocking=True), torch.from_numpy(mask).to(device, non_blocking=True)


def make_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def mixed_loss(logits, y, two_class, class_weights, pair_weight):
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    three = -log_probs.gather(1, y[:, None]).squeeze(1) * class_weights[y]
    pair = torch.log_softmax(logits.float()[:, [0, 2]], dim=-1)
    two = -pair.gather(1, (y // 2)[:, None]).squeeze(1) * pair_weight
    return torch.where(two_class, two, three).mean()


def macro_f1(gold: np.ndarray, pred: np.ndarray, classes: int = 3) -> float:
    f1s = []
    for c in range(classes):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


@torch.inference_mode()
def evaluate(model, seqs, labels, groups, dev_sets, pad, device) -> dict:
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    logits = np.zeros((len(seqs), 3), dtype=np.float32)
    for start in range(0, len(order), 256):
        idx = order[start : start + 256]
        ids, mask = padded(seqs, idx, pad, device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits[idx] = model(input_ids=ids, attention_mask=mask).logits.float().cpu().numpy()
    model.train()
    out = {}
    for code, name in enumerate(dev_sets):
        sel = groups == code
        gold, lg = labels[sel], logits[sel]
        if name == "chnsenticorp":  # two classes: complaint vs praise only
            pred = np.where(lg[:, 0] > lg[:, 2], 0, 2)
            out[name] = float(np.mean(pred == gold))
        else:
            out[name] = macro_f1(gold, lg.argmax(1))
    umsab = [v for k, v in out.items() if k != "chnsenticorp"]
    out["umsab_mean_f1"] = float(np.mean(umsab))
    out["score"] = (out["chnsenticorp"] + out["umsab_mean_f1"]) / 2
    return out


def save_pieces(model, out: Path, limit_bytes: int = 15_000_000) -> list[str]:
    state = {
        k: v.detach().to(torch.float16).cpu().contiguous()
        for k, v in model.state_dict().items()
        if k != WORD_EMBEDDINGS
    }
    pieces: list[dict] = [{}]
    size = 0
    for key in sorted(
        state, key=lambda k: (".layer." in k, int(k.split(".layer.")[1].split(".")[0]) if ".layer." in k else -1, k)
    ):
        nbytes = state[key].numel() * 2
        if size + nbytes > limit_bytes and pieces[-1]:
            pieces.append({})
            size = 0
        pieces[-1][key] = state[key]
        size += nbytes
    names = []
    for n, piece in enumerate(pieces):
        name = f"encoder-{n}.safetensors"
        save_file(piece, str(out / name), metadata={"format": "pt"})
        names.append(name)
    return names


@torch.inference_mode()
def bench(model, seqs, pad, device, n: int = 5000) -> dict:
    """Forward-pass throughput on pre-tokenised texts: fp32 batches of 64 in arrival order (what a plain
    pipeline with batch_size=64 does) vs fp16 length-sorted batches of ~32×64 tokens (SentimentModel's GPU path)."""
    model.eval()
    torch.backends.cuda.matmul.allow_tf32 = False  # a plain pipeline's default
    rng = random.Random(0)
    pick = [rng.randrange(len(seqs)) for _ in range(n)]
    sample = [seqs[i] for i in pick]
    results = {}

    def run(batches):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for idx in batches:
            ids, mask = padded(sample, idx, pad, device)
            model(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    arrival = [list(range(i, min(i + 64, n))) for i in range(0, n, 64)]
    order = sorted(range(n), key=lambda i: len(sample[i]))
    budget, sorted_batches, cur = 32 * 64, [], []
    for i in order:
        if cur and ((len(cur) + 1) * len(sample[i]) > budget or len(cur) >= 256):
            sorted_batches.append(cur)
            cur = []
        cur.append(i)
    sorted_batches.append(cur)
    run(arrival[:5])  # warm-up
    results["fp32_batch64_arrival_per_s"] = run(arrival)
    model.half()
    run(sorted_batches[:5])
    results["fp16_length_sorted_per_s"] = run(sorted_batches)
    model.float()
    results["texts"] = n
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pack", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--umsab-repeat", type=int, default=1, help="UMSAB tweets appear this many times per epoch")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--deadline", type=float, default=330, help="seconds of training before stopping")
    parser.add_argument("--evals-per-epoch", type=int, default=2)
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="first N training and dev texts only (smoke test)")
    args = parser.parse_args(argv)
    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # CPU: smoke tests only
    torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((args.pack / "pack.json").read_text())
    arrays = np.load(args.pack / "data.npz")

    config = BertConfig.from_dict(json.loads((args.pack / "config.json").read_text()))
    model = BertForSequenceClassification(config)
    state = {k: v.float() for k, v in load_file(str(args.pack / "encoder.safetensors")).items()}
    packed = load_file(str(args.pack / "embeddings.safetensors"))
    state[WORD_EMBEDDINGS] = packed["rows"].float() * packed["scales"].float()[:, None]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(device).train()
    pad = config.pad_token_id

    seqs = sequences(arrays, "train")
    labels_np = arrays["train_labels"].astype(np.int64)
    groups_np = arrays["train_groups"]
    group_names = meta["groups"]
    umsab_code = group_names.index("umsab")
    base_index = list(range(args.limit or len(seqs)))
    index = base_index + [i for i in base_index if groups_np[i] == umsab_code] * (args.umsab_repeat - 1)
    lengths = [len(seqs[i]) for i in index]
    labels = torch.from_numpy(labels_np).to(device)
    pair_weight = torch.tensor([TWO_CLASS_WEIGHT.get(group_names[g], 0.0) for g in groups_np], device=device)
    two_class = pair_weight > 0
    counts = torch.bincount(labels[~two_class], minlength=3).float()
    class_weights = counts.sum() / (3 * counts.clamp(min=1))

    dev_seqs = sequences(arrays, "dev")
    dev_labels, dev_groups = arrays["dev_labels"].astype(np.int64), arrays["dev_groups"]
    if args.limit:  # every dev set keeps a few texts
        keep = np.concatenate(
            [np.flatnonzero(dev_groups == g)[: args.limit // 8 + 1] for g in range(len(meta["dev_sets"]))]
        )
        dev_seqs = [dev_seqs[i] for i in keep]
        dev_labels, dev_groups = dev_labels[keep], dev_groups[keep]

    def score() -> dict:
        return evaluate(model, dev_seqs, dev_labels, dev_groups, meta["dev_sets"], pad, device)

    steps_per_epoch = math.ceil(len(index) / args.batch_size)
    total = steps_per_epoch * args.epochs
    # The optimiser, loss and batching repeat train_multilingual.py's on purpose: this file travels alone.
    no_decay = ("bias", "LayerNorm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=args.lr,
        fused=device.type == "cuda",
    )
    # The schedule ends at the deadline if the planned epochs would not fit: after 400 steps (the first ones are
    # slow while CUDA picks kernels for each new width) the measured rate
    # sets the number of steps, so the learning rate still decays to zero.
    plan = {"total": total, "warm": int(total * args.warmup)}

    def lr_factor(s: int) -> float:
        if s < plan["warm"]:
            return s / max(1, plan["warm"])
        return max(0.0, (plan["total"] - s) / max(1, plan["total"] - plan["warm"]))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history = [{"step": 0, "epoch": 0.0, **score()}]
    best = history[0]
    print(json.dumps(history[-1]), flush=True)
    eval_every = max(1, steps_per_epoch // args.evals_per_epoch)
    step, stopped = 0, False
    t0 = time.time()
    for epoch in range(args.epochs):
        for batch in make_batches(lengths, args.batch_size, args.seed + epoch):
            idx = [index[b] for b in batch]
            ids, mask = padded(seqs, idx, pad, device)
            sel = torch.tensor(idx, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = mixed_loss(logits, labels[sel], two_class[sel], class_weights, pair_weight[sel])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == 400:
                rate = step / (time.time() - t0)
                fits = int(rate * (args.deadline - (time.time() - started)) * 0.95) + step
                if fits < plan["total"]:
                    plan["total"] = fits
                    eval_every = max(1, min(eval_every, plan["total"] // 8))
                    print(f"{rate:.1f} steps/s: the schedule ends at step {fits}", flush=True)
            if step % 200 == 0:
                rate = step * args.batch_size / (time.time() - t0)
                print(f"step {step}/{plan['total']} loss {loss.item():.4f} {rate:.0f} ex/s", flush=True)
            if step % eval_every == 0 or step == plan["total"]:
                history.append({"step": step, "epoch": round(step / steps_per_epoch, 2), **score()})
                print(json.dumps(history[-1]), flush=True)
                if history[-1]["score"] > best["score"]:
                    best = history[-1]
                    save_pieces(model, args.out)
            if step >= plan["total"] or time.time() - started > args.deadline:
                stopped = True
                break
        if stopped:
            break
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "pack": meta,
        "best": best,
        "history": history,
        "steps": step,
        "total_steps": plan["total"],
        "planned_steps": total,
        "stopped_at_deadline": stopped,
        "train_ex_per_s": step * args.batch_size / (time.time() - t0),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    }
    if args.bench and device.type == "cuda":
        for name in sorted(args.out.glob("encoder-*.safetensors")):
            model.load_state_dict({k: v.float() for k, v in load_file(str(name)).items()}, strict=False)
        result["bench"] = bench(model, seqs + dev_seqs, pad, device)
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({"best": best, "bench": result.get("bench")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
