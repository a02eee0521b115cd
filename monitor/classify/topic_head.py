"""A complaint-topic head over the sentiment encoder's hidden states.

Two shapes, both reading the sentiment model's own forward pass:

- a **linear head** over the attention-masked mean of the last hidden state (no extra cost);
- a **topic branch**: copies of the encoder's top layers, fine-tuned for topics, run on the hidden
  state below them (``from_layer``) and mean-pooled into the same kind of linear head. A sentiment
  encoder keeps little of *which* aspect a sentence criticises; its own top layers, trained for
  that, recover it for the price of those layers on the texts that need topics.

It lives next to the model it was trained on, as ``topic_head.safetensors`` (``weight`` [n_topics,
hidden], ``bias`` [n_topics], and for a branch ``layers.<i>.<name>``: matrices as int8 rows with one scale each,
vectors in fp16) and
``topic_head.json`` (topic names, thresholds, pooling, the branch's shape, training data, held-out
metrics). Train it with ``models/train_topics.py`` (``--branch-layers`` for a branch).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HEAD_WEIGHTS = "topic_head.safetensors"
HEAD_META = "topic_head.json"
POOLING = "mean of last hidden state over attention mask"
BRANCH_POOLING = "mean over attention mask of the branch's own layers, run on hidden state from_layer"
LAYER_PREFIX = "layers."
# A branch's matrices are stored as int8 rows (``int8_rows.py``) under these suffixes; vectors stay fp16.
INT8_SUFFIX, SCALE_SUFFIX = ".int8", ".scale"
# Per-topic thresholds are folded into the scores the head returns, so every caller decides at 0.5.
DECISION_SCORE = 0.5


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [batch, seq, dim] over the unmasked tokens → [batch, dim]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[batch, seq] 0/1 → the [batch, 1, 1, seq] additive mask BERT layers take (0 keep, dtype min drop)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` through ``layers`` (BERT-style encoder layers) under ``attention_mask``."""
    mask = additive_mask(attention_mask, hidden.dtype)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask)
        if isinstance(hidden, tuple):  # older transformers return (hidden, ...) from a layer
            hidden = hidden[0]
    return hidden


def encoder_layers(model) -> torch.nn.ModuleList:
    """The encoder layers of a BERT-style (sequence-classification) model."""
    return model.base_model.encoder.layer


def pack_branch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The branch's weights for the file: matrices as int8 rows with a scale each (half of fp16's bytes, the
    repository keeps every version), vectors (biases, layer norms) in fp16."""
    from monitor.classify.int8_rows import quantize_rows

    out = {}
    for key, value in state.items():
        if value.dim() == 2:
            out[LAYER_PREFIX + key + INT8_SUFFIX], out[LAYER_PREFIX + key + SCALE_SUFFIX] = quantize_rows(value)
        else:
            out[LAYER_PREFIX + key] = value.contiguous().half()
    return out


def unpack_branch(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``pack_branch``'s inverse (the matrices come back dequantised, in fp32)."""
    from monitor.classify.int8_rows import dequantize_rows

    out = {}
    for name, value in tensors.items():
        if not name.startswith(LAYER_PREFIX) or name.endswith(SCALE_SUFFIX):
            continue
        key = name[len(LAYER_PREFIX) :]
        if key.endswith(INT8_SUFFIX):
            key = key[: -len(INT8_SUFFIX)]
            out[key] = dequantize_rows(value, tensors[LAYER_PREFIX + key + SCALE_SUFFIX])
        else:
            out[key] = value.float()
    return out


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
    # A topic branch: the hidden state it starts from (0 = embeddings) and its layers' weights, keyed
    # "<layer index>.<parameter name>"; ``attach`` turns them into modules shaped like the encoder's own.
    from_layer: int | None = None
    branch_state: dict[str, torch.Tensor] | None = None
    layers: torch.nn.ModuleList | None = None

    @property
    def has_branch(self) -> bool:
        return self.from_layer is not None

    @property
    def branch_size(self) -> int:
        return len({key.split(".", 1)[0] for key in self.branch_state or {}})

    def attach(self, model) -> None:
        """Build the branch's layers from ``model``'s own (same class, device and dtype) and load its weights."""
        if not self.has_branch:
            return
        source = encoder_layers(model)
        if self.from_layer + self.branch_size > len(source):
            raise ValueError(
                f"the topic branch starts at layer {self.from_layer} with {self.branch_size} layers, "
                f"but the model has {len(source)}"
            )
        layers = torch.nn.ModuleList(copy.deepcopy(source[self.from_layer + i]) for i in range(self.branch_size))
        state = {k: v.to(next(layers.parameters()).dtype) for k, v in (self.branch_state or {}).items()}
        layers.load_state_dict(state, strict=True)
        self.layers = layers.eval()

    def features(self, hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor) -> torch.Tensor:
        """What the linear part reads, [batch, hidden], from a forward pass's ``hidden_states``."""
        if not self.has_branch:
            return mean_pool(hidden_states[-1].float(), attention_mask).cpu()
        if self.layers is None:
            raise RuntimeError("TopicHead.attach(model) must run before a branch reads hidden states")
        hidden = run_layers(self.layers, hidden_states[self.from_layer], attention_mask)
        return mean_pool(hidden.float(), attention_mask).cpu()

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
        tensors = {"weight": self.weight.contiguous().float(), "bias": self.bias.contiguous().float()}
        if self.has_branch:
            tensors.update(pack_branch(self.branch_state or {}))
        save_file(tensors, str(directory / HEAD_WEIGHTS))
        meta = {**self.meta, "topics": self.topics, "thresholds": self.thresholds, "pooling": POOLING}
        meta.pop("branch", None)
        if self.has_branch:
            meta["pooling"] = BRANCH_POOLING
            meta["branch"] = {"from_layer": self.from_layer, "layers": self.branch_size}
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
        branch = meta.get("branch")
        head = cls(
            topics=topics,
            weight=weight,
            bias=bias,
            thresholds=thresholds,
            meta=meta,
            phrase_floors=floors,
            from_layer=int(branch["from_layer"]) if branch is not None else None,
            branch_state=unpack_branch(tensors) or None,
        )
        if branch is not None and (not head.branch_state or int(branch["layers"]) != head.branch_size):
            raise ValueError(f"{directory / HEAD_WEIGHTS}: the branch's layers do not match topic_head.json")
        if branch is None and head.branch_state:
            raise ValueError(f"{directory / HEAD_META}: branch layers stored but no branch described")
        return head
