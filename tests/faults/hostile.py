"""Hypothesis strategies for hostile but structurally valid payloads (issue 11's fuzzing).

A valid document from the platform mocks is taken apart at random places: a value is swapped for a wrong
type, a huge or negative number, a date at the calendar's edge (years 0, 1, 9999, 10001), a lone surrogate,
NUL, a very long string, or deep nesting; the serialised bytes can also carry invalid UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

EDGE_DATES = [
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z",
    "9999-12-31T23:30:00-07:00", "9999-12-31T23:30:00+14:00", "10001-01-01T00:00:00Z", "-0001-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z", "2026-11-22T25:61:61Z", "9999-12-31", "0001-01-01", "10001-01-01", "",
    "Fri, 31 Dec 9999 23:59:59 +0000", "Mon, 01 Jan 0001 00:00:00 -1400", "2026-11-22 07:00:00",
    "1e30", "NaN", "9" * 40,
]  # fmt: skip
HOSTILE_TEXT = [
    "\ud800", "x \\ud800 y", "\udfff\ud800", "nul\x00byte", "\x00", "\u202e\u2066rtl", "\ufeffbom", "a" * 100_000,
    "<script>alert(1)</script>", "=cmd|' /C calc'!A0", "\U0001f600" * 50, "\r\n\t", " ", "%s%n{0}", "${jndi:x}",
]  # fmt: skip
DEEP = "__DEEP_NESTING__"
BAD_UTF8 = "__BAD_UTF8__"
BAD_BYTES = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80", b"\xe2\x82"]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 2**63 - 1, -(2**63), 2**64, 10**30, 253402300800, -62135596801]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e30, -1e30, 1e308, 5e-324]),
)
texts = st.one_of(st.sampled_from(EDGE_DATES), st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["label", "text", "id", "name", "$type", "attributes"]), scalars, max_size=3),
    st.just(DEEP),
    st.just(BAD_UTF8),
)


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in ``doc`` a value sits at (dict keys and list indexes), the root excluded."""
    found: list[tuple] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


def replace(doc: Any, path: tuple, value: Any) -> None:
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@st.composite
def hostile_json(draw: st.DrawFn, template: Any, max_changes: int = 4) -> bytes:
    """``template`` (a valid platform document) with 1..max_changes values made hostile, as bytes."""
    doc = json.loads(json.dumps(template))
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        where = paths(doc)
        if not where:
            break
        replace(doc, draw(st.sampled_from(where)), draw(values))
    return encode(doc, draw(st.integers(min_value=2, max_value=100_000)), draw(st.sampled_from(BAD_BYTES)))


def encode(doc: Any, depth: int, bad: bytes) -> bytes:
    """JSON bytes with the placeholders expanded (deep nesting, invalid UTF-8 inside a string)."""
    body = json.dumps(doc).encode("utf-8", "surrogatepass")  # json.dumps escapes surrogates; keep them
    body = body.replace(f'"{DEEP}"'.encode(), b"[" * depth + b"]" * depth)
    return body.replace(BAD_UTF8.encode(), b"ok" + bad + b"ok")
