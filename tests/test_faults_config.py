"""Config values found by the fault campaign (issue 11) that gave tracebacks instead of one-line errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import cli
from monitor.config import SECTIONS, SOURCE_KEYS, SOURCE_TYPES, ConfigError, load_config, loads_config

SOURCE = '[[sources]]\nname = "r"\ntype = "schema_org"\nurls = ["https://a.example/"]\n'


@pytest.mark.parametrize(
    "text, key, fragment",
    [
        (SOURCE + 'every = "1000000000d"\n', "sources[0].every", "'1000000000d' is too long (at most \"3660d\")"),
        ('[queue]\nsla_social = "99999999999999999999h"\n', "queue.sla_social", "is too long"),
        ('[alerts]\nmax_age = "' + "9" * 5000 + 'd"\n', "alerts.max_age", "expected a duration"),
        ('[[sources]]\nname = "r"\ntype = ["reddit"]\n', "sources[0].type", "expected a source type name, got a list"),
        ('[[sources]]\nname = "r"\ntype = { a = 1 }\n', "sources[0].type", "got a table"),
        ('[[sources]]\nname = "r"\ntype = 3\n', "sources[0].type", "got an integer"),
        ('[[locations]]\nid = "x"\ntimezone = "' + "A" * 300 + '"\n', "locations[0].timezone", "unknown IANA"),
        ('[[locations]]\nid = "x"\ntimezone = "Europe/' + "b" * 300 + '"\n', "locations[0].timezone", "unknown IANA"),
        ('[trends]\ntimezone = "Europe/\\u0000x"\n', "trends.timezone", "unknown IANA"),
    ],
)  # fmt: skip
def test_bad_values_give_one_line_naming_the_key(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    assert info.value.key == key and fragment in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 450


def test_the_longest_allowed_duration_still_loads():
    assert loads_config('[queue]\nsla_social = "3660d"\n').queue.sla_social.days == 3660


def test_a_config_file_that_is_not_utf8_exits_2_with_one_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes('[storage]\npath = "café.db"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config.toml: not UTF-8 text \(byte 22, line 2\)"):
        load_config(path)
    result = CliRunner().invoke(cli, ["--config", str(path), "queue", "list"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "config error: config.toml: not UTF-8 text (byte 22, line 2); save it as UTF-8"
    ]


@pytest.mark.parametrize(
    "text",
    [SOURCE + 'every = "1000000000d"\n', '[[sources]]\nname = "r"\ntype = ["reddit"]\n',
     '[[locations]]\nid = "x"\ntimezone = "' + "A" * 300 + '"\n'],
)  # fmt: skip
def test_the_cli_gives_exit_2_not_a_traceback(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["--config", str(path), "queue", "list"])
    assert result.exit_code == 2 and result.output.startswith("config error: ")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------------------ fuzzing

_scalars = st.one_of(
    st.text(max_size=30), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=False), st.sampled_from(["15m", "0s", "1000000000d", "-1h", "Europe/London", "" , "x" * 300]),
)  # fmt: skip
_values = st.one_of(
    _scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.text(max_size=8), _scalars, max_size=3)
)


def _section(schema: dict) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(sorted(schema)), _values, max_size=4)


_source = st.fixed_dictionaries(
    {"name": st.one_of(st.just("s"), _values), "type": st.one_of(st.sampled_from(sorted(SOURCE_TYPES)), _values)},
    optional={key: _values for key in sorted({*SOURCE_KEYS, *(k for s in SOURCE_TYPES.values() for k in s)})
              if key not in ("name", "type")},
)  # fmt: skip
_raw = st.fixed_dictionaries(
    {},
    optional={
        **{name: _section(schema) for name, schema in SECTIONS.items()},
        "sources": st.lists(_source, max_size=2),
        "locations": st.lists(st.dictionaries(st.sampled_from(["id", "name", "timezone", "sources", "shifts"]),
                                              _values, max_size=4), max_size=2),
        "team": st.lists(st.dictionaries(st.sampled_from(["name", "locations", "sources"]), _values), max_size=2),
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_raw)
def test_any_config_structure_gives_a_config_or_a_config_error(raw):
    """Fuzzed values of every documented key: a Config or a ConfigError, never another exception."""
    from pathlib import Path

    from monitor.config import validate

    try:
        validate(raw, Path("/nonexistent/config.toml"))
    except ConfigError as exc:
        assert "\n" not in str(exc)
