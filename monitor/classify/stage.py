"""The classify stage: label every mention that has no classification yet.

Text goes to the model for its language: ``[model] languages`` names one per language, the multilingual model
takes ``[model] multilingual_languages`` (by default Chinese, Spanish, German, French, Italian, Portuguese,
Arabic and Hindi), and ``[model] default`` takes English. Text in a language no configured model covers is
stored with label ``unclassified_language`` rather than guessed at.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlite_utils

from monitor.classify.language import detect_language
from monitor.classify.model import Prediction, SentimentModel
from monitor.classify.rating import combine_with_rating
from monitor.classify.topics import tag_topics, urgency_flags
from monitor.config import Config, ConfigError, DurationTooLong, ModelConfig, parse_duration
from monitor.lease import new_holder_id
from monitor.store import classify as classify_store
from monitor.store import retry_conflicts, utcnow, write_transaction

log = logging.getLogger(__name__)

UNCLASSIFIED_LANGUAGE = "unclassified_language"
DEFAULT_LANGUAGE = "en"
CHUNK = 512
# A batch claim's lifetime: a deployment knob (the environment of each worker), like the scheduler lease's.
CLAIM_ENV = "MONITOR_CLASSIFY_CLAIM"
DEFAULT_CLAIM = timedelta(minutes=10)


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
        # A language with its own branch in that model gets a view that runs it (language_branch.py).
        self._models[lang] = self._by_spec[spec].for_language(lang)
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
            preds = model.predict([texts[i] for i in idx], [langs[i] for i in idx])
            for i, pred in zip(idx, preds, strict=True):
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


# The write scope of taking and giving back claims (``monitor.store.write_transaction``): claimers take turns;
# crawls and the storing of claimed results run beside them.
CLAIMS_SCOPE = "classify_claims"


def claim_duration(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a batch claim lasts (``$MONITOR_CLASSIFY_CLAIM``, default 10 minutes); raises ConfigError naming it.

    The longest a batch whose worker died on another machine waits before someone else classifies it (a dead
    worker on the same machine is noticed at once). It must be longer than any batch takes.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(CLAIM_ENV, "").strip()
    if not text:
        return DEFAULT_CLAIM
    try:
        value = parse_duration(text)
    except (ValueError, DurationTooLong):
        value = timedelta(0)
    if value <= timedelta(0):
        raise ConfigError(CLAIM_ENV, f'expected a duration like "10m", got {text!r}')
    return value


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")  # one format: compared as text


def _drop_stale_claims(db: sqlite_utils.Database, now: datetime) -> int:
    """Delete claims that expired or whose process is gone (same host); inside the caller's write transaction."""
    from monitor.workers.holders import holder_gone

    stale = [
        holder
        for holder, expires_at in classify_store.claims(db)
        if (expires_at or "") <= _stamp(now) or holder_gone(holder)
    ]
    for holder in stale:
        log.warning("classify: taking over the batch claimed by %s (expired or its process is gone)", holder)
        classify_store.delete_claim(db, holder)
    return len(stale)


def claim_batch(
    db: sqlite_utils.Database, holder: str, duration: timedelta, limit: int | None = None
) -> list[dict[str, Any]]:
    """Claim the next ``limit`` unclassified, unclaimed mentions for ``holder``; [] when none is left.

    Under the write lock: two classifiers (worker processes, threads, a `monitor classify` beside the daemon)
    each get a different batch, and a batch whose claimer died is handed out again.
    """
    now = datetime.now(UTC)
    with write_transaction(db, scope=CLAIMS_SCOPE):
        _drop_stale_claims(db, now)
        rows = classify_store.pending_mentions(db, limit or CHUNK)  # CHUNK read now: tests shrink it
        if rows:
            ids = [row["id"] for row in rows]
            classify_store.insert_claim(db, holder, min(ids), max(ids), _stamp(now), _stamp(now + duration))
    return rows


