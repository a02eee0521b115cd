"""Fuzzing the config loader from the file's side (issue 11): the repository's documented example config.toml,
with values swapped for hostile ones and written back as TOML text or raw bytes, loads into a Config or fails
with one ConfigError line — never another exception. (tests/test_faults_config.py fuzzes ``validate`` with
random structures; starting from the full example reaches the checks that run after every other key passed.)

``FUZZ_EXAMPLES=2000 pytest tests/faults/test_fuzz_config.py`` for the long version.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Config, ConfigError, load_config, loads_config
from tests.faults.hostile import BAD_BYTES, paths, replace

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip

HOSTILE = [
    "1000000000d", "-1h", "0s", "1e9m", "9" * 400 + "s", "15 m", "PT15M", "A" * 300, "Europe/\x00x", "../../etc/passwd",
    "UTC+25", "Mars/Olympus", "99 99 * * *", "* * * * * * *", "http://[::1", "file:///etc/passwd", "javascript:x",
    "http://" + "a" * 5000, "ftp://example.com/", "25:61", "24:00", "", " ", "\u202e", "\x7f", "nul\x00", "%(x)s",
    "/dev/null", "bundled", "int8", "cuda", "Q", "-", "*",
]  # fmt: skip
values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, -(2**63)]),
    st.floats(),
    st.booleans(),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.integers(), st.booleans()), max_size=3),
    st.dictionaries(st.sampled_from(["name", "id", "type", "a"]), st.sampled_from(HOSTILE), max_size=2),
    st.just([{}]),
)


def toml_value(value: Any) -> str:
    """One value as inline TOML (tables inline, so the whole document is ``key = value`` lines)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's (a lone surrogate's is not: that is a TOML error)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    return "\n".join(f"{json.dumps(key)} = {toml_value(value)}" for key, value in doc.items()) + "\n"


def assert_loads_or_one_line(text: str, tmp: Path) -> None:
    try:
        config = loads_config(text, tmp / "config.toml")
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 2000, message[:500]
    else:
        assert isinstance(config, Config)


def test_the_example_round_trips() -> None:
    """The serialiser is faithful: the example config written back as inline TOML still loads."""
    config = loads_config(toml_document(EXAMPLE), REPO / "config.toml")
    assert [s.name for s in config.sources] == [s["name"] for s in EXAMPLE["sources"]]


@FUZZ
@given(data=st.data())
def test_hostile_values_in_the_example_config(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    doc = json.loads(json.dumps(EXAMPLE))
    where = paths(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        replace(doc, data.draw(st.sampled_from(where)), data.draw(values))
        where = paths(doc)
    assert_loads_or_one_line(toml_document(doc), tmp_path_factory.getbasetemp())


@FUZZ
@given(data=st.data())
def test_hostile_bytes_in_the_config_file(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Invalid UTF-8, a BOM, NUL or a cut-off file: one ConfigError line from ``load_config`` too."""
    body = (REPO / "config.toml").read_bytes()
    at = data.draw(st.integers(min_value=0, max_value=len(body)))
    kind = data.draw(st.sampled_from(["bad", "bom", "nul", "cut", "crlf"]))
    if kind == "bad":
        body = body[:at] + data.draw(st.sampled_from(BAD_BYTES)) + body[at:]
    elif kind == "bom":
        body = b"\xef\xbb\xbf" + body
    elif kind == "nul":
        body = body[:at] + b"\x00" + body[at:]
    elif kind == "cut":
        body = body[:at]
    else:
        body = body.replace(b"\n", b"\r\n")
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(body)
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
