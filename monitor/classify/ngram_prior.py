"""Per-language n-gram priors: a word and character n-gram classifier whose log-probabilities are added to a
transformer's logits for the texts of one language.

A model directory may list them in ``ngram_priors.json``: per language code, the file holding the n-gram model
(``ngram-<code>.safetensors``) and the weight its log-probabilities carry. A text the product routes to that model
and identifies as one of those languages gets ``logits + weight * log p_ngram(class | text)`` before the softmax;
every other text is read by the transformer alone. Trained and weighed by ``models/train_ngram_priors.py``, which
writes a language only when the combination gains on held-out halves of the dev sets.

Why: a TF-IDF logistic regression trained on a language's own tweets makes different mistakes from a transformer
fine-tuned on a mix of languages, and on UMSAB it is nearly as good alone (``models/README.md``), so the two
together beat either. It costs about 50 ms per hundred tweets on 2 CPU cores, 2–3 % of the classify stage
(``docs/benchmarks.md``).

The file holds no pickle: the vocabularies (xz-compressed, one term per line, in column order), the idf weights
(uint8 steps) and the coefficients (int8 rows, one fp16 scale per class) are plain tensors, read back into
scikit-learn's own ``TfidfVectorizer`` with a fixed vocabulary, so training and inference share one featuriser.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.classify.calibration import LABELS  # the columns of every prior, in this order
from monitor.classify.textprep import normalise_for_model

PRIORS_FILE = "ngram_priors.json"
# The featurisers, fixed: the weights in a file are only meaningful with the settings they were trained with.
WORD_SETTINGS = {"analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"(?u)\b\w+\b|[^\w\s]"}
CHAR_SETTINGS = {"analyzer": "char_wb", "ngram_range": (2, 5)}
# Tweets and short reviews are what the priors learnt; a long text is read by its head and tail, as the
# transformer reads it, and a hostile megabyte costs no more than this.
MAX_CHARS = 2000
# A vocabulary of a few hundred thousand n-grams takes a few MB; a file that inflates past this is not one of ours.
MAX_VOCABULARY_BYTES = 64 * 1024 * 1024
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")


def prior_file(directory: str | Path, language: str) -> Path:
    return Path(directory) / f"ngram-{language}.safetensors"


def prepare(text: str) -> str:
    """The text as both featurisers read it: model normalisation, lower case, head and tail of long text."""
    text = normalise_for_model(text).lower()
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2 :]
    return text


def quantize_idf(idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """idf weights as uint8 steps between their least and largest (a step is ~0.03 for a few thousand texts)."""
    low, high = float(idf.min()), float(idf.max())
    steps = np.round((idf - low) / max(high - low, 1e-9) * 255).astype(np.uint8)
    return np.ascontiguousarray(steps), np.array([low, high], dtype=np.float32)


def dequantize_idf(steps: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    low, high = (float(b) for b in bounds)
    return low + steps.astype(np.float64) * (high - low) / 255


def vectorizers(max_word: int | None = None, max_char: int | None = None):
    """Fresh (unfitted) word and character featurisers with the fixed settings, each keeping at most its
    ``max_*`` most frequent n-grams (all when None): for training."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return (
        TfidfVectorizer(**WORD_SETTINGS, min_df=1, sublinear_tf=True, max_features=max_word),
        TfidfVectorizer(**CHAR_SETTINGS, min_df=2, sublinear_tf=True, max_features=max_char),
    )


@dataclass
class NgramPrior:
    """One language's n-gram classifier, its output columns in ``LABELS`` order."""

    language: str
    weight: float
    word: object  # a fitted sklearn TfidfVectorizer
    char: object
    coef: np.ndarray  # [3, word features + char features]
    intercept: np.ndarray  # [3]

    def log_probs(self, texts: list[str]) -> np.ndarray:
        """log p(class | text) [len(texts), 3], classes in ``LABELS`` order."""
        from scipy.sparse import hstack

        prepared = [prepare(t) for t in texts]
        features = hstack([self.word.transform(prepared), self.char.transform(prepared)]).tocsr()
        scores = np.asarray(features @ self.coef.T) + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

    def save(self, directory: str | Path, path: Path | None = None) -> Path:
        """Write this prior to ``path`` (default: its file in ``directory``)."""
        import torch
        from safetensors.numpy import save_file

        from monitor.classify.int8_rows import quantize_rows

        # Contiguous copies: scikit-learn's coefficients are column-major, and safetensors writes the buffer as is.
        quantized, scale = quantize_rows(torch.from_numpy(np.ascontiguousarray(self.coef, dtype=np.float32)))
        tensors = {
            "coef.int8": np.ascontiguousarray(quantized.numpy()),
            "coef.scale": np.ascontiguousarray(scale.numpy(), dtype=np.float16),
            "intercept": np.ascontiguousarray(self.intercept, dtype=np.float32),
        }
        for name, vectorizer in (("word", self.word), ("char", self.char)):
            terms = vectorizer.get_feature_names_out().tolist()
            blob = lzma.compress("\n".join(terms).encode("utf-8"), preset=9 | lzma.PRESET_EXTREME)
            tensors[f"{name}.vocab.xz"] = np.frombuffer(blob, dtype=np.uint8)
            tensors[f"{name}.idf.uint8"], tensors[f"{name}.idf.range"] = quantize_idf(vectorizer.idf_)
        path = path or prior_file(directory, self.language)
        save_file(tensors, str(path))
        return path

    @classmethod
    def load(cls, directory: str | Path, language: str, weight: float) -> NgramPrior:
        """Read one language's file; ValueError (without the file's name: ``read_priors`` adds it) when any part
        is missing, of the wrong type or shape, or not finite."""
        import torch
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer

        from monitor.classify.int8_rows import dequantize_rows

        tensors = load_file(str(prior_file(directory, language)))
        featurisers = []
        for name, settings in (("word", WORD_SETTINGS), ("char", CHAR_SETTINGS)):
            terms = _vocabulary(_tensor(tensors, f"{name}.vocab.xz", np.uint8, 1))
            steps = _tensor(tensors, f"{name}.idf.uint8", np.uint8, 1)
            bounds = _tensor(tensors, f"{name}.idf.range", np.float32, 1)
            if len(steps) != len(terms) or bounds.shape != (2,):
                raise ValueError(f"{name}: {len(terms)} terms, {len(steps)} idf weights, {len(bounds)} bounds")
            if len(set(terms)) != len(terms):
                raise ValueError(f"{name}: a term is listed twice")
            vectorizer = TfidfVectorizer(**settings, sublinear_tf=True, vocabulary=terms)
            vectorizer.idf_ = dequantize_idf(steps, bounds)
            featurisers.append(vectorizer)
        rows = _tensor(tensors, "coef.int8", np.int8, 2)
        scales = _tensor(tensors, "coef.scale", np.float16, 1)
        intercept = _tensor(tensors, "intercept", np.float32, 1)
        width = sum(len(v.vocabulary) for v in featurisers)
        if rows.shape != (len(LABELS), width) or scales.shape != (len(LABELS),) or intercept.shape != (len(LABELS),):
            raise ValueError(f"coefficients {rows.shape}, scales {scales.shape} and intercept {intercept.shape} do "
                             f"not fit {len(LABELS)} classes of {width} n-grams")  # fmt: skip
        coef = dequantize_rows(torch.from_numpy(rows), torch.from_numpy(scales)).float().numpy()
        return cls(language, weight, *featurisers, coef=coef, intercept=intercept.astype(np.float64))


