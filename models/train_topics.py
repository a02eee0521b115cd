"""Train the complaint-topic head on restaurant aspect corpora, and measure it against the phrase lists.

One command (from the repository root, in the project venv):

    python models/train_topics.py --model models/sentiment-en \\
        --aspects ../shared/data/aspects/semeval2016_restaurants_train.xml ../shared/data/aspects/mams_acsa_train.xml \\
        --held-out-files ../shared/data/aspects/mams_acsa_val.xml

Features: the attention-masked mean of the given sequence-classification
model's last hidden state, computed by ``SentimentModel`` exactly as at
inference, so the classify stage gets topic scores from the sentiment forward
pass at no extra cost. One class-balanced, L2-regularised logistic regression
per topic (torch, full-batch L-BFGS). The L2 strength and each topic's
threshold are chosen by review-grouped cross-validation on the training part;
the held-out parts (a held-out file, else 20 % of a file's reviews, seeded) are only used for the report.

Writes ``topic_head.safetensors`` and ``topic_head.json`` into ``--output``
(default: the model directory) and the held-out table to ``docs/topics.md``.

Gold topics of a sentence are the mapped categories of its *negative*
opinions; every sentence is evaluated, so sentences with no negative opinion
(or praise of the same aspect) count against false positives.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.classify.model import INT8_EMBEDDINGS, ModelLoadError, SentimentModel  # noqa: E402
from monitor.classify.topic_head import DECISION_SCORE, POOLING, TopicHead, pack_branch, unpack_branch  # noqa: E402
from monitor.classify.topics import phrase_topics, sure_phrase_topics, tag_topics  # noqa: E402

# SemEval-2016 restaurant categories → our topics. RESTAURANT#GENERAL, RESTAURANT#MISCELLANEOUS,
# LOCATION#GENERAL and the rest say nothing a topic can route: no topic. SERVICE#GENERAL mixes rude
# staff, slow service and mistakes: see SERVICE_CATEGORIES.
CATEGORY_TOPICS = {
    "SERVICE#GENERAL": "staff_attitude",
    "FOOD#QUALITY": "product_quality",
    "DRINKS#QUALITY": "product_quality",
    "FOOD#STYLE_OPTIONS": "product_quality",
    "DRINKS#STYLE_OPTIONS": "product_quality",
    "FOOD#PRICES": "price_billing",
    "DRINKS#PRICES": "price_billing",
    "RESTAURANT#PRICES": "price_billing",
    "AMBIENCE#GENERAL": "cleanliness_ambience",
}
# MAMS-ACSA categories → our topics. "menu" complaints are about the dishes on offer; "place" ones
# about cramped seating, crowds and the room, which is what cleanliness_ambience routes; "miscellaneous"
# (reservations, portions, the evening as a whole) has no one topic.
MAMS_CATEGORY_TOPICS = {
    "staff": "staff_attitude",
    "service": "staff_attitude",
    "food": "product_quality",
    "menu": "product_quality",
    "price": "price_billing",
    "ambience": "cleanliness_ambience",
    "place": "cleanliness_ambience",
}
# A negative opinion on "service" is slow service as often as unfriendly service (MAMS train: 176 of
# 329 sentences say how long something took). Such a sentence's gold is wait_time instead of
# staff_attitude when it carries this evidence of waiting. The rule defines gold, so it is fixed
# here and kept narrower than the wait_time phrase list; docs/topics.md says how well it reads.
SERVICE_CATEGORIES = frozenset({"SERVICE#GENERAL", "service"})
WAIT_EVIDENCE = re.compile(
    r"\b(wait|waits|waited|waiting|slow|slowly|slower|forever|ages|too long|took (so |very )?long|long time"
    r"|\d+\s*(min|mins|minutes?|hours?|hrs?)|an hour|half an hour|lines?|queue|late|delay(ed|s)?)\b"
    r"(?!\s*(staff|person|people))",
    re.IGNORECASE,
)
HEAD_TOPICS = ["wait_time", "staff_attitude", "product_quality", "price_billing", "cleanliness_ambience"]
# No aspect data names staff_knowledge, not_resolved, delivery_logistics or app_website: phrase-list only.
PHRASE_ONLY_TOPICS = ["staff_knowledge", "not_resolved", "delivery_logistics", "app_website"]
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
_SPLIT_SUFFIX = re.compile(r"_(train|val|dev|test)$")


@dataclass
class Sentence:
    review: str
    text: str
    topics: frozenset[str]  # gold: mapped categories of the negative opinions
    corpus: str = ""
    negative: bool = False  # any negative opinion at all, mapped to a topic or not


def corpus_name(path: Path | str) -> str:
    """A file's corpus: its stem without a split suffix (mams_acsa_val.xml → mams_acsa)."""
    return _SPLIT_SUFFIX.sub("", Path(path).stem)