def release_claim(db: sqlite_utils.Database, holder: str) -> None:
    """Give a batch back unclassified (the model failed): the next pass picks it up."""
    with write_transaction(db, scope=CLAIMS_SCOPE):
        classify_store.delete_claim(db, holder)


def mention_text(row: dict[str, Any]) -> str:
    title, text = row.get("title") or "", row.get("text") or ""
    if title and title not in text:
        return f"{title}. {text}" if text else title
    return text


@dataclass
class ClassifyCounts:
    classified: int = 0
    by_label: dict[str, int] = field(default_factory=dict)


def classify_pending(
    db: sqlite_utils.Database,
    classifier: Classifier,
    *,
    max_batches: int | None = None,
    on_claim: Callable[[int], None] | None = None,
) -> ClassifyCounts:
    """Classify every mention without a classification. Safe to run again: it only picks up new work.

    Safe to run at once in several processes: each batch is claimed first (:func:`claim_batch`), and its
    results are stored only while the claim is still this batch's (a claim taken over after it expired is
    classified by its new holder; this one's results are dropped, not stored twice). ``max_batches`` stops
    after that many batches; ``on_claim(batch size)`` is called after each claim (a worker uses it to let
    others join in).
    """
    counts = ClassifyCounts()
    duration = claim_duration()
    batches = 0
    while max_batches is None or batches < max_batches:
        holder = new_holder_id()
        rows = claim_batch(db, holder, duration)
        if not rows:
            break
        batches += 1
        if on_claim is not None:
            on_claim(len(rows))
        try:
            records, langs = _classify_rows(rows, classifier)
        except BaseException:
            release_claim(db, holder)  # a failed model run gives the batch back at once, not at expiry
            raise
        if not retry_conflicts(db, partial(_store_batch, db, holder, rows, records, langs), "classify"):
            log.warning("classify: the claim on mentions %s-%s was taken over; its results are not stored",
                        rows[0]["id"], rows[-1]["id"])  # fmt: skip
            continue
        for record in records:
            counts.by_label[record["label"]] = counts.by_label.get(record["label"], 0) + 1
        counts.classified += len(records)
    return counts


def _store_batch(
    db: sqlite_utils.Database, holder: str, rows: list[dict[str, Any]], records: list[dict[str, Any]], langs: list[str]
) -> bool:
    """Store a batch's results if its claim is still ``holder``'s (False: taken over, nothing stored).

    Batches are stored side by side (a scope of their own): the claim row's lock (``for update``; SQLite has one
    writer anyway) keeps this check and a takeover in :func:`claim_batch` apart. A takeover that deleted the claim
    first makes this wait and find nothing; one that comes second waits for this commit, and its look-up of
    pending mentions then sees the results stored here."""
    with write_transaction(db, scope=f"classify:{holder}"):
        # Still ours? A claim that outlived its expiry (a stalled process) may have been taken over.
        if not classify_store.claim_held(db, holder):
            return False
        classify_store.store_classifications(db, records)
        for row, lang in zip(rows, langs, strict=True):
            if not row["lang"]:
                classify_store.set_mention_lang(db, row["id"], lang)
        classify_store.delete_claim(db, holder)
    return True


def _classify_rows(rows: list[dict[str, Any]], classifier: Classifier) -> tuple[list[dict[str, Any]], list[str]]:
    texts = [mention_text(r) for r in rows]
    langs = [r["lang"] or classifier.detect(t) for r, t in zip(rows, texts, strict=True)]
    results = classifier.classify(texts, langs)
    now = utcnow()
    records = []
    for row, text, (lang, pred, model_name) in zip(rows, texts, results, strict=True):
        record = classify_record(text, row["rating"], row["author_reach"], lang, pred)
        record.update(mention_id=row["id"], model=model_name, classified_at=now)
        records.append(record)
    return records, [lang for lang, _, _ in results]


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
