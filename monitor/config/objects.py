"""The typed objects a validated config is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.brands import check_brand_terms
from monitor.config.checkers import MULTILINGUAL_DEFAULT, ConfigError


@dataclass
class ModelConfig:
    default: str = "bundled"
    label_map: dict[str, str] | None = None
    languages: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32
    max_length: int = 256
    threads: int = 2
    multilingual: str = "bundled"
    multilingual_languages: list[str] = field(default_factory=lambda: list(MULTILINGUAL_DEFAULT))
    device: str = "auto"
    quantize: str = "none"


@dataclass
class TeamMember:
    name: str
    locations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)


@dataclass
class QueueConfig:
    sla_social: timedelta = timedelta(hours=1)
    sla_review: timedelta = timedelta(hours=24)
    complaint_threshold: float = 0.5
    sla_by_source: dict[str, timedelta] = field(default_factory=dict)
    sla_urgent: timedelta = timedelta(minutes=30)
    templates_dir: str = ""
    contact: str = ""
    auto_assign: bool = False
    # Filled from the rest of the config, not keys of [queue]:
    team: list[TeamMember] = field(default_factory=list)
    source_types: dict[str, str] = field(default_factory=dict)
    templates_path: Path | None = None


@dataclass
class DigestConfig:
    output_dir: str = "digests"
    brand: str = ""
    recipients: list[str] = field(default_factory=list)
    sender: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user_env: str = "MONITOR_SMTP_USER"
    smtp_password_env: str = "MONITOR_SMTP_PASSWORD"
    smtp_timeout: timedelta = timedelta(seconds=30)
    inbox_url: str = ""

    def __post_init__(self) -> None:
        # Recipients mean the digest is emailed (by `monitor run` too): the server and sender must be set.
        if self.recipients:
            if not self.smtp_host.strip():
                raise ConfigError("digest.smtp_host", "required when digest.recipients is set")
            if not self.sender:
                raise ConfigError("digest.sender", "required when digest.recipients is set")


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    users_env: str = "MONITOR_USERS"
    session_lifetime: timedelta = timedelta(hours=12)
    cookie_secure: bool = False
    proxies: int = 0


@dataclass
class Shift:
    name: str
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight; <= start means it ends the next day
    weekdays: tuple[int, ...] = tuple(range(7))  # of the start date, Monday = 0

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    @property
    def hours(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass
class Location:
    id: str
    timezone: str
    name: str | None = None
    sources: list[str] = field(default_factory=list)
    business_ids: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    contact: str = ""
    shifts: list[Shift] = field(default_factory=list)


@dataclass
class TrendsConfig:
    timezone: str = "UTC"
    baseline_periods: int = 14
    spike_alpha: float = 0.001
    min_spike_complaints: int = 5


@dataclass
class ScheduleConfig:
    default_every: timedelta = timedelta(hours=1)
    process_every: timedelta = timedelta(minutes=5)
    digest_at: int = 8 * 60  # minutes after local midnight
    timezone: str = "UTC"
    crawl_group: int = 1


@dataclass
class AlertsConfig:
    enabled: bool = True
    every: timedelta = timedelta(minutes=5)
    urgent_items: bool = True
    flags: list[str] = field(default_factory=lambda: ["safety_health", "legal_threat"])
    incidents: bool = True
    spikes: bool = True
    spike_brands: list[str] = field(default_factory=list)
    sla_breaches: bool = False
    sla_min_priority: float = 0.0
    max_age: timedelta = timedelta(hours=24)
    recipients: list[str] = field(default_factory=list)
    webhook_url_env: str = ""
    webhook_format: str = "text"
    webhook_timeout: timedelta = timedelta(seconds=10)
    inbox_url: str = ""
    excerpt_chars: int = 280

    @property
    def channels(self) -> list[str]:
        """The configured delivery channels (none: alerts are off)."""
        if not self.enabled:
            return []
        return [name for name, on in (("email", self.recipients), ("webhook", self.webhook_url_env)) if on]


@dataclass
class WorkersConfig:
    broker: str = ""  # Redis URL; "" keeps the single-process daemon (monitor/workers/)


@dataclass
class ShiftsConfig:
    default_visit_lag: timedelta = timedelta(hours=2)
    incident_min_complaints: int = 3
    incident_window: timedelta = timedelta(hours=3)
    min_shift_mentions: int = 20
    min_shift_complaints: int = 5
    alpha: float = 0.05
    roster: str = ""


@dataclass
class SourceConfig:
    name: str
    type: str
    enabled: bool = True
    every: timedelta | None = None
    cron: str | None = None
    brand: str = ""
    location: str = ""
    visit_lag: timedelta | None = None
    exclude: list[str] = field(default_factory=list)
    require: list[str] = field(default_factory=list)
    user_agent: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    index: int = 0

    def __post_init__(self) -> None:
        # Cross-key check the per-key checkers cannot make: `brands` may only name this source's own terms.
        check_brand_terms(self)

    @property
    def key(self) -> str:
        return f"sources[{self.index}]"


@dataclass
class Config:
    path: Path
    storage_path: Path
    model: ModelConfig
    queue: QueueConfig
    digest: DigestConfig
    web: WebConfig
    locations: list[Location]
    sources: list[SourceConfig]
    shifts: ShiftsConfig = field(default_factory=ShiftsConfig)
    team: list[TeamMember] = field(default_factory=list)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trends: TrendsConfig = field(default_factory=TrendsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    storage_url: str = ""  # [storage] url: PostgreSQL when set (storage_path is then unused)
    workers: WorkersConfig = field(default_factory=WorkersConfig)

    @property
    def storage_target(self) -> str | Path:
        """What ``monitor.store.open_db`` opens: the PostgreSQL URL when configured, else the SQLite file."""
        return self.storage_url or self.storage_path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    def location(self, location_id: str) -> Location:
        for location in self.locations:
            if location.id == location_id:
                return location
        known = ", ".join(loc.id for loc in self.locations) or "none"
        raise ConfigError("locations", f"no location {location_id!r} (configured: {known})")

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError("sources", f"no source named {name!r} (configured: {known})")
