"""Text that every writer, tokenizer and encoder accepts, whatever a stranger's post contained."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD.

    An escaped "\\ud800" in a post (or a JSON-decoded one) is a lone surrogate: not a character, and
    the Rust tokenizer, UTF-8 encoders and SQLite all reject it, so one hostile post would stop
    every batch it lands in. UTF-16 round-trips pairs ("\\ud83d\\ude00" is an emoji) and replaces the rest.
    """
    if not _SURROGATE.search(text):
        return text  # the common case: no copy
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
