"""Train a topic branch: copies of the sentiment encoder's top layers, fine-tuned for complaint topics.

The sentiment encoder below the branch stays frozen (the product runs it anyway), so its hidden
state at ``from_layer`` is computed once per sentence and cached; only the branch's layers and its
linear head train. Called by ``models/train_topics.py --branch-layers N``.

Selection never looks at a held-out set: the epoch, each topic's threshold and phrase floor are
chosen on ``select`` sentences (the aspect sentences the encoder itself never saw).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable

import torch

from monitor.classify.model import SentimentModel
from monitor.classify.topic_head import TopicHead, encoder_layers, mean_pool, run_layers

BATCH_SIZE = 32
HEAD_LR = 1e-3  # the linear head starts from nothing; the layers start from the encoder's own
WEIGHT_DECAY = 0.01
WARMUP = 0.06
MAX_POS_WEIGHT = 20.0


def cache_hidden(model: SentimentModel, texts: list[str], from_layer: int) -> list[torch.Tensor]:
    """Per text, the encoder's hidden state at ``from_layer`` [tokens, hidden], from the product's own forward pass."""
    out: list[torch.Tensor | None] = [None] * len(texts)
    for idx, _logits, states, attention in model._forward(texts, hidden=True):
        lengths = attention.sum(dim=1).tolist()
        for row, i in enumerate(idx):
            out[i] = states[from_layer][row, : lengths[row]].float().cpu().clone()
    return out


def pad_batch(hidden: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(h.shape[0] for h in hidden)
    x = torch.zeros(len(hidden), width, hidden[0].shape[1])
    mask = torch.zeros(len(hidden), width, dtype=torch.long)
    for row, h in enumerate(hidden):
        x[row, : len(h)] = h
        mask[row, : len(h)] = 1
    return x, mask


class Branch(torch.nn.Module):
    """The trainable part: ``n_layers`` copies of the encoder's layers from ``from_layer`` and a linear head."""

    def __init__(self, encoder_model, from_layer: int, n_layers: int, n_outputs: int) -> None:
        super().__init__()
        source = encoder_layers(encoder_model)
        self.layers = torch.nn.ModuleList(copy.deepcopy(source[from_layer + i]) for i in range(n_layers)).float()
        self.head = torch.nn.Linear(encoder_model.config.hidden_size, n_outputs)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(mean_pool(run_layers(self.layers, hidden, mask), mask))

    def probabilities(self, hidden: list[torch.Tensor], n_topics: int) -> torch.Tensor:
        self.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(hidden), 64):
                x, mask = pad_batch(hidden[start : start + 64])
                out.append(torch.sigmoid(self(x, mask)[:, :n_topics]))
        self.train()
        return torch.cat(out) if out else torch.zeros(0, n_topics)


def train_branch(
    model: SentimentModel,
    train_hidden: list[torch.Tensor],
    train_targets: torch.Tensor,
    select_hidden: list[torch.Tensor],
    select_score: Callable[[torch.Tensor], float],
    *,
    from_layer: int,
    n_layers: int,
    n_topics: int,
    epochs: int,
    lr: float,
    seed: int,
    head_lr: float = HEAD_LR,
) -> tuple[Branch, list[dict]]:
    """Fine-tune a branch; return the best epoch's (by ``select_score`` of the selection sentences'
    probabilities [n, n_topics]) and each epoch's record.

    ``train_targets`` is [n, outputs] of 0/1: the first ``n_topics`` columns are the topics, any further
    ones auxiliary targets that only shape the layers (dropped at export).
    """
    torch.manual_seed(seed)
    branch = Branch(model.model, from_layer, n_layers, train_targets.shape[1])
    positives = train_targets.sum(0)
    pos_weight = ((len(train_targets) - positives) / positives.clamp(min=1)).clamp(max=MAX_POS_WEIGHT)
    optimizer = torch.optim.AdamW(
        [{"params": branch.layers.parameters(), "lr": lr}, {"params": branch.head.parameters(), "lr": head_lr}],
        weight_decay=WEIGHT_DECAY,
    )
    steps = epochs * math.ceil(len(train_hidden) / BATCH_SIZE)
    warm = max(1, int(WARMUP * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    rng = random.Random(seed)
    history: list[dict] = []
    best: tuple[float, dict] | None = None
    for epoch in range(epochs):
        started = time.monotonic()
        order = list(range(len(train_hidden)))
        rng.shuffle(order)
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            x, mask = pad_batch([train_hidden[i] for i in idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                branch(x, mask), train_targets[idx], pos_weight=pos_weight
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(branch.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        score = select_score(branch.probabilities(select_hidden, n_topics))
        record = {"epoch": epoch + 1, "selection_micro_f1": score, "seconds": round(time.monotonic() - started, 1)}
        history.append(record)
        print(f"  branch epoch {epoch + 1}: selection micro-F1 {score:.4f} ({record['seconds']} s)", flush=True)
        if best is None or score > best[0]:
            best = (score, copy.deepcopy(branch.state_dict()))
    assert best is not None
    branch.load_state_dict(best[1])
    return branch, history


def to_head(branch: Branch, topics: list[str], thresholds: list[float], from_layer: int) -> TopicHead:
    """The product's head: the branch's layers and the topic rows of its linear head."""
    n = len(topics)
    return TopicHead(
        topics=list(topics),
        weight=branch.head.weight.detach()[:n].clone(),
        bias=branch.head.bias.detach()[:n].clone(),
        thresholds=thresholds,
        from_layer=from_layer,
        branch_state={k: v.detach().clone() for k, v in branch.layers.state_dict().items()},
    )
