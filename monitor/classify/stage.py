"""The classify stage: label every mention that has no classification yet.

Text goes to the model for its language: ``[model] languages`` names one per language, the multilingual model
takes ``[model] multilingual_languages`` (by default Chinese, Spanish, German, French, Italian, Portuguese,
Arabic and Hindi), and ``[model] default`` takes English. Text in a language no configured model covers is
stored with label ``unclassified_language`` rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from monitor.classify.language import detect_language
from monitor.classify.model import Prediction, SentimentModel
from monitor.classify.rating import combine_with_rating
from monitor.classify.topics import tag_topics, urgency_flags
from monitor.config import Config, ModelConfig
from monitor.store import utcnow

UNCLASSIFIED_LANGUAGE = "unclassified_language"
DEFAULT_LANGUAGE = "en"
CHUNK = 512


def language_specs(model_config: ModelConfig) -> dict[str, str]:
    """Which model spec classifies each covered language (``languages`` > multilingual > English default)."""
    specs: dict[str, str] = {}
    if model_config.multilingual:
        multi = "bundled-multilingual" if model_config.multilingual == "bundled" else model_config.multilingual
        specs.update(dict.fromkeys(model_config.multilingual_languages, multi))
    specs[DEFAULT_LANGUAGE] = model_config.default
    specs.update(model_config.languages)
    return specs


class Classifier:
    """Routes texts to per-language models, loading each model once, on first use."""

    def __init__(self, model_config: ModelConfig, base_dir=None, models: dict[str, SentimentModel] | None = None):
        self.config = model_config
        self.base_dir = base_dir
        self.specs = language_specs(model_config)
        self._models: dict[str, SentimentModel] = dict(models or {})
        self._by_spec: dict[str, SentimentModel] = {}
        # The languages some configured model covers (fixed: detect() reads it for every text).
        self.languages = frozenset(self.specs) | frozenset(self._models)

    def model_for(self, lang: str) -> SentimentModel | None:
        if lang in self._models:
            return self._models[lang]
        spec = self.specs.get(lang)
        if spec is None:
            return None
        if spec not in self._by_spec:
            self._by_spec[spec] = SentimentModel(
                spec,
                label_map=self.config.label_map if spec == self.config.default else None,
                base_dir=self.base_dir,
                max_length=self.config.max_length,
                batch_size=self.config.batch_size,
                threads=self.config.threads,
                device=self.config.device,
                quantize=self.config.quantize,
            )
        self._models[lang] = self._by_spec[spec]
        return self._models[lang]

    def detect(self, text: str) -> str:
        return detect_language(text, default=DEFAULT_LANGUAGE, prefer=self.languages)

    def classify(self, texts: list[str], langs: list[str] | None = None) -> list[tuple[str, Prediction | None, str]]:
        """Return (lang, prediction or None, model name) per text. Texts that share a model share its batches."""
        langs = langs or [self.detect(t) for t in texts]
        out: list[tuple[str, Prediction | None, str]] = [(lang, None, "") for lang in langs]
        by_model: dict[int, tuple[SentimentModel, list[int]]] = {}
        for i, lang in enumerate(langs):
            model = self.model_for(lang)
            if model is not None:
                by_model.setdefault(id(model), (model, []))[1].append(i)
        for model, idx in by_model.values():
            for i, pred in zip(idx, model.predict([texts[i] for i in idx]), strict=True):
                out[i] = (langs[i], pred, model.name)
        return out


def classify_record(text: str, rating: float | None, author_reach: int | None, lang: str, pred: Prediction | None):
    """The stored classification fields for one mention."""
    flags = urgency_flags(text, author_reach)
    if pred is None:
        return {"label": UNCLASSIFIED_LANGUAGE, "score": None, "probs": None, "text_label": None,
                "topics": json.dumps([]), "urgency": json.dumps(flags), "lang": lang}  # fmt: skip
    label, probs = combine_with_rating(pred.probs, rating)
    return {
        "label": label,
        "score": round(probs[label], 4),
        "probs": json.dumps({k: round(v, 4) for k, v in probs.items()}),
        "text_label": pred.label,
        "topics": json.dumps(tag_topics(text, label, pred.topic_scores, pred.topic_phrase_floors)),
        "urgency": json.dumps(flags),
        "lang": lang,
    }


def _pending(db: sqlite_utils.Database) -> Iterator[list[dict[str, Any]]]:
    while True:
        rows = list(
            db.query(
                "select m.id, m.title, m.text, m.rating, m.author_reach, m.lang from mentions m "
                "left join classifications c on c.mention_id = m.id where c.mention_id is null "
                "order by m.id limit ?",
                [CHUNK],
            )
        )
        if not rows:
            return
        yield rows


def mention_text(row: dict[str, Any]) -> str:
    title, text = row.get("title") or "", row.get("text") or ""
    if title and title not in text:
        return f"{title}. {text}" if text else title
    return text


@dataclass
class ClassifyCounts:
    classified: int = 0
    by_label: dict[str, int] = field(default_factory=dict)


def classify_pending(db: sqlite_utils.Database, classifier: Classifier) -> ClassifyCounts:
    """Classify every mention without a classification. Safe to run again: it only picks up new work."""
    counts = ClassifyCounts()
    for rows in _pending(db):
        texts = [mention_text(r) for r in rows]
        langs = [r["lang"] or classifier.detect(t) for r, t in zip(rows, texts, strict=True)]
        results = classifier.classify(texts, langs)
        now = utcnow()
        records = []
        for row, text, (lang, pred, model_name) in zip(rows, texts, results, strict=True):
            record = classify_record(text, row["rating"], row["author_reach"], lang, pred)
            record.update(mention_id=row["id"], model=model_name, classified_at=now)
            records.append(record)
            counts.by_label[record["label"]] = counts.by_label.get(record["label"], 0) + 1
        with db.atomic():
            db["classifications"].insert_all(records, replace=True)
            for row, (lang, _, _) in zip(rows, results, strict=True):
                if not row["lang"]:
                    db.execute("update mentions set lang = ? where id = ?", [lang, row["id"]])
        counts.classified += len(records)
    return counts


def classify_objects(objects: Iterable[dict[str, Any]], classifier: Classifier) -> list[dict[str, Any]]:
    """`monitor sentiment`: each input object plus label, score, probs, topics (and lang, urgency)."""
    objects = list(objects)
    texts = [str(o.get("text", "")) for o in objects]
    results = classifier.classify(texts)
    out = []
    for obj, text, (lang, pred, _) in zip(objects, texts, results, strict=True):
        rating = obj.get("rating") if isinstance(obj.get("rating"), int | float) else None
        record = classify_record(text, rating, None, lang, pred)
        out.append(
            {
                **obj,
                "label": record["label"],
                "score": record["score"],
                "probs": json.loads(record["probs"]) if record["probs"] else None,
                "topics": json.loads(record["topics"]),
                "urgency": json.loads(record["urgency"]),
                "lang": lang,
            }
        )
    return out


def classifier_from_config(config: Config) -> Classifier:
    return Classifier(config.model, base_dir=config.base_dir)
