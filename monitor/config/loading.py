"""Read ``config.toml`` and validate it into a :class:`Config`."""

from __future__ import annotations

import difflib
import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.config.checkers import ConfigError, _duration, _type_name
from monitor.config.objects import (
    AlertsConfig,
    Config,
    DigestConfig,
    Location,
    ModelConfig,
    QueueConfig,
    ScheduleConfig,
    Shift,
    ShiftsConfig,
    SourceConfig,
    TeamMember,
    TrendsConfig,
    WebConfig,
    WorkersConfig,
)
from monitor.config.schema import LOCATION_KEYS, REQUIRED, SECTIONS, SHIFT_KEYS, SOURCE_KEYS, SOURCE_TYPES, TEAM_KEYS

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "MONITOR_CONFIG"


def _unknown_key(path: str, key: str, allowed: dict) -> ConfigError:
    hint = difflib.get_close_matches(key, list(allowed), n=1)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else f" (allowed: {', '.join(sorted(allowed))})"
    return ConfigError(f"{path}.{key}" if path else key, f"unknown key{suggestion}")


def _check_table(path: str, table: Any, schema: dict[str, tuple[Any, Any, str]]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"expected a table, got {_type_name(table)}")
    for key in table:
        if key not in schema:
            raise _unknown_key(path, key, schema)
    out = {}
    for key, (checker, default, _doc) in schema.items():
        key_path = f"{path}.{key}" if path else key
        if key in table:
            out[key] = checker(key_path, table[key]) if checker else table[key]
        elif default is REQUIRED:
            raise ConfigError(key_path, "required key is missing")
        else:
            out[key] = default
    return out


def _weekly_spans(shift: Shift) -> list[tuple[int, int]]:
    """The shift as minute intervals of a week starting Monday 00:00 (wrapping Sunday night into Monday)."""
    week = 7 * 1440
    length = (shift.end - shift.start) % 1440 or 1440
    spans = []
    for day in shift.weekdays:
        start = day * 1440 + shift.start
        end = start + length
        spans.append((start, min(end, week)))
        if end > week:
            spans.append((0, end - week))
    return spans


def _check_shifts(path: str, value: Any) -> list[Shift]:
    if not isinstance(value, list):
        raise ConfigError(path, "expected [[locations.shifts]] tables")
    shifts: list[Shift] = []
    for j, table in enumerate(value):
        key = f"{path}[{j}]"
        shift = Shift(**_check_table(key, table, SHIFT_KEYS))
        if shift.name == "off-shift":
            raise ConfigError(f"{key}.name", '"off-shift" is reserved for mentions outside every shift')
        for other in shifts:
            if other.name == shift.name:
                raise ConfigError(f"{key}.name", f"duplicate shift name {shift.name!r}")
            # A moment in two shifts would be counted twice; managers can split a shift instead.
            if any(a < d and c < b for a, b in _weekly_spans(shift) for c, d in _weekly_spans(other)):
                raise ConfigError(f"{key}.start", f"shift {shift.name!r} overlaps shift {other.name!r}")
        shifts.append(shift)
    return shifts


