"""A linear complaint-topic head over the sentiment encoder's pooled embedding.

The head reads the attention-masked mean of the encoder's last hidden state, so
the classify stage gets topic scores from the same forward pass as sentiment.
It lives next to the model it was trained on, as ``topic_head.safetensors``
(``weight`` [n_topics, hidden], ``bias`` [n_topics]) and ``topic_head.json``
(topic names, thresholds, pooling, training data, held-out metrics).
Train it with ``models/train_topics.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HEAD_WEIGHTS = "topic_head.safetensors"
HEAD_META = "topic_head.json"
POOLING = "mean of last hidden state over attention mask"
# Per-topic thresholds are folded into the scores the head returns, so every caller decides at 0.5.
DECISION_SCORE = 0.5


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [batch, seq, dim] over the unmasked tokens → [batch, dim]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass
class TopicHead:
    topics: list[str]
    weight: torch.Tensor  # [n_topics, hidden]
    bias: torch.Tensor  # [n_topics]
    thresholds: list[float]  # on the logistic probability, chosen by cross-validation when trained
    meta: dict[str, Any] = field(default_factory=dict)
    # Per topic, the score (same scale as ``scores``) at which a phrase-list match for that topic is believed:
    # 0 believes every match; higher asks the head to agree a little. Chosen by cross-validation when trained.
    phrase_floors: list[float] | None = None

    @property
    def phrase_floor_map(self) -> dict[str, float]:
        return dict(zip(self.topics, self.phrase_floors or [0.0] * len(self.topics), strict=True))

    def probabilities(self, pooled: torch.Tensor) -> torch.Tensor:
        """The logistic regressions' probabilities, [batch, n_topics]."""
        return torch.sigmoid(pooled.float() @ self.weight.T + self.bias)

    def scores(self, pooled: torch.Tensor) -> list[dict[str, float]]:
        """Per text, topic → score where ≥ ``DECISION_SCORE`` means the head tags the topic.

        The score is the probability with its threshold shifted to 0.5 (a shift
        in logit space), so callers need no per-topic thresholds and the order
        of texts by score is unchanged.
        """
        shift = torch.tensor([_logit(t) for t in self.thresholds])
        shifted = torch.sigmoid(pooled.float() @ self.weight.T + self.bias - shift)
        return [dict(zip(self.topics, row, strict=True)) for row in shifted.tolist()]

    def save(self, directory: Path | str) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file(
            {"weight": self.weight.contiguous().float(), "bias": self.bias.contiguous().float()},
            str(directory / HEAD_WEIGHTS),
        )
        meta = {**self.meta, "topics": self.topics, "thresholds": self.thresholds, "pooling": POOLING}
        if self.phrase_floors is not None:
            meta["phrase_floors"] = self.phrase_floors
        (directory / HEAD_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path | str) -> TopicHead | None:
        """The head saved in ``directory``, or None when it has none."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / HEAD_WEIGHTS).is_file() or not (directory / HEAD_META).is_file():
            return None
        tensors = load_file(str(directory / HEAD_WEIGHTS))
        meta = json.loads((directory / HEAD_META).read_text(encoding="utf-8"))
        topics, thresholds = list(meta["topics"]), [float(t) for t in meta["thresholds"]]
        weight, bias = tensors["weight"].float(), tensors["bias"].float()
        if weight.shape[0] != len(topics) or bias.shape != (len(topics),) or len(thresholds) != len(topics):
            raise ValueError(f"{directory / HEAD_WEIGHTS}: shape does not match the {len(topics)} topics")
        floors = meta.get("phrase_floors")
        if floors is not None and len(floors) != len(topics):
            raise ValueError(f"{directory / HEAD_META}: phrase_floors does not match the {len(topics)} topics")
        floors = [float(f) for f in floors] if floors is not None else None
        return cls(topics=topics, weight=weight, bias=bias, thresholds=thresholds, meta=meta, phrase_floors=floors)
