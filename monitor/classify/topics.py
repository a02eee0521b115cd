"""Complaint topics and urgency flags.

Topics are the union of curated phrase lists and, when the sentiment model
carries one, a trained topic head (``topic_head.py``) over the same forward
pass. Phrase lists are transparent and easy for a team to extend; the head
catches paraphrases they miss. The head covers only the topics its training
data has (see ``models/train_topics.py``); the rest stay phrase-list only.
Precision/recall of each: ``docs/topics.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The value, not the module: importing topic_head here would pull torch into every CLI start.
DECISION_SCORE = 0.5  # must equal topic_head.DECISION_SCORE (a test checks)

TOPICS = (
    "wait_time",
    "staff_attitude",
    "staff_knowledge",
    "not_resolved",
    "product_quality",
    "price_billing",
    "cleanliness_ambience",
    "delivery_logistics",
    "app_website",
    "other",
)
URGENCY_FLAGS = ("safety_health", "legal_threat", "churn_threat", "high_reach", "question")
HIGH_REACH = 10_000

_TOPIC_PATTERNS: dict[str, list[str]] = {
    "wait_time": [
        r"\bwait(ed|ing)?\b",
        r"\b(took|takes|taking) (forever|ages|so long)",
        r"\bslow(est|ly)?\b",
        r"\b\d+\s*(min(ute)?s?|hours?)\b.*\b(wait|line|queue|late)",
        r"\b(long|huge) (line|queue)",
        r"\bstill waiting\b",
        r"排队",
        r"等了",
        r"太慢",
    ],
    "staff_attitude": [
        r"\brude\b",
        r"\bimpolite\b",
        r"\b(attitude|unfriendly|dismissive|condescending|ignored us|yelled|snapped)\b",
        r"\b(barista|waiter|waitress|staff|server|cashier|manager)\b.*"
        r"\b(rude|mean|unhelpful|roll(ed)? (her|his|their) eyes)",
        r"态度",
        r"服务员.*差",
    ],
    "staff_knowledge": [
        r"\b(didn'?t|did not|doesn'?t|don'?t) know\b",
        r"\b(clueless|no idea|untrained|inexperienced|wrong information|misinformed)\b",
        r"\bwrong order\b",
        r"\bgot (my|our) order wrong\b",
        r"不专业",
    ],
    "not_resolved": [
        r"\b(still|never) (not )?(fixed|resolved|refunded|heard back|got a response)",
        r"\b(still )?(haven.?t|hasn.?t|have not|has not|never) (got|gotten|received|heard)",
        r"\bno (response|reply|answer)\b",
        r"\b(nobody|no one) (called|answered|replied|got back)",
        r"\b(second|third|fourth) time\b",
        r"\bagain and again\b",
        r"没人理",
        r"没有解决",
    ],
    "product_quality": [
        r"\b(cold|stale|burnt|burned|bland|soggy|undercooked|raw|overcooked|watery|bitter|tasteless)\b",
        r"\b(tasted|tastes) (bad|awful|terrible|off)\b",
        r"\b(broken|defective|faulty|poor quality|cheaply made)\b",
        r"难喝",
        r"难吃",
        r"质量",
    ],
    "price_billing": [
        r"\b(overcharged|overpriced|charged (me )?twice|double charged|refund|billing|bill|receipt)\b",
        r"\b(too expensive|rip[- ]?off|price|pricey)\b",
        r"\$\d+",
        r"多收",
        r"太贵",
        r"退款",
    ],
    "cleanliness_ambience": [
        r"\b(dirty|filthy|sticky|gross|smelly|smelled|stinks?|messy|unclean|cockroach|roach|mice|flies)\b",
        r"\b(too loud|noisy|freezing in there|music was)\b",
        r"\b(bathroom|restroom|toilet)s?\b",
        r"脏",
        r"吵",
    ],
    "delivery_logistics": [
        r"\b(delivery|delivered|courier|driver|shipping|shipment|package|parcel|tracking)\b",
        r"\b(arrived|showed up) (late|cold|damaged)",
        r"\bnever arrived\b",
        r"外卖",
        r"送餐",
        r"快递",
    ],
    "app_website": [
        r"\b(app|website|site|online order(ing)?|checkout|login|log in|password|crash(ed|es)?|bug|glitch)\b",
        r"\b(loyalty|rewards?) (app|points|card)\b",
        r"网站",
        r"闪退",
    ],
}

_URGENCY_PATTERNS: dict[str, list[str]] = {
    "safety_health": [
        r"\b(food poisoning|got sick|made (me|us) sick|threw up|vomit(ed|ing)?|diarrh(o)?ea|allerg(y|ic)|hospital)\b",
        r"\b(cockroach|roach|rat|mouse|mice|mold|mould|hair in (my|the))\b",
        r"\b(burn(ed|t) (my|me)|injur(y|ed)|slipped|fire hazard|unsafe|dangerous)\b",
        r"食物中毒",
        r"拉肚子",
        r"过敏",
    ],
    "legal_threat": [
        r"\b(lawyer|attorney|sue|suing|lawsuit|legal action|small claims|court)\b",
        r"\b(report(ing)? (you|this) to|health department|health inspector|bbb|trading standards)\b",
        r"起诉",
        r"投诉到",
        r"律师",
    ],
    "churn_threat": [
        r"\bnever (coming|going) back\b",
        r"\b(never|won'?t) (be )?(back|return|again)\b",
        r"\blast time i\b",
        r"\b(cancel(led|ing)? my|switching to|taking my business)\b",
        r"\bgoodbye\b",
        r"再也不",
        r"不会再来",
    ],
}

_QUESTION = re.compile(
    r"\?\s*$|\?\s|\b(does|do|is|are|can|could|will|when|what time|how (do|can|long|much))\b[^.!]*\?|吗[？?]|[？]"
)


def _compile(patterns: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
    return {name: re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE) for name, pats in patterns.items()}


_TOPIC_RE = _compile(_TOPIC_PATTERNS)
_URGENCY_RE = _compile(_URGENCY_PATTERNS)


def phrase_topics(text: str) -> list[str]:
    """Topics whose phrase list matches ``text``, whatever its label."""
    return [topic for topic, pattern in _TOPIC_RE.items() if pattern.search(text)]


def tag_topics(text: str, label: str, head_scores: Mapping[str, float] | None = None) -> list[str]:
    """Complaint topics mentioned in ``text`` (only complaints carry topics).

    ``head_scores`` are a topic head's scores for the text (``Prediction.topic_scores``);
    a topic is tagged when its phrase list matches or its score is ≥ ``DECISION_SCORE``.
    ``other`` only when nothing else fires.
    """
    if label != "complaint":
        return []
    found = set(phrase_topics(text))
    if head_scores:
        found.update(t for t, score in head_scores.items() if score >= DECISION_SCORE and t in TOPICS and t != "other")
    return [topic for topic in TOPICS if topic in found] or ["other"]


def urgency_flags(text: str, author_reach: int | None = None) -> list[str]:
    flags = [flag for flag, pattern in _URGENCY_RE.items() if pattern.search(text)]
    if author_reach is not None and author_reach >= HIGH_REACH:
        flags.append("high_reach")
    if _QUESTION.search(text):
        flags.append("question")
    return flags
