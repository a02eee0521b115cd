"""Per-mention language detection used to route text to the right model.

Script counting settles CJK text outright. Latin-script text full of
distinctive English function words is English without asking langdetect,
which is both slow (~115 texts/s, slower than the model) and unreliable on
short posts ("Great coffee!" is not Italian); langdetect decides the rest when
the text is long enough.
"""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_HEBREW = re.compile(r"[\u0590-\u05ff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LETTER = re.compile(r"\w")
_WORD = re.compile(r"[a-z']+")
# Frequent in English and rare as words in other Latin-script languages
# (so not "a", "no", "me", "in", "die", "son", "con").
ENGLISH_MARKERS = frozenset(
    [
        "the",
        "and",
        "is",
        "are",
        "was",
        "were",
        "you",
        "your",
        "this",
        "that",
        "with",
        "have",
        "has",
        "had",
        "for",
        "not",
        "but",
        "they",
        "what",
        "just",
        "it's",
        "i'm",
        "don't",
        "didn't",
        "can't",
        "won't",
        "of",
        "to",
        "my",
        "we",
        "be",
        "been",
        "it",
        "our",
        "their",
        "there",
        "from",
        "would",
        "could",
        "should",
        "will",
        "very",
        "really",
        "because",
        "about",
        "when",
        "which",
        "who",
        "all",
        "any",
        "some",
        "been",
        "being",
        "after",
        "before",
        "again",
    ]
)
MIN_MARKER_SHARE = 0.15
MIN_WORDS_FOR_DETECTOR = 6
MIN_DETECTOR_CONFIDENCE = 0.90


def detect_language(text: str, default: str = "en") -> str:
    """Return an ISO 639-1 code for ``text`` (``default`` when unsure)."""
    letters = len(_LETTER.findall(text)) or 1
    if _KANA.search(text):
        return "ja"
    scripts = [("zh", _HAN), ("ko", _HANGUL), ("ar", _ARABIC), ("he", _HEBREW), ("ru", _CYRILLIC)]
    for code, pattern in scripts:
        if len(pattern.findall(text)) / letters > 0.3:
            return code
    words = _WORD.findall(text.lower())
    markers = sum(word in ENGLISH_MARKERS for word in words)
    if markers >= 2 and markers / len(words) >= MIN_MARKER_SHARE:
        return "en"
    if len(text.split()) < MIN_WORDS_FOR_DETECTOR:
        return default
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return default
    if best.prob >= MIN_DETECTOR_CONFIDENCE:
        return best.lang.split("-")[0]
    return default
