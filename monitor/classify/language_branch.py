"""Language branches: a model's top encoder layers, pooler and classifier, retrained for some of its languages.

A multilingual model directory may hold named branches, ``branch-<name>.safetensors`` (the branch's weights:
matrices as int8 rows with one fp16 scale each, vectors in fp16), listed in ``language_branches.json`` with the
languages each serves and the layer it starts from. A text in one of those languages runs the shared embeddings
and lower layers, then the branch; every other language runs the model as it is. Trained by
``models/train_language_branch.py``: one language's own layers cannot move any other language's results, which
full passes over a mix of languages always did.

A branch has its own classifier, so a view that runs it (``SentimentModel.for_language``) uses no class offsets
(``calibration.py``) and no topic head of the model: a directory with a branch and either is refused at load.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from monitor.classify.int8_rows import dequantize_rows, quantize_rows
from monitor.classify.topic_head import encoder_layers, run_layers

BRANCHES_FILE = "language_branches.json"
INT8_SUFFIX, SCALE_SUFFIX = ".int8", ".scale"


def branch_file(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"branch-{name}.safetensors"


class LanguageBranch(torch.nn.Module):
    """The trainable part: copies of the encoder's layers from ``from_layer`` up, its pooler and its classifier."""

    def __init__(self, layers: torch.nn.ModuleList, pooler, dropout, classifier) -> None:
        super().__init__()
        self.layers, self.pooler, self.dropout, self.classifier = layers, pooler, dropout, classifier

    @classmethod
    def from_model(cls, model, from_layer: int) -> LanguageBranch:
        source = encoder_layers(model)
        if not 0 < from_layer < len(source):
            raise ValueError(f"from_layer must be between 1 and {len(source) - 1}")
        layers = torch.nn.ModuleList(copy.deepcopy(source[i]) for i in range(from_layer, len(source)))
        pooler = copy.deepcopy(getattr(model.base_model, "pooler", None))
        return cls(layers, pooler, copy.deepcopy(model.dropout), copy.deepcopy(model.classifier)).float()

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits from the frozen model's hidden state at ``from_layer`` [batch, tokens, hidden]."""
        states = run_layers(self.layers, hidden, mask)
        pooled = self.pooler(states) if self.pooler is not None else states[:, 0]
        return self.classifier(self.dropout(pooled))


def read_branches(directory: str | Path) -> dict[str, dict]:
    """The branches listed in ``directory`` by name (empty when there is no list), each with its ``languages``
    and ``from_layer``.

    Raises ValueError for a list that is there but unreadable, or names a missing file, so a broken model directory
    is named at load."""
    path = Path(directory) / BRANCHES_FILE
    if not path.is_file():
        return {}
    try:
        branches = json.loads(path.read_text(encoding="utf-8"))
        checked = {
            str(name): {**meta, "from_layer": int(meta["from_layer"]), "languages": [str(x) for x in meta["languages"]]}
            for name, meta in branches.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a language branch list ({exc})") from None
    served: dict[str, str] = {}
    for name, meta in checked.items():
        if not branch_file(directory, name).is_file():
            raise ValueError(f"{path}: lists a {name!r} branch, but {branch_file(directory, name).name} is missing")
        for language in meta["languages"]:
            if language in served:
                raise ValueError(f"{path}: {language!r} is served by both {served[language]!r} and {name!r}")
            served[language] = name
    return checked


def write_branch(directory: str | Path, name: str, languages: list[str], branch: LanguageBranch, meta: dict) -> None:
    """Store ``branch`` as ``name``, serving ``languages``, and list it (with ``meta``, which must say
    ``from_layer``) in ``directory``."""
    from safetensors.torch import save_file

    Path(directory).mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in branch.state_dict().items():
        if value.dim() == 2:
            tensors[key + INT8_SUFFIX], tensors[key + SCALE_SUFFIX] = quantize_rows(value.detach())
        else:
            tensors[key] = value.detach().contiguous().half()
    save_file(tensors, str(branch_file(directory, name)))
    path = Path(directory) / BRANCHES_FILE
    branches = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    branches[name] = {"languages": list(languages), **meta}
    path.write_text(json.dumps(branches, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_branch_state(directory: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The branch's weights in fp32, keyed as in ``LanguageBranch.state_dict()``."""
    from safetensors.torch import load_file

    tensors = load_file(str(branch_file(directory, name)))
    state = {}
    for name, value in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name.endswith(INT8_SUFFIX):
            key = name.removesuffix(INT8_SUFFIX)
            state[key] = dequantize_rows(value, tensors[key + SCALE_SUFFIX])
        else:
            state[name] = value.float()
    return state


def branched_model(model, directory: str | Path, name: str):
    """A model for branch ``name``'s languages: ``model``'s embeddings and lower layers (shared), then the branch.

    Built on the meta device, so only the branch's own weights take memory."""
    from_layer = read_branches(directory)[name]["from_layer"]
    state = read_branch_state(directory, name)
    with torch.device("meta"):
        derived = type(model)(model.config)
    prefix = model.base_model_prefix
    derived.base_model.embeddings = model.base_model.embeddings
    shared, own = encoder_layers(model), encoder_layers(derived)
    if not 0 < from_layer < len(shared):
        raise ValueError(f"the {name!r} branch starts at layer {from_layer}; the model has {len(shared)}")
    for i in range(from_layer):
        own[i] = shared[i]
    mapped = {}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        if part == "layers":
            index, _, param = rest.partition(".")
            mapped[f"{prefix}.encoder.layer.{from_layer + int(index)}.{param}"] = value
        elif part == "pooler":
            mapped[f"{prefix}.pooler.{rest}"] = value
        else:
            mapped[key] = value
    missing, unexpected = derived.load_state_dict(mapped, strict=False, assign=True)
    left = [n for n, t in [*derived.named_parameters(), *derived.named_buffers()] if t.is_meta]
    if unexpected or left:
        raise ValueError(f"the {name!r} branch does not fit this model (unexpected {unexpected}, unset {left})")
    return derived.eval()
