"""Text normalisation shared by model training and inference.

The sentiment model is trained on tweets where handles and links were
normalised (TweetEval style: ``@user`` and ``http``). Inference must apply the
same normalisation or the model sees tokens it never learned from.
"""

from __future__ import annotations

import re

from monitor.textsafe import valid_unicode  # noqa: F401  (re-exported: the classify stage's single guarantee)

_ESCAPED_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{1,30}")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_WHITESPACE = re.compile(r"\s+")


def normalise_for_model(text: str) -> str:
    """Return ``text`` as the model expects it: handles, links and stray escapes normalised.

    The result is always valid Unicode (no lone surrogates), whatever ``text`` holds.
    """
    # Some corpora store punctuation as literal "\u002c" escapes.
    text = _ESCAPED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = valid_unicode(text).replace("\x00", " ")
    text = _HANDLE.sub("@user", text)
    text = _URL.sub("http", text)
    return _WHITESPACE.sub(" ", text).strip()


def head_and_tail(token_ids: list[int], max_tokens: int, head_fraction: float = 0.5) -> list[int]:
    """Keep the start and the end of an over-long token sequence.

    Reviews often open with context and close with the verdict ("...never
    again"), so cutting only the tail loses the strongest signal.
    """
    if len(token_ids) <= max_tokens:
        return token_ids
    head = int(max_tokens * head_fraction)
    tail = max_tokens - head
    return token_ids[:head] + (token_ids[-tail:] if tail else [])