def _tensor(tensors: dict, name: str, dtype, ndim: int) -> np.ndarray:
    if name not in tensors:
        raise ValueError(f"no {name!r} tensor")
    value = tensors[name]
    if value.dtype != dtype or value.ndim != ndim:
        raise ValueError(f"{name!r} is {value.dtype} with {value.ndim} dimensions, not {np.dtype(dtype)} with {ndim}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{name!r} holds a value that is not finite")
    return value


def _vocabulary(blob: np.ndarray) -> list[str]:
    """The terms, one per line; a file that would inflate past ``MAX_VOCABULARY_BYTES`` is refused."""
    inflate = lzma.LZMADecompressor()
    text = inflate.decompress(blob.tobytes(), max_length=MAX_VOCABULARY_BYTES)
    if not inflate.eof:
        raise ValueError(f"the vocabulary is larger than {MAX_VOCABULARY_BYTES} bytes")
    terms = text.decode("utf-8").split("\n")
    if terms == [""]:
        raise ValueError("an empty vocabulary")
    return terms


def read_priors(directory: str | Path) -> dict[str, NgramPrior]:
    """The priors in ``directory`` by language code (empty when it lists none).

    Raises ValueError for a list that is there but unreadable or names a missing or broken file, so a broken model
    directory is named at load, not at the first text of that language."""
    path = Path(directory) / PRIORS_FILE
    if not path.is_file():
        return {}
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["languages"]
        weights = {str(code): float(entry["weight"]) for code, entry in listed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not an n-gram prior list ({exc})") from None
    for code, weight in weights.items():
        if not LANGUAGE_CODE.fullmatch(code):
            raise ValueError(f"{path}: {code!r} is not a language code")
        if not (math.isfinite(weight) and 0 < weight <= 10):
            raise ValueError(f"{path}: the weight for {code!r} must be a number in (0, 10]")
        if not prior_file(directory, code).is_file():
            raise ValueError(f"{path}: lists {code!r} but {prior_file(directory, code).name} is missing")
    from safetensors import SafetensorError

    priors = {}
    for code, weight in weights.items():
        try:
            priors[code] = NgramPrior.load(directory, code, weight)
        except (OSError, KeyError, EOFError, UnicodeDecodeError, lzma.LZMAError, SafetensorError, ValueError,
                RuntimeError, TypeError) as exc:  # fmt: skip
            raise ValueError(f"{prior_file(directory, code)}: not an n-gram prior ({exc})") from None
    return priors


def write_priors(directory: str | Path, priors: dict[str, NgramPrior], meta: dict | None = None) -> Path:
    """Save each prior and list them, replacing what the directory held: files of languages no longer listed go.

    Each file is written under a temporary name and renamed, and the list last, so an interrupted write leaves a
    list whose files are all there."""
    directory = Path(directory)
    for prior in priors.values():
        final = prior_file(directory, prior.language)
        temporary = prior.save(directory, final.with_name(final.name + ".tmp"))
        os.replace(temporary, final)
    listing = {"languages": {code: {"weight": prior.weight} for code, prior in sorted(priors.items())}}
    if meta:
        listing["trained"] = meta
    path = directory / PRIORS_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(listing, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    keep = {prior_file(directory, code).name for code in priors}
    for old in directory.glob("ngram-*.safetensors"):
        if old.name not in keep:
            old.unlink()
    return path


def remove_priors(directory: str | Path) -> None:
    """Remove a directory's priors (the list first, so no load ever finds a list without its files)."""
    directory = Path(directory)
    (directory / PRIORS_FILE).unlink(missing_ok=True)
    for old in directory.glob("ngram-*.safetensors*"):
        old.unlink()
