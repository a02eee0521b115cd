"""Combine a review's star rating with the text model's verdict.

The rule (documented in models/README.md):

* 1–2 stars: always ``complaint`` — a polite one-star review is still a
  complaint the business should answer.
* 3 stars: ``complaint`` when the text leans complaint, otherwise ``neutral``.
* 4–5 stars: ``praise``, unless the text is a confident complaint
  (probability ≥ 0.8): a five-star rating on "waited an hour, rude staff"
  is a mis-click or sarcasm, and either way someone should read it.

Probabilities are combined as a product of experts (text probabilities
times a rating prior, renormalised) so ``score`` reflects both signals.
"""

from __future__ import annotations

LABELS = ("complaint", "neutral", "praise")
CONFIDENT_COMPLAINT = 0.8

_PRIORS = {
    1: (0.90, 0.08, 0.02),
    2: (0.75, 0.20, 0.05),
    3: (0.35, 0.50, 0.15),
    4: (0.08, 0.27, 0.65),
    5: (0.03, 0.07, 0.90),
}


def combine_with_rating(probs: dict[str, float], rating: float | None) -> tuple[str, dict[str, float]]:
    """Return the final label and combined probabilities for a text with an optional rating."""
    if rating is None:
        label = max(probs, key=probs.get)
        return label, dict(probs)
    stars = min(5, max(1, round(rating)))
    prior = _PRIORS[stars]
    joint = [probs[label] * p for label, p in zip(LABELS, prior, strict=True)]
    total = sum(joint) or 1.0
    combined = {label: j / total for label, j in zip(LABELS, joint, strict=True)}
    if stars <= 2:
        label = "complaint"
    elif stars == 3:
        label = "complaint" if probs["complaint"] >= max(probs["neutral"], probs["praise"]) else "neutral"
    else:
        label = "complaint" if probs["complaint"] >= CONFIDENT_COMPLAINT else "praise"
    return label, combined
