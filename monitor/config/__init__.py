"""Load and validate ``config.toml`` into typed objects.

The schema is data, not code paths (``schema.py``), so tests can check that every key is documented in
``docs/config.md`` and in the example ``config.toml``. Any problem raises :class:`ConfigError` naming the key
path, e.g. ``sources[2].every: expected a duration like "15m" or "1h", got "often"``.

- ``checkers.py``: one config value each (durations, URLs, time zones...) and :class:`ConfigError`;
- ``schema.py``: every key of every table, with its checker, default and description;
- ``objects.py``: the typed objects a config is made of;
- ``loading.py``: reading the file and the checks that span keys and tables.
"""

from monitor.config.checkers import LABELS, ConfigError, DurationTooLong, parse_duration
from monitor.config.loading import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    find_config_path,
    load_config,
    loads_config,
    secret_from_env,
    validate,
)
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
from monitor.config.schema import SECTIONS, SOURCE_KEYS, SOURCE_TYPES, all_documented_keys

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "LABELS",
    "SECTIONS",
    "SOURCE_KEYS",
    "SOURCE_TYPES",
    "AlertsConfig",
    "Config",
    "ConfigError",
    "DigestConfig",
    "DurationTooLong",
    "Location",
    "ModelConfig",
    "QueueConfig",
    "ScheduleConfig",
    "Shift",
    "ShiftsConfig",
    "SourceConfig",
    "TeamMember",
    "TrendsConfig",
    "WebConfig",
    "WorkersConfig",
    "all_documented_keys",
    "find_config_path",
    "load_config",
    "loads_config",
    "parse_duration",
    "secret_from_env",
    "validate",
]
