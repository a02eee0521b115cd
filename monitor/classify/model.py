"""Load a sequence-classification model and run fast batched inference.

Any Hugging Face sequence-classification model works: its labels are mapped
onto ours (complaint / neutral / praise) with ``[model] label_map`` or, for the
common label sets, automatically.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.textprep import head_and_tail, normalise_for_model

OUR_LABELS = ("complaint", "neutral", "praise")
REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODEL = REPO_ROOT / "models" / "sentiment-en"
BUNDLED_MULTILINGUAL = REPO_ROOT / "models" / "sentiment-multi"
BUNDLED = {"bundled": BUNDLED_MODEL, "bundled-multilingual": BUNDLED_MULTILINGUAL}
# Word embeddings stored as int8 rows with one fp16 scale each (models/export.py): most of a multilingual model's
# bytes are its vocabulary, and int8 rows keep the repository small at no measurable cost.
INT8_EMBEDDINGS = "word_embeddings.int8.safetensors"

# Label names seen on public sentiment models, lower-cased.
_KNOWN = {
    "negative": "complaint",
    "neg": "complaint",
    "complaint": "complaint",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "praise",
    "pos": "praise",
    "praise": "praise",
}
_STARS = re.compile(r"^(\d)\s*stars?$")


class ModelLoadError(RuntimeError):
    pass


@dataclass
class Prediction:
    label: str
    score: float
    probs: dict[str, float]
    # Topic head scores (≥ 0.5 tags the topic) when the model directory has a topic head; see topic_head.py.
    topic_scores: dict[str, float] | None = None
    topic_phrase_floors: dict[str, float] | None = None  # the head's, shared by every prediction


def resolve_model(spec: str, base_dir: Path | None = None) -> str:
    """``bundled`` / ``bundled-multilingual`` → our models in models/; an existing directory → that; else a hub id."""
    if spec in BUNDLED:
        path = BUNDLED[spec]
        if not (path / "config.json").exists():
            raise ModelLoadError(f"model: the bundled model is missing at {path} (see models/README.md to train it)")
        return str(path)
    candidate = Path(spec)
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if candidate.exists():
        return str(candidate)
    return spec


def build_label_map(id2label: dict[int, str], label_map: dict[str, str] | None = None) -> list[str]:
    """Return, for each model output index, which of our labels it counts towards."""
    names = [id2label[i] for i in range(len(id2label))]
    if label_map:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise ModelLoadError(f"model.label_map: no mapping for model label(s) {', '.join(missing)}")
        return [label_map[n] for n in names]
    mapped = []
    for name in names:
        lower = name.lower()
        if lower in _KNOWN:
            mapped.append(_KNOWN[lower])
        elif match := _STARS.match(lower):
            stars = int(match.group(1))
            mapped.append("complaint" if stars <= 2 else "neutral" if stars == 3 else "praise")
        else:
            mapped.append("")
    if all(mapped):
        return mapped
    if len(names) == 3 and all(re.fullmatch(r"label_\d", n.lower()) for n in names):
        # LABEL_0..2 in the usual negative/neutral/positive order (e.g. cardiffnlp models).
        return list(OUR_LABELS)
    raise ModelLoadError(
        f"model.label_map: cannot map model labels {names} to complaint/neutral/praise; set [model] label_map"
    )


def pick_device(spec: str, torch):
    """``auto`` → the first CUDA device when torch sees one, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f'model.device: {spec!r} asked for, but torch sees no CUDA GPU (use "auto" or "cpu")')
    return torch.device(spec)