def topics_for(categories: list[str], text: str = "", mapping: dict[str, str] | None = None) -> frozenset[str]:
    """Our topics for the categories of a sentence's negative opinions (service ones split by WAIT_EVIDENCE)."""
    mapping = CATEGORY_TOPICS if mapping is None else mapping
    out = set()
    for category in categories:
        if category in SERVICE_CATEGORIES and WAIT_EVIDENCE.search(text):
            out.add("wait_time")
        elif category in mapping:
            out.add(mapping[category])
    return frozenset(out)


def load_aspects(path: Path | str) -> list[Sentence]:
    """Every sentence of an ABSA XML file, with the topics of its negative opinions.

    Reads SemEval-2016 (``<Review rid>…<Opinion category polarity>``; sentences grouped by review) and
    the SemEval-2014 layout MAMS-ACSA uses (``<sentence><aspectCategory category polarity>``; no review
    ids, so each sentence is its own group).
    """
    corpus = corpus_name(path)
    root = ET.parse(path).getroot()
    sentences = []
    reviews = list(root.iter("Review"))
    if reviews:
        for review in reviews:
            for node in review.iter("sentence"):
                text = (node.findtext("text") or "").strip()
                negative = [o.get("category", "") for o in node.iter("Opinion") if o.get("polarity") == "negative"]
                if text:
                    topics = topics_for(negative, text)
                    sentences.append(Sentence(review.get("rid", ""), text, topics, corpus, bool(negative)))
        return sentences
    for n, node in enumerate(root.iter("sentence")):
        text = (node.findtext("text") or "").strip()
        negative = [a.get("category", "") for a in node.iter("aspectCategory") if a.get("polarity") == "negative"]
        if text:
            topics = topics_for(negative, text, MAMS_CATEGORY_TOPICS)
            sentences.append(Sentence(node.get("id") or str(n), text, topics, corpus, bool(negative)))
    return sentences


def grouped_split(groups: list[str], held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held-out): whole groups go to held-out, shuffled, until it holds ``held_out`` of the items."""
    unique = sorted(set(groups))
    random.Random(seed).shuffle(unique)
    chosen: set[str] = set()
    size = {g: 0 for g in unique}
    for g in groups:
        size[g] += 1
    taken = 0
    for g in unique:
        if taken >= held_out * len(groups):
            break
        chosen.add(g)
        taken += size[g]
    train = [i for i, g in enumerate(groups) if g not in chosen]
    test = [i for i, g in enumerate(groups) if g in chosen]
    return train, test


def grouped_folds(groups: list[str], k: int, seed: int) -> list[list[int]]:
    """``k`` folds of item indices, each group wholly inside one fold."""
    unique = sorted(set(groups))
    random.Random(seed).shuffle(unique)
    fold_of = {g: n % k for n, g in enumerate(unique)}
    return [[i for i, g in enumerate(groups) if fold_of[g] == f] for f in range(k)]


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced L2 logistic regression; returns (weight [dim], bias) for the *raw* features.

    Features are standardised while fitting (so one L2 strength suits every
    encoder) and the scaling is folded back into the returned weights.
    """
    x, y = x.double(), y.double()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    n_pos = float(y.sum())
    n_neg = len(y) - n_pos
    # Balanced: each class carries half the loss, however rare the topic.
    sample_weight = torch.where(y > 0, len(y) / (2 * max(n_pos, 1.0)), len(y) / (2 * max(n_neg, 1.0)))
    w = torch.zeros(z.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = z @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=sample_weight)
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = (w.detach() / std).float()
    b_raw = (b.detach() - (w.detach() * mean / std).sum()).float()
    return w_raw, b_raw