def validate(raw: dict[str, Any], path: Path) -> Config:
    top = {*SECTIONS, "locations", "sources", "team"}
    for key in raw:
        if key not in top:
            raise _unknown_key("", key, dict.fromkeys(top))
    sections = {name: _check_table(name, raw.get(name, {}), schema) for name, schema in SECTIONS.items()}

    locations = []
    raw_locations = raw.get("locations", [])
    if not isinstance(raw_locations, list):
        raise ConfigError("locations", "expected [[locations]] tables")
    for i, table in enumerate(raw_locations):
        if not isinstance(table, dict):
            raise ConfigError(f"locations[{i}]", f"expected a table, got {_type_name(table)}")
        table = dict(table)
        raw_shifts = table.pop("shifts", [])
        values = _check_table(f"locations[{i}]", table, LOCATION_KEYS)
        values["shifts"] = _check_shifts(f"locations[{i}].shifts", raw_shifts)
        if any(loc.id == values["id"] for loc in locations):
            raise ConfigError(f"locations[{i}].id", f"duplicate location id {values['id']!r}")
        locations.append(Location(**values))
    location_ids = {loc.id for loc in locations}

    sources: list[SourceConfig] = []
    raw_sources = raw.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError("sources", "expected [[sources]] tables")
    for i, table in enumerate(raw_sources):
        key = f"sources[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(key, f"expected a table, got {_type_name(table)}")
        source_type = table.get("type")
        if source_type is None:
            raise ConfigError(f"{key}.type", "required key is missing")
        if not isinstance(source_type, str):  # a list or table is unhashable: no dict lookup with it
            raise ConfigError(f"{key}.type", f"expected a source type name, got {_type_name(source_type)}")
        if source_type not in SOURCE_TYPES:
            raise ConfigError(
                f"{key}.type", f"unknown source type {source_type!r} (supported: {', '.join(sorted(SOURCE_TYPES))})"
            )
        schema = {**SOURCE_KEYS, **SOURCE_TYPES[source_type]}
        values = _check_table(key, table, schema)
        if values["every"] is not None and values["cron"] is not None:
            raise ConfigError(f"{key}.cron", "set either every or cron, not both")
        if values["location"] and values["location"] not in location_ids:
            known = ", ".join(sorted(location_ids)) or "none defined"
            raise ConfigError(f"{key}.location", f"unknown location {values['location']!r} (locations: {known})")
        if any(s.name == values["name"] for s in sources):
            raise ConfigError(f"{key}.name", f"duplicate source name {values['name']!r}")
        if source_type == "mastodon" and not values["tags"] and not values["search"]:
            raise ConfigError(f"{key}.tags", "a mastodon source needs tags or search queries")
        if source_type == "reddit" and not values["search"] and not values["subreddits"]:
            raise ConfigError(f"{key}.search", "a reddit source needs search terms or subreddits")
        common = {k: values.pop(k) for k in SOURCE_KEYS}
        sources.append(SourceConfig(**common, options=values, index=i))
    source_names = {s.name for s in sources}
    for i, location in enumerate(locations):
        for j, name in enumerate(location.sources):
            if name not in source_names:
                known = ", ".join(sorted(source_names)) or "none defined"
                raise ConfigError(f"locations[{i}].sources[{j}]", f"unknown source {name!r} (sources: {known})")

    team = _check_team(raw.get("team", []), location_ids, source_names | set(SOURCE_TYPES))
    sections["queue"]["sla_by_source"] = _check_sla_table(
        "queue.sla_by_source", sections["queue"]["sla_by_source"], source_names | set(SOURCE_TYPES)
    )
    storage = sections["storage"]
    config = Config(
        path=path,
        storage_path=Path(),
        model=ModelConfig(**sections["model"]),
        queue=QueueConfig(**sections["queue"]),
        digest=DigestConfig(**sections["digest"]),
        web=WebConfig(**sections["web"]),
        locations=locations,
        sources=sources,
        shifts=ShiftsConfig(**sections["shifts"]),
        team=team,
        schedule=ScheduleConfig(**sections["schedule"]),
        trends=TrendsConfig(**sections["trends"]),
        alerts=AlertsConfig(**sections["alerts"]),
        workers=WorkersConfig(**sections["workers"]),
    )
    if config.alerts.recipients:  # alert emails go through the [digest] SMTP server
        for key in ("smtp_host", "sender"):
            if not str(getattr(config.digest, key)).strip():
                raise ConfigError(f"digest.{key}", "required when alerts.recipients is set")
    config.storage_path = config.resolve(storage["path"])
    config.storage_url = storage["url"]
    raw_storage = raw.get("storage", {})
    if config.storage_url and "path" in raw_storage:
        raise ConfigError("storage.url", "set either path (SQLite) or url (PostgreSQL), not both")
    config.queue.team = team
    config.queue.source_types = {s.name: s.type for s in sources}
    if config.queue.templates_dir:
        config.queue.templates_path = config.resolve(config.queue.templates_dir)
        if not config.queue.templates_path.is_dir():
            raise ConfigError("queue.templates_dir", f"no such folder: {config.queue.templates_path}")
    return config


def _check_team(value: Any, location_ids: set[str], source_keys: set[str]) -> list[TeamMember]:
    if not isinstance(value, list):
        raise ConfigError("team", "expected [[team]] tables")
    members: list[TeamMember] = []
    for i, table in enumerate(value):
        member = TeamMember(**_check_table(f"team[{i}]", table, TEAM_KEYS))
        if any(m.name == member.name for m in members):
            raise ConfigError(f"team[{i}].name", f"duplicate team member {member.name!r}")
        for j, loc in enumerate(member.locations):
            if loc not in location_ids:
                raise ConfigError(f"team[{i}].locations[{j}]", f"unknown location {loc!r}")
        for j, src in enumerate(member.sources):
            if src not in source_keys:
                raise ConfigError(f"team[{i}].sources[{j}]", f"unknown source name or type {src!r}")
        members.append(member)
    return members


def _check_sla_table(key: str, value: Any, allowed: set[str]) -> dict[str, timedelta]:
    if not isinstance(value, dict):
        raise ConfigError(key, 'expected a table like { yelp = "12h" }')
    out = {}
    for name, duration in value.items():
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", "not a configured source name or a source type")
        out[name] = _duration(f"{key}.{name}", duration)
    return out


def find_config_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; raises :class:`ConfigError` on any problem."""
    config_path = find_config_path(str(path) if path else None).resolve()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(config_path), "config file not found (pass --config or set MONITOR_CONFIG)") from None
    except UnicodeDecodeError as exc:
        line = config_path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            config_path.name, f"not UTF-8 text (byte {exc.start + 1}, line {line}); save it as UTF-8"
        ) from None
    except OSError as exc:  # a folder, no permission...
        raise ConfigError(str(config_path), f"cannot read the config file: {exc.strerror or exc}") from None
    return loads_config(text, config_path)


def loads_config(text: str, path: Path | None = None) -> Config:
    path = path or Path.cwd() / DEFAULT_CONFIG
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path.name, f"invalid TOML: {exc}") from None
    return validate(raw, path)


def secret_from_env(source: SourceConfig, option: str) -> str:
    """Read the secret named by ``source.options[option]`` from the environment."""
    env_name = source.options[option]
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(
            f"{source.key}.{option}", f"environment variable {env_name} is not set (source {source.name!r})"
        )
    return value