def load_classifier(path: str):
    """``from_pretrained``, plus int8-stored word embeddings when the directory has them."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    int8_file = Path(path) / INT8_EMBEDDINGS
    if not int8_file.exists():
        return AutoModelForSequenceClassification.from_pretrained(path)
    from safetensors.torch import load_file

    from monitor.classify.int8_rows import dequantize_rows

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path), dtype=torch.float32)
    state = load_file(str(Path(path) / "model.safetensors"))
    packed = load_file(str(int8_file))
    embedding = model.get_input_embeddings()
    name = next(n for n, p in model.named_parameters() if p is embedding.weight)
    if name in state:
        # A training script wrote new weights over a packed directory: which embeddings are meant is unknowable.
        raise ValueError(
            f"{path}: model.safetensors holds word embeddings and {INT8_EMBEDDINGS} holds them too; "
            f"delete {INT8_EMBEDDINGS} if the model was retrained, then run models/pack_embeddings.py"
        )
    state[name] = dequantize_rows(packed["rows"], packed["scales"])
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


# Rows per batch scale with text length: short tweets go in large batches (fewer, fuller matrix products),
# long reviews in small ones; ``batch_size`` rows of 64 tokens set the budget.
BUDGET_TOKENS_PER_ROW = 64
MAX_BATCH_ROWS = 256
# A topic branch (extra encoder layers) runs only on texts whose complaint probability reaches this: topics are
# stored for complaints only, and a 1-2 star review the rating rule makes a complaint reads as one (p ≥ 0.05)
# nearly always; below it the phrase lists still tag topics.
BRANCH_MIN_COMPLAINT = 0.05
# A GPU wants far larger batches: on an H100, 32×64-token batches ran 1,073 texts/s, plain batches of 64 rows
# 5,132/s (docs/benchmarks.md), so the budget there is 8 times larger (up to 256 rows of 64 tokens).
GPU_BUDGET_SCALE = 8


def token_budget_batches(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Split ``order`` (indices sorted by length, shortest first) into batches of about
    ``batch_size × 64`` tokens of padded width, at least one row and at most ``MAX_BATCH_ROWS``."""
    budget = batch_size * BUDGET_TOKENS_PER_ROW
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = max(lengths[i], 1)
        if current and (len(current) + 1) * width > budget or len(current) >= MAX_BATCH_ROWS:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class SentimentModel:
    """A transformers sequence classifier with our label set and efficient batching."""

    def __init__(
        self,
        spec: str = "bundled",
        label_map: dict[str, str] | None = None,
        base_dir: Path | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int | None = None,
        device: str = "auto",
        quantize: str = "none",
    ) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from monitor.classify.calibration import offsets_by_index
        from monitor.classify.ngram_prior import read_priors
        from monitor.classify.topic_head import TopicHead

        # Progress bars and load reports would pollute `monitor sentiment` output.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.name = resolve_model(spec, base_dir)
        self.device = pick_device(device, torch)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name)
            self.model = load_classifier(self.name)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model: cannot load model {spec!r}: {exc}") from None
        self.model.eval()
        try:
            self.topic_head = TopicHead.load(self.name) if Path(self.name).is_dir() else None
            if self.topic_head is not None:
                # Before quantisation: the branch copies the encoder's own layers, then keeps its weights.
                self.topic_head.attach(self.model)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"model.default: cannot load the topic head in {self.name}: {exc}") from None
        self.branch: str | None = None  # the language branch a view runs (for_language)
        self._views: dict[str, SentimentModel] = {}
        self._branch_of: dict[str, str] = {}
        from safetensors import SafetensorError

        try:
            # Before quantisation and the device move: a language branch shares this model's lower layers.
            self.language_models = self._language_models()
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            raise ModelLoadError(f"model: cannot load the language branches in {self.name}: {exc}") from None
        try:
            # Per language, an n-gram classifier whose log-probabilities join the logits (ngram_prior.py).
            self.ngram_priors = read_priors(self.name) if Path(self.name).is_dir() else {}
        except ValueError as exc:
            raise ModelLoadError(f"model: {exc}") from None
        shared = sorted(set(self.ngram_priors) & set(self._branch_of))
        if shared:
            raise ModelLoadError(f"model: {self.name} has both a language branch and an n-gram prior for {shared}")
        self.quantized = False
        branch = self.topic_head.layers if self.topic_head is not None else None
        if self.device.type == "cuda":
            # Length-sorted batches in fp16: the GPU's fast path (bench/classify.py).
            self.model.half().to(self.device)
            for language_model in self.language_models.values():
                language_model.half().to(self.device)
            if branch is not None:
                branch.half().to(self.device)
        else:
            if self.model.dtype != torch.float32:
                # fp16 is only a storage format here: CPU matmuls want fp32.
                self.model.float()
            for language_model in self.language_models.values():
                language_model.float()
            if branch is not None:
                branch.float()
            if quantize == "int8":
                import warnings

                with warnings.catch_warnings():  # torch 2.13 calls its own quantized tensor helpers deprecated
                    warnings.simplefilter("ignore", UserWarning)
                    # In place: a language branch's model holds this model's lower layers, which stay shared.
                    self.model = torch.ao.quantization.quantize_dynamic(
                        self.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                    )
                    for language_model in self.language_models.values():
                        torch.ao.quantization.quantize_dynamic(
                            language_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                        )
                self.quantized = True
        self.index_labels = build_label_map(self.model.config.id2label, label_map)
        # Which prior column (OUR_LABELS order) each model output reads; None for an output of no label of ours.
        self._prior_columns = [OUR_LABELS.index(x) if x in OUR_LABELS else None for x in self.index_labels]
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.batch_size = batch_size
        self._specials = self._special_tokens()
        try:
            offsets = offsets_by_index(self.name, self.index_labels) if Path(self.name).is_dir() else None
        except ValueError as exc:
            raise ModelLoadError(f"model: {exc}") from None
        # Class offsets chosen on a mix of dev sets (models/calibrate.py); None: the model as trained.
        self.logit_offsets = torch.tensor(offsets) if offsets else None
        if self.topic_head is not None and self.topic_head.weight.shape[1] != self.model.config.hidden_size:
            raise ModelLoadError(f"model.default: the topic head in {self.name} does not fit this model's hidden size")

    def _language_models(self) -> dict:
        """Per branch in the model directory (``language_branch.py``), the model its languages read with."""
        from monitor.classify.calibration import offsets_by_index
        from monitor.classify.language_branch import branched_model, read_branches

        branches = read_branches(self.name) if Path(self.name).is_dir() else {}
        if branches and (
            self.topic_head is not None or offsets_by_index(self.name, ["complaint", "neutral", "praise"])
        ):
            raise ValueError("a model with language branches cannot also have a topic head or class offsets")
        self._branch_of = {lang: name for name, meta in branches.items() for lang in meta["languages"]}
        return {name: branched_model(self.model, self.name, name) for name in branches}

    def for_language(self, language: str) -> SentimentModel:
        """This model as it reads ``language``: itself, or a view that runs the language's branch (same tokenizer,
        batching and device; the branch has its own classifier, so no class offsets or topic head). Languages that
        share a branch share its view, so their texts share batches."""
        name = self._branch_of.get(language)
        if name is None:
            return self
        if name not in self._views:
            view = copy.copy(self)
            view.model = self.language_models[name]
            view.language_models, view._views, view._branch_of = {}, {}, {}
            view.topic_head, view.logit_offsets, view.branch = None, None, name
            view.ngram_priors = {}
            view.name = f"{self.name}#{name}"  # stored with each classification: which branch read it
            self._views[name] = view
        return self._views[name]

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids this tokenizer puts before and after a text (e.g. [CLS] ... [SEP], <s> ... </s>)."""
        bare = self.tokenizer("hello", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("hello")["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        return [], []

    def _encode(self, texts: list[str]) -> list[list[int]]:
        prefix, suffix = self._specials
        body_budget = self.max_length - len(prefix) - len(suffix)
        ids = self.tokenizer([normalise_for_model(t) for t in texts], add_special_tokens=False)["input_ids"]
        return [prefix + head_and_tail(seq, body_budget) + suffix for seq in ids]

    def _forward(self, texts: list[str], hidden: bool):
        """Yield (text indices, logits, hidden states or None, attention mask) per batch; batches are length-sorted."""
        torch = self._torch
        encoded = self._encode(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            rows = self.batch_size * (GPU_BUDGET_SCALE if self.device.type == "cuda" else 1)
            for idx in token_budget_batches(order, [len(e) for e in encoded], rows):
                width = max(len(encoded[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
                attention = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = encoded[i]
                    input_ids[row, : len(seq)] = torch.tensor(seq)
                    attention[row, : len(seq)] = 1
                if self.device.type != "cpu":
                    input_ids, attention = input_ids.to(self.device), attention.to(self.device)
                # Hidden states cost memory, so ask for them only when something reads them.
                out = self.model(input_ids=input_ids, attention_mask=attention, output_hidden_states=hidden)
                yield idx, out.logits.float().cpu(), (out.hidden_states if hidden else None), attention

    def predict(self, texts: list[str], languages: list[str] | None = None) -> list[Prediction]:
        """Classify texts (and score topics when the model has a topic head). ``languages`` (one code per text, as
        routing identified it) lets the model's n-gram priors join in; without it the transformer reads alone."""
        return self._run(texts, embed=False, languages=languages)[0]

    def predict_and_embed(self, texts: list[str], languages: list[str] | None = None):
        """Predictions plus, per text, what the topic head's linear part reads [len(texts), hidden] (for training it):
        the branch's pooled output when the head has a branch, else the mean-pooled last hidden state.
        ``languages`` as for ``predict``."""
        return self._run(texts, embed=True, languages=languages)

    def _topic_rows(self, probs, embed: bool) -> list[int]:
        """Rows of a batch that get topic scores: all of them for a linear head (free) or when embedding; for a
        branch (extra layers) only those whose text could be a complaint."""
        head = self.topic_head
        if head is None:
            return list(range(len(probs))) if embed else []
        complaint = [i for i, label in enumerate(self.index_labels) if label == "complaint"]
        if embed or not head.has_branch or not complaint:
            return list(range(len(probs)))
        return [row for row, p in enumerate(probs) if sum(p[i] for i in complaint) >= BRANCH_MIN_COMPLAINT]

    def _prior_logits(self, texts: list[str], languages: list[str], idx: list[int]):
        """Each batch row's weighted n-gram log-probabilities in the model's output order (0 without a prior)."""
        torch = self._torch
        extra = torch.zeros((len(idx), len(self.index_labels)))
        rows_by_language: dict[str, list[int]] = {}
        for row, i in enumerate(idx):
            if languages[i] in self.ngram_priors:
                rows_by_language.setdefault(languages[i], []).append(row)
        for language, rows in rows_by_language.items():
            prior = self.ngram_priors[language]
            log_probs = prior.log_probs([texts[idx[row]] for row in rows])
            for out, column in enumerate(self._prior_columns):
                if column is not None:
                    extra[rows, out] = torch.from_numpy(prior.weight * log_probs[:, column]).float()
        return extra

    def _run(self, texts: list[str], embed: bool, languages: list[str] | None = None):
        if languages is not None and len(languages) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        from monitor.classify.topic_head import mean_pool

        torch = self._torch
        results: list[Prediction | None] = [None] * len(texts)
        embeddings = torch.zeros((len(texts), self.model.config.hidden_size)) if embed else None
        head = self.topic_head
        floors = head.phrase_floor_map if head is not None and head.phrase_floors is not None else None
        for idx, logits, hidden_states, attention in self._forward(texts, hidden=embed or head is not None):
            if self.logit_offsets is not None:
                logits = logits.float() + self.logit_offsets
            if languages is not None and self.ngram_priors:
                logits = logits.float() + self._prior_logits(texts, languages, idx)
            probs = torch.softmax(logits.float(), dim=-1).tolist()
            topic_scores: list[dict[str, float] | None] = [None] * len(idx)
            scored = self._topic_rows(probs, embed)
            if scored:
                if head is not None:
                    rows_states, rows_mask = hidden_states, attention
                    if len(scored) < len(idx):
                        # Only the layer the head reads is cut down to the scored rows.
                        keep = torch.tensor(scored, device=attention.device)
                        layer = head.from_layer if head.has_branch else len(hidden_states) - 1
                        rows_states = tuple(h.index_select(0, keep) if n == layer else h
                                            for n, h in enumerate(hidden_states))  # fmt: skip
                        rows_mask = attention.index_select(0, keep)
                    features = head.features(rows_states, rows_mask)
                    for row, score in zip(scored, head.scores(features), strict=True):
                        topic_scores[row] = score
                else:  # embedding for a model without a head: the mean-pooled last layer
                    features = mean_pool(hidden_states[-1].float(), attention).cpu()
                if embeddings is not None:
                    embeddings[[idx[row] for row in scored]] = features.float()
            for row, i in enumerate(idx):
                results[i] = self._to_prediction(probs[row], topic_scores[row])
                if topic_scores[row] is not None:
                    results[i].topic_phrase_floors = floors
        return results, embeddings

    def _to_prediction(self, model_probs: list[float], topic_scores: dict[str, float] | None = None) -> Prediction:
        probs = dict.fromkeys(OUR_LABELS, 0.0)
        for p, label in zip(model_probs, self.index_labels, strict=True):
            probs[label] += p
        label = max(probs, key=probs.get)
        return Prediction(label=label, score=probs[label], probs=probs, topic_scores=topic_scores)