def best_threshold(scores: list[float], gold: list[bool]) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``score ≥ threshold``; ties go to the higher threshold."""
    pairs = sorted(zip(scores, gold, strict=True), reverse=True)
    total_pos = sum(gold)
    best = (0.5, 0.0)
    tp = fp = 0
    for n, (score, g) in enumerate(pairs):
        tp += g
        fp += not g
        if n + 1 < len(pairs) and pairs[n + 1][0] == score:
            continue
        f1 = 2 * tp / (2 * tp + fp + (total_pos - tp)) if total_pos else 0.0
        if f1 > best[1]:
            # Halfway to the next score down, so a slightly different run lands on the same side.
            nxt = pairs[n + 1][0] if n + 1 < len(pairs) else score
            best = ((score + nxt) / 2 if nxt < score else score, f1)
    return best


def train_head(
    x: torch.Tensor,
    y: torch.Tensor,
    topics: list[str],
    groups: list[str],
    folds: int = 5,
    seed: int = 0,
    phrase: list[set[str]] | None = None,
    sure: list[set[str]] | None = None,
) -> tuple[TopicHead, dict[str, dict[str, float]]]:
    """Fit one logistic regression per topic; L2 strength and threshold chosen by grouped cross-validation.

    ``y`` is [n, n_topics] of 0/1. Returns the head and, per topic, the chosen L2, threshold and CV F1.
    With ``phrase`` (each sentence's phrase-list topics), each topic's phrase floor is chosen on the same
    out-of-fold scores: how much the head must agree before a phrase match is believed.
    """
    fold_idx = grouped_folds(groups, folds, seed)
    sure = sure if sure is not None else [set() for _ in x]
    weights, biases, thresholds, chosen = [], [], [], {}
    for t, topic in enumerate(topics):
        target = y[:, t].float()
        best: tuple[float, float, float] | None = None  # (cv f1, l2, threshold)
        best_oof = torch.zeros(len(target))
        for l2 in L2_GRID:
            oof = torch.zeros(len(target))
            for held in fold_idx:
                held_set = set(held)
                fit = [i for i in range(len(target)) if i not in held_set]
                w, b = fit_logistic(x[fit], target[fit], l2)
                oof[held] = torch.sigmoid(x[held] @ w + b)
            threshold, f1 = best_threshold(oof.tolist(), [bool(v) for v in target.tolist()])
            if best is None or f1 > best[0]:
                best = (f1, l2, threshold)
                best_oof = oof
        assert best is not None
        w, b = fit_logistic(x, target, best[1])
        weights.append(w)
        biases.append(b)
        thresholds.append(best[2])
        chosen[topic] = {"l2": best[1], "threshold": best[2], "cv_f1": best[0]}
        if phrase is not None:
            shift = math.log(best[2] / (1 - best[2])) if 0 < best[2] < 1 else 0.0
            shifted = torch.sigmoid(torch.logit(best_oof.clamp(1e-6, 1 - 1e-6)) - shift)
            floor, f1 = best_phrase_floor(
                shifted.tolist(), [topic in p for p in phrase], target.bool().tolist(), [topic in p for p in sure]
            )
            chosen[topic].update({"phrase_floor": floor, "cv_f1_with_phrases": f1})
    head = TopicHead(topics=list(topics), weight=torch.stack(weights), bias=torch.stack(biases), thresholds=thresholds)
    if phrase is not None:
        head.phrase_floors = [chosen[t]["phrase_floor"] for t in topics]
    return head, chosen


# Capped well below the decision score: the head learnt restaurants, the phrase lists are written for every
# business (an airline's "delayed 3 hours"), so the head may veto a phrase match only when it is sure.
PHRASE_FLOOR_GRID = (0.0, 0.01, 0.02, 0.05)


def best_phrase_floor(
    scores: list[float], phrase: list[bool], gold: list[bool], sure: list[bool] | None = None
) -> tuple[float, float]:
    """(floor, F1) for tagging at ``score ≥ 0.5`` or (phrase match and ``score ≥ floor``) or a sure phrase match
    (``sure``: matches no floor vetoes, ``topics.sure_phrase_topics``); ties: the lower floor."""
    best = (0.0, -1.0)
    sure = sure or [False] * len(scores)
    for floor in PHRASE_FLOOR_GRID:
        pred = [
            s >= DECISION_SCORE or (m and s >= floor) or sure_match
            for s, m, sure_match in zip(scores, phrase, sure, strict=True)
        ]
        tp = sum(p and g for p, g in zip(pred, gold, strict=True))
        fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
        fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best[1] + 1e-9:
            best = (floor, f1)
    return best


def prf(gold: list[frozenset[str]], pred: list[set[str]], topics: list[str]) -> dict[str, dict[str, float]]:
    """Per topic (and micro-averaged over ``topics``): precision, recall, F1, support."""
    out = {}
    totals = [0, 0, 0]
    for topic in [*topics, "micro"]:
        if topic == "micro":
            tp, fp, fn = totals
        else:
            tp = sum(topic in g and topic in p for g, p in zip(gold, pred, strict=True))
            fp = sum(topic not in g and topic in p for g, p in zip(gold, pred, strict=True))
            fn = sum(topic in g and topic not in p for g, p in zip(gold, pred, strict=True))
            totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[topic] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def markdown_table(results: dict[str, dict[str, dict[str, float]]], topics: list[str]) -> str:
    methods = list(results)
    head = "| topic | support | " + " | ".join(f"{m} P / R / F1" for m in methods) + " |"
    rule = "|---|---:|" + "---|" * len(methods)
    rows = [head, rule]
    for topic in [*topics, "micro"]:
        cells = [
            f"{results[m][topic]['precision']:.2f} / {results[m][topic]['recall']:.2f} / {results[m][topic]['f1']:.2f}"
            for m in methods
        ]
        support = int(results[methods[0]][topic]["support"])
        rows.append(f"| {topic} | {support} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def encoder_fingerprint(model_dir: Path) -> str | None:
    """sha256 of the model's weights file, then of its int8 word embeddings when it has them (a packed directory),
    or None when the weights are not a single safetensors file."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        return None
    digest = hashlib.sha256()
    for path in (weights, model_dir / INT8_EMBEDDINGS):
        if path.is_file():
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def load_encoder(model_dir: str, max_length: int) -> tuple[SentimentModel, bool]:
    """The model as the product loads it; (model, whether its sentiment labels are usable)."""
    try:
        return SentimentModel(model_dir, max_length=max_length), True
    except ModelLoadError:
        # A bare encoder (random classifier, LABEL_0/1): only its embeddings are used.
        from transformers import AutoConfig

        names = AutoConfig.from_pretrained(model_dir).id2label.values()
        return SentimentModel(model_dir, label_map=dict.fromkeys(names, "neutral"), max_length=max_length), False


@dataclass
class HeldOut:
    name: str  # e.g. "mams_acsa (mams_acsa_val.xml)"
    sentences: list[Sentence]
    x: torch.Tensor
    labels: list[str]  # the sentiment model's labels for the sentences


def phrase_only_rates(sentences: list[Sentence], topics: list[str]) -> dict[str, dict[str, int]]:
    """Per phrase-only topic: sentences it fires on, and how many of them carry no negative opinion at all.

    The corpora have no gold for these topics, so a hit is only known wrong when the sentence
    complains about nothing; the rest need reading (docs/topics.md says what they were).
    """
    out = {t: {"fires": 0, "no_complaint": 0} for t in topics}
    for s in sentences:
        for topic in set(phrase_topics(s.text)) & set(topics):
            out[topic]["fires"] += 1
            out[topic]["no_complaint"] += not s.negative
    return out


def evaluate(held: HeldOut, head: TopicHead | None, has_sentiment: bool) -> dict[str, dict[str, dict[str, float]]]:
    """Per method, per topic P/R/F1 on one held-out set (every sentence counted as a complaint, then gated)."""
    gold = [s.topics for s in held.sentences]
    phrase = [set(phrase_topics(s.text)) & set(HEAD_TOPICS) for s in held.sentences]
    head_scores = head.scores(held.x) if head is not None else [{} for _ in held.sentences]
    head_pred = [{t for t, v in scores.items() if v >= 0.5} for scores in head_scores]
    floors = head.phrase_floor_map if head is not None and head.phrase_floors is not None else None
    rows_all = list(zip(held.sentences, head_scores, strict=True))
    results = {
        "phrase lists": prf(gold, phrase, HEAD_TOPICS),
        "head": prf(gold, head_pred, HEAD_TOPICS),
        "union": prf(
            gold, [set(tag_topics(s.text, "complaint", scores, floors)) for s, scores in rows_all], HEAD_TOPICS
        ),
    }
    if has_sentiment:
        # What the product stores: topics only on texts the sentiment model calls complaints.
        rows = zip(held.sentences, held.labels, head_scores, strict=True)
        results["union, complaints only (product)"] = prf(
            gold, [set(tag_topics(s.text, label, scores, floors)) for s, label, scores in rows], HEAD_TOPICS
        )
    return results


def split_corpora(
    files: list[Path], held_out_files: list[Path], share: float, seed: int
) -> tuple[list[Sentence], list[tuple[str, list[Sentence]]]]:
    """(training sentences, [(held-out name, sentences)]).

    A training file whose corpus has a held-out file (mams_acsa_train.xml ↔ mams_acsa_val.xml) is
    trained on whole; any other loses ``share`` of its reviews, whole and seeded, to its held-out part.
    """
    held_corpora = {corpus_name(f) for f in held_out_files}
    train: list[Sentence] = []
    held: list[tuple[str, list[Sentence]]] = []
    for path in files:
        sentences = load_aspects(path)
        if corpus_name(path) in held_corpora:
            train += sentences
            continue
        train_idx, test_idx = grouped_split([s.review for s in sentences], share, seed)
        train += [sentences[i] for i in train_idx]
        held.append((f"{corpus_name(path)} ({share:.0%} of reviews, seed {seed})", [sentences[i] for i in test_idx]))
    for path in held_out_files:
        held.append((f"{corpus_name(path)} ({path.name})", load_aspects(path)))
    return train, held


def encoder_topic_split(args: argparse.Namespace) -> tuple[list[Sentence], list[Sentence]]:
    """(sentences the encoder was fine-tuned on, sentences it never saw), as its training_meta.json records them."""
    from models.train import TOPIC_HELD_OUT_SHARE, TOPIC_SPLIT_SEED, aspect_training_sentences

    meta = json.loads((Path(args.model) / "training_meta.json").read_text(encoding="utf-8"))
    recorded = meta.get("topic_sentences")
    if not recorded:
        raise SystemExit(f"{args.model}: no topic_sentences in training_meta.json (not trained with --aspects)")
    if sorted(recorded["files"]) != sorted(p.name for p in args.aspects) or sorted(
        recorded["held_out_files"]
    ) != sorted(p.name for p in args.held_out_files):
        raise SystemExit(f"--aspects / --held-out-files differ from the encoder's: {recorded}")
    if (args.held_out, args.seed) != (TOPIC_HELD_OUT_SHARE, TOPIC_SPLIT_SEED):
        raise SystemExit("--held-out and --seed must keep their defaults with --fit-unseen-only / --branch-layers")
    return aspect_training_sentences(args.aspects, args.held_out_files, recorded["unseen_share"], recorded["seed"])


def unseen_sentences(args: argparse.Namespace) -> list[Sentence]:
    """The training sentences the encoder was not fine-tuned on."""
    return encoder_topic_split(args)[1]


def micro_f1_at_best_thresholds(probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Micro-F1 with each topic's threshold at its own best F1 on these sentences."""
    thresholds = [best_threshold(probs[:, t].tolist(), [bool(v) for v in gold[:, t].tolist()])[0]
                  for t in range(gold.shape[1])]  # fmt: skip
    pred = probs >= torch.tensor(thresholds)
    tp = int((pred & gold.bool()).sum())
    fp = int((pred & ~gold.bool()).sum())
    fn = int((~pred & gold.bool()).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit_branch(
    args: argparse.Namespace, model: SentimentModel, seen: list[Sentence], unseen: list[Sentence]
) -> tuple[TopicHead, dict[str, dict[str, float]], list[dict]]:
    """Train a topic branch on ``seen``; choose its epoch, thresholds and phrase floors on ``unseen``."""
    from models.topic_branch import cache_hidden, to_head, train_branch

    from_layer = model.model.config.num_hidden_layers - args.branch_layers
    if from_layer < 0:
        layers = from_layer + args.branch_layers
        raise SystemExit(f"--branch-layers {args.branch_layers}: the encoder has only {layers} layers")
    print(f"caching hidden state {from_layer} of {len(seen) + len(unseen)} sentences", flush=True)
    train_hidden = cache_hidden(model, [s.text for s in seen], from_layer)
    select_hidden = cache_hidden(model, [s.text for s in unseen], from_layer)
    gold = torch.tensor([[float(t in s.topics) for t in HEAD_TOPICS] for s in unseen])
    branch, history = train_branch(
        model,
        train_hidden,
        branch_targets(seen),
        select_hidden,
        lambda probs: micro_f1_at_best_thresholds(probs, gold),
        from_layer=from_layer,
        n_layers=args.branch_layers,
        n_topics=len(HEAD_TOPICS),
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
    )
    probs = branch.probabilities(select_hidden, len(HEAD_TOPICS))
    chosen: dict[str, dict[str, float]] = {}
    thresholds = []
    for t, topic in enumerate(HEAD_TOPICS):
        target = [bool(v) for v in gold[:, t].tolist()]
        threshold, f1 = best_threshold(probs[:, t].tolist(), target)
        thresholds.append(threshold)
        shift = math.log(threshold / (1 - threshold)) if 0 < threshold < 1 else 0.0
        shifted = torch.sigmoid(torch.logit(probs[:, t].clamp(1e-6, 1 - 1e-6)) - shift)
        phrase = [topic in phrase_topics(s.text) for s in unseen]
        sure = [topic in sure_phrase_topics(s.text) for s in unseen]
        floor, f1_phrases = best_phrase_floor(shifted.tolist(), phrase, target, sure)
        chosen[topic] = {"threshold": threshold, "cv_f1": f1, "phrase_floor": floor, "cv_f1_with_phrases": f1_phrases}
    head = to_head(branch, HEAD_TOPICS, thresholds, from_layer)
    head.phrase_floors = [chosen[t]["phrase_floor"] for t in HEAD_TOPICS]
    return head, chosen, history


def branch_targets(sentences: list[Sentence]) -> torch.Tensor:
    """[n, topics]: each topic's complaint. (Auxiliary outputs, each topic mentioned at any polarity and any
    negative opinion, were tried with two layers: selection micro-F1 0.691 against 0.706 without; not kept.)"""
    return torch.tensor([[float(t in s.topics) for t in HEAD_TOPICS] for s in sentences])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="sequence-classification model directory (the encoder)")
    parser.add_argument("--aspects", required=True, type=Path, nargs="+", help="training ABSA XML files")
    parser.add_argument(
        "--held-out-files", type=Path, nargs="*", default=[], help="held-out ABSA XML files (never trained on)"
    )
    parser.add_argument("--output", help="where to write topic_head.* (default: the --model directory)")
    parser.add_argument("--docs", type=Path, default=Path("docs/topics.md"), help="report file ('' to skip)")
    parser.add_argument("--held-out", type=float, default=0.2, help="share of reviews held out of a split file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--fit-unseen-only",
        action="store_true",
        help="the encoder learnt topics (models/train.py --aspects): fit on the sentences it never saw",
    )
    parser.add_argument(
        "--branch-layers",
        type=int,
        default=0,
        help="train a topic branch of this many copied top layers (on the sentences the encoder saw; epoch, "
        "thresholds and phrase floors chosen on those it never saw) instead of a linear head",
    )
    parser.add_argument("--epochs", type=int, default=5, help="branch training epochs (the best is kept)")
    parser.add_argument("--lr", type=float, default=5e-5, help="branch layers' peak learning rate")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train, held_sets = split_corpora(args.aspects, args.held_out_files, args.held_out, args.seed)
    model, has_sentiment = load_encoder(args.model, args.max_length)
    model.topic_head = None  # a head already beside the weights is replaced, never read
    history: list[dict] = []
    if args.branch_layers:
        seen, train = encoder_topic_split(args)
        head, chosen, history = fit_branch(args, model, seen, train)
        # Held-out figures with the weights as stored (matrices as int8 rows), not as trained.
        head.branch_state = unpack_branch(pack_branch(head.branch_state))
        head.attach(model.model)
        model.topic_head = head
    else:
        if args.fit_unseen_only:
            train = unseen_sentences(args)
        _, x_train = model.predict_and_embed([s.text for s in train])
        y = torch.tensor([[float(t in s.topics) for t in HEAD_TOPICS] for s in train])
        groups = [f"{s.corpus}:{s.review}" for s in train]
        phrase = [set(phrase_topics(s.text)) for s in train]
        sure = [set(sure_phrase_topics(s.text)) for s in train]
        head, chosen = train_head(x_train, y, HEAD_TOPICS, groups, args.folds, args.seed, phrase, sure)

    reports = []
    for name, sentences in held_sets:
        # English, as the product labels them: the model's English n-gram prior (if any) joins in.
        predictions, x = model.predict_and_embed([s.text for s in sentences], ["en"] * len(sentences))
        held = HeldOut(name, sentences, x, [p.label for p in predictions])
        results = evaluate(held, head, has_sentiment)
        reports.append((held, results, phrase_only_rates(sentences, PHRASE_ONLY_TOPICS)))

    counts = {c: sum(s.corpus == c for s in train) for c in dict.fromkeys(s.corpus for s in train)}
    print(f"{'selection' if args.branch_layers else 'train'}: {len(train)} sentences "
          f"({', '.join(f'{c} {n}' for c, n in counts.items())})")  # fmt: skip
    for topic, c in chosen.items():
        print(f"  {topic}: l2={c.get('l2', '-')} threshold={c['threshold']:.3f} f1={c['cv_f1']:.3f}")
    for held, results, _ in reports:
        print(f"\nheld out: {held.name}, {len(held.sentences)} sentences")
        print(markdown_table(results, HEAD_TOPICS))

    output = Path(args.output or args.model)
    output.mkdir(parents=True, exist_ok=True)
    head.meta = {
        "encoder": str(args.model),
        # Lets a test catch a head left behind when the encoder is retrained.
        "encoder_sha256": encoder_fingerprint(Path(args.model)),
        "pooling": POOLING,
        "training_data": {
            "files": [p.name for p in args.aspects],
            "held_out_files": [p.name for p in args.held_out_files],
            "description": "English restaurant-review sentences; gold topics = mapped categories of the "
            "sentence's negative opinions (service ones → wait_time when the sentence shows waiting)",
            "category_topics": {"semeval2016": CATEGORY_TOPICS, "mams_acsa": MAMS_CATEGORY_TOPICS},
            "wait_evidence": WAIT_EVIDENCE.pattern,
            "train_sentences": counts,
            "split": f"seeded (seed {args.seed}) review-grouped, {args.held_out:.0%} held out of files "
            "with no held-out file",
        },
        "selection": (
            {"folds": args.folds, "per_topic": chosen}
            if not args.branch_layers
            else {
                "on": "the aspect sentences the encoder never saw",
                "per_topic": chosen,
                "epochs": history,
                "branch_training": {"sentences": len(seen), "epochs": args.epochs, "lr": args.lr, "seed": args.seed},
            }
        ),
        "held_out": {
            held.name: {
                "sentences": len(held.sentences),
                **{method: {t: r[t] for t in [*HEAD_TOPICS, "micro"]} for method, r in results.items()},
            }
            for held, results, _ in reports
        },
        "trained": dt.date.today().isoformat(),
    }
    head.save(output)
    print(f"wrote {output / 'topic_head.safetensors'} and topic_head.json")
    if str(args.docs):
        write_docs(args, counts, chosen, reports, has_sentiment, history, head.from_layer)
        print(f"wrote {args.docs}")
    return 0


UNSEEN_NOTE = (
    " (the part of the training files the encoder was not fine-tuned on: `models/train.py --aspects` taught the"
    " encoder topics on the rest, so fitting the head there would measure memory, not reading)"
)
GATED_NOTE = (
    'The "complaints only (product)" column is what the product stores: topics only on sentences the'
    " English sentiment model labels complaint (it was not trained on this data)."
)


def command_line(args: argparse.Namespace) -> str:
    lines = [f"python models/train_topics.py --model {args.model}", " ".join(["--aspects", *map(str, args.aspects)])]
    if args.held_out_files:
        lines.append(" ".join(["--held-out-files", *map(str, args.held_out_files)]))
    if args.branch_layers:
        branch = f"--branch-layers {args.branch_layers} --epochs {args.epochs} --lr {args.lr:g}"
        lines.append(f"{branch} --threads {args.threads}")
    return " \\\n    ".join(lines)


BRANCH_INTRO = """Complaint topics are the union of curated phrase lists (`monitor/classify/topics.py`, English,
Chinese and Spanish) and a **topic branch** of the English sentiment model (`monitor/classify/topic_head.py`, saved as
`topic_head.safetensors` / `topic_head.json` next to the model): copies of the encoder's top {layers} layers,
fine-tuned for topics, run on its hidden state {from_layer} from the sentiment forward pass, mean-pooled into a
per-topic logistic output. Those {layers} layers run only on texts whose complaint probability is at least
`BRANCH_MIN_COMPLAINT` (`monitor/classify/model.py`), since only complaints carry topics.
Texts classified by a model without a head (Chinese and the other languages) get phrase-list topics."""
LINEAR_INTRO = """Complaint topics are the union of curated phrase lists (`monitor/classify/topics.py`, English,
Chinese and Spanish) and a linear topic head over the English sentiment model's mean-pooled last hidden state
(`monitor/classify/topic_head.py`, saved as `topic_head.safetensors` / `topic_head.json` next to
the model). The head is computed in the same forward pass as sentiment, so it costs nothing extra.
Texts classified by a model without a head (Chinese and the other languages) get phrase-list topics."""


def branch_selection_section(args, counts: dict[str, int], chosen: dict, history: list[dict]) -> str:
    epochs = "\n".join(f"| {h['epoch']} | {h['selection_micro_f1']:.3f} | {h['seconds']} |" for h in history)
    best = max(history, key=lambda h: h["selection_micro_f1"])["epoch"] if history else "-"
    rows = "\n".join(
        f"| {t} | {c['threshold']:.3f} | {c['cv_f1']:.2f} | {c.get('phrase_floor', 0):g} | "
        f"{c.get('cv_f1_with_phrases', float('nan')):.2f} |"
        for t, c in chosen.items()
    )
    return f"""## Branch training and selection

The branch trains on the aspect training sentences the encoder was fine-tuned on (`models/train.py --aspects`),
{args.epochs} epochs, AdamW (layers lr {args.lr:g}, head 1e-3), batch 32, per-topic binary cross-entropy
(positive weight = negatives / positives, at most 20).
The epoch, each topic's threshold and its phrase floor are chosen on the sentences the encoder never saw
({", ".join(f"{c} {n}" for c, n in counts.items())}); nothing is chosen on a held-out part.

| epoch | selection micro-F1 (thresholds at their best) | seconds (2 CPU threads) |
|---:|---:|---:|
{epochs}

Kept: epoch {best}.

| topic | threshold | selection F1 | phrase floor | selection F1 with phrases |
|---|---:|---:|---:|---:|
{rows}
"""


def write_docs(
    args,
    counts: dict[str, int],
    chosen: dict,
    reports: list,
    has_sentiment: bool,
    history: list[dict] | None = None,
    from_layer: int | None = None,
) -> None:
    template_path = args.docs
    old = template_path.read_text(encoding="utf-8") if template_path.is_file() else ""
    # Everything below this marker is written by hand (mapping notes, Chinese and airline phrase checks).
    marker = "<!-- end of generated part -->"
    hand = old[old.index(marker) + len(marker) :] if marker in old else "\n"
    thresholds = "\n".join(
        f"| {t} | {c.get('l2', float('nan')):g} | {c['threshold']:.3f} | {c['cv_f1']:.2f} | "
        f"{c.get('phrase_floor', 0):g} | {c.get('cv_f1_with_phrases', float('nan')):.2f} |"
        for t, c in chosen.items()
    )
    sections = []
    for held, results, rates in reports:
        rows = "\n".join(f"| {t} | {r['fires']} | {r['no_complaint']} |" for t, r in rates.items())
        sections.append(
            f"### {held.name}: {len(held.sentences)} sentences\n\n{markdown_table(results, HEAD_TOPICS)}\n\n"
            f"Phrase-only topics (no gold in this corpus): sentences each fires on, and of those how many "
            f"carry no negative opinion at all (certainly wrong).\n\n"
            f"| topic | fires | on sentences with no complaint |\n|---|---:|---:|\n{rows}\n"
        )
    train_counts = ", ".join(f"{c} {n}" for c, n in counts.items())
    unseen = UNSEEN_NOTE if args.fit_unseen_only else ""
    if args.branch_layers:
        intro = BRANCH_INTRO.format(layers=args.branch_layers, from_layer=from_layer)
        data = (
            "Selection sentences: " + train_counts + " (the part of the training files the encoder was not "
            "fine-tuned on); the branch trains on the rest. SemEval-2016 is split by review"
            f" (seed {args.seed}, {args.held_out:.0%} of reviews held out); MAMS-ACSA trains on its train file and"
            " is measured on its val file."
        )
        selection = branch_selection_section(args, counts, chosen, history or [])
    else:
        intro = LINEAR_INTRO
        data = (
            f"Training sentences: {train_counts}{unseen}. SemEval-2016 is split by review (seed {args.seed}, "
            f"{args.held_out:.0%}\nof reviews held out); MAMS-ACSA trains on its train file and is measured on its "
            f"val file. L2\nstrength and thresholds are chosen by {args.folds}-fold cross-validation on the training "
            "sentences\nonly (folds keep a review whole); nothing is tuned on a held-out part."
        )
        selection = f"""## Head selection (cross-validation on the training sentences, {args.folds} grouped folds)

| topic | L2 | threshold | CV F1 | phrase floor | CV F1 with phrases |
|---|---:|---:|---:|---:|---:|
{thresholds}
"""
    text = f"""# Complaint topics: phrase lists and the trained head

Measured {dt.date.today().isoformat()} with (from the repository root, in the project venv)

```bash
{command_line(args)}
```

{intro}

## Data and split

{data} A sentence's gold topics are
the mapped categories of its *negative* opinions; every sentence is evaluated, so a sentence with
no negative opinion (or one praising the food) counts any tag as a false positive.

| SemEval-2016 category | MAMS-ACSA category | topic |
|---|---|---|
| SERVICE#GENERAL, with waiting in the sentence | service, with waiting in the sentence | wait_time |
| SERVICE#GENERAL, otherwise | service, otherwise; staff | staff_attitude |
| FOOD#QUALITY, DRINKS#QUALITY, FOOD#STYLE_OPTIONS, DRINKS#STYLE_OPTIONS | food, menu | product_quality |
| FOOD#PRICES, DRINKS#PRICES, RESTAURANT#PRICES | price | price_billing |
| AMBIENCE#GENERAL | ambience, place | cleanliness_ambience |
| RESTAURANT#GENERAL, RESTAURANT#MISCELLANEOUS, LOCATION#GENERAL | miscellaneous | no topic |

"Waiting in the sentence" is `WAIT_EVIDENCE` in `models/train_topics.py` (wait/waited/slow/forever/
too long/took long/N minutes/an hour/line/queue/late/delay; not "wait staff").

## Held-out precision / recall / F1

"Phrase lists", "head" and "union" treat every sentence as a complaint, so they measure the
taggers alone; the union (head score ≥ its threshold, OR a phrase match the head does not veto: score ≥ the
topic's phrase floor) is what `tag_topics` does.
{GATED_NOTE if has_sentiment else ""}

{chr(10).join(sections)}
{selection}
Thresholds are on the logistic probability; `TopicHead.scores` shifts each so that 0.5 is the
decision point, and `tag_topics` tags a topic at a score ≥ 0.5. A phrase-list match for a topic the head
covers counts when the head's score is at least the phrase floor (0: every match counts; 0.5: the phrase list
adds nothing), chosen on the same scores as the thresholds; a phrase that names the problem beyond doubt
(`_SURE_PATTERNS` in `monitor/classify/topics.py`) always counts.

{marker}"""
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(text + hand, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
