"""Settings: one frozen value read once from the environment in the composition root.

Every setting has a default that works on a laptop: an instance folder holding a SQLite file and
local folders. Parsers are strict: a value that does not parse is an error at start-up, never a
silent fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gatekeeper.errors import ConfigError

DEFAULT_CHANNELS = ("website", "social_media", "print", "press", "internal")
AGE_THRESHOLDS = (13, 16, 18)
DEV_SECRET = "dev-only-not-secret"
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9_]+)?$")


@dataclass(frozen=True)
class Settings:
    """Everything the gatekeeper can be configured with (see the README's table)."""

    home: Path = Path("instance")
    database_url: str = ""
    originals_url: str = ""
    published_url: str = ""
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    cover_channels: tuple[str, ...] = ()
    # Face distances (dlib 128-d, Euclidean). Chosen from the corpus measurement in docs/faces.md.
    accept_distance: float = 0.55
    review_distance: float = 0.65
    margin: float = 0.08
    min_face_px: int = 40
    max_faces: int = 200
    face_time_limit: float = 30.0
    age_threshold: int = 18
    max_pixels: int = 50_000_000
    max_bytes: int = 100 * 1024 * 1024
    jpeg_quality: int = 92
    env: str = "development"
    secret_key: str = DEV_SECRET
    # Background jobs: empty queue_url means SqliteHuey in the instance folder.
    queue_url: str = ""
    queue_name: str = "gatekeeper"
    job_retries: int = 5
    job_retry_delay: float = 2.0
    recheck_schedule: str = "*/15 * * * *"
    timezone: str = "Europe/London"
    # Retention (days of the organisation's calendar; see gatekeeper/retention.py for the reasons).
    purge_schedule: str = "30 2 * * *"
    retention_blocked_days: int = 30
    retention_review_days: int = 90
    retention_grace_days: int = 30
    retention_taken_down_days: int = 30
    retention_template_days: int = 0
    worker_face_cores: int = 1

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{(self.home / 'gatekeeper.db').resolve()}")
        if not self.originals_url:
            object.__setattr__(self, "originals_url", str((self.home / "originals").resolve()))
        if not self.published_url:
            object.__setattr__(self, "published_url", str((self.home / "published").resolve()))
        self.validate()

    def validate(self) -> None:
        """Check cross-field rules; raises ConfigError."""
        if not 0 < self.accept_distance <= self.review_distance <= 1.0:
            raise ConfigError(
                "thresholds must satisfy 0 < accept_distance <= review_distance <= 1.0 "
                f"(got accept={self.accept_distance}, review={self.review_distance})"
            )
        if not 0 <= self.margin < 1.0:
            raise ConfigError(f"margin must be in [0, 1) (got {self.margin})")
        if self.age_threshold not in AGE_THRESHOLDS:
            raise ConfigError(f"age threshold must be one of {AGE_THRESHOLDS} (got {self.age_threshold})")
        if self.env not in ("development", "production"):
            raise ConfigError(f"GATEKEEPER_ENV must be 'development' or 'production' (got {self.env!r})")
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ConfigError("refusing to run in production with the development secret key")
        if not self.channels:
            raise ConfigError("at least one channel must be configured")
        for name in self.channels:
            if not _CHANNEL_RE.match(name):
                raise ConfigError(f"invalid channel name {name!r}: lower-case letters, digits, '_', one ':'")
        for name in self.cover_channels:
            if name not in self.channels:
                raise ConfigError(f"cover channel {name!r} is not in the channel list {self.channels}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"JPEG quality must be 1..100 (got {self.jpeg_quality})")
        if self.queue_url and not self.queue_url.startswith(("redis://", "rediss://")):
            raise ConfigError(
                f"GATEKEEPER_QUEUE_URL must be a redis:// URL or empty (got {self.queue_url!r})"
            )
        if self.job_retries < 0 or self.job_retry_delay < 0:
            raise ConfigError("job retries and retry delay must not be negative")
        for label, schedule in (
            ("GATEKEEPER_RECHECK_SCHEDULE", self.recheck_schedule),
            ("GATEKEEPER_PURGE_SCHEDULE", self.purge_schedule),
        ):
            if len(schedule.split()) != 5:
                raise ConfigError(f"{label} must be a 5-field crontab (got {schedule!r})")
        for label, days in (
            ("GATEKEEPER_RETENTION_BLOCKED_DAYS", self.retention_blocked_days),
            ("GATEKEEPER_RETENTION_REVIEW_DAYS", self.retention_review_days),
            ("GATEKEEPER_RETENTION_GRACE_DAYS", self.retention_grace_days),
            ("GATEKEEPER_RETENTION_TAKEN_DOWN_DAYS", self.retention_taken_down_days),
            ("GATEKEEPER_RETENTION_TEMPLATE_DAYS", self.retention_template_days),
        ):
            if days < 0:
                raise ConfigError(f"{label} must not be negative (got {days})")
        if self.worker_face_cores < 1:
            raise ConfigError(
                f"GATEKEEPER_WORKER_FACE_CORES must be at least 1 (got {self.worker_face_cores})"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.timezone!r} (GATEKEEPER_TIMEZONE)") from None
        if not self.face_time_limit > 0:
            raise ConfigError(f"face_time_limit must be positive (got {self.face_time_limit})")
        for label, value in (
            ("min_face_px", self.min_face_px),
            ("max_faces", self.max_faces),
            ("max_pixels", self.max_pixels),
            ("max_bytes", self.max_bytes),
        ):
            if value <= 0:
                raise ConfigError(f"{label} must be positive (got {value})")

    @property
    def instance_path(self) -> Path:
        """The instance folder, absolute."""
        return self.home.resolve()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read GATEKEEPER_* variables; raises ConfigError on any value that does not parse."""
        env = os.environ if environ is None else environ
        get = env.get
        kwargs: dict[str, object] = {}
        if (v := get("GATEKEEPER_HOME")) is not None:
            kwargs["home"] = Path(v)
        for key, name in (
            ("database_url", "GATEKEEPER_DATABASE_URL"),
            ("originals_url", "GATEKEEPER_ORIGINALS_URL"),
            ("published_url", "GATEKEEPER_PUBLISHED_URL"),
            ("env", "GATEKEEPER_ENV"),
            ("secret_key", "GATEKEEPER_SECRET_KEY"),
            ("queue_url", "GATEKEEPER_QUEUE_URL"),
            ("queue_name", "GATEKEEPER_QUEUE_NAME"),
            ("recheck_schedule", "GATEKEEPER_RECHECK_SCHEDULE"),
            ("timezone", "GATEKEEPER_TIMEZONE"),
            ("purge_schedule", "GATEKEEPER_PURGE_SCHEDULE"),
        ):
            if (v := get(name)) is not None and v != "":
                kwargs[key] = v
        if (v := get("GATEKEEPER_CHANNELS")) is not None:
            kwargs["channels"] = parse_channels(v)
        if (v := get("GATEKEEPER_COVER_CHANNELS")) is not None and v.strip():
            kwargs["cover_channels"] = parse_channels(v)
        for key, name in (
            ("accept_distance", "GATEKEEPER_ACCEPT_DISTANCE"),
            ("review_distance", "GATEKEEPER_REVIEW_DISTANCE"),
            ("margin", "GATEKEEPER_MARGIN"),
            ("face_time_limit", "GATEKEEPER_FACE_TIME_LIMIT"),
            ("job_retry_delay", "GATEKEEPER_JOB_RETRY_DELAY"),
        ):
            if (v := get(name)) is not None:
                kwargs[key] = _parse_float(name, v)
        for key, name in (
            ("min_face_px", "GATEKEEPER_MIN_FACE_PX"),
            ("max_faces", "GATEKEEPER_MAX_FACES"),
            ("age_threshold", "GATEKEEPER_AGE_THRESHOLD"),
            ("max_pixels", "GATEKEEPER_MAX_PIXELS"),
            ("max_bytes", "GATEKEEPER_MAX_BYTES"),
            ("jpeg_quality", "GATEKEEPER_JPEG_QUALITY"),
            ("job_retries", "GATEKEEPER_JOB_RETRIES"),
            ("retention_blocked_days", "GATEKEEPER_RETENTION_BLOCKED_DAYS"),
            ("retention_review_days", "GATEKEEPER_RETENTION_REVIEW_DAYS"),
            ("retention_grace_days", "GATEKEEPER_RETENTION_GRACE_DAYS"),
            ("retention_taken_down_days", "GATEKEEPER_RETENTION_TAKEN_DOWN_DAYS"),
            ("retention_template_days", "GATEKEEPER_RETENTION_TEMPLATE_DAYS"),
            ("worker_face_cores", "GATEKEEPER_WORKER_FACE_CORES"),
        ):
            if (v := get(name)) is not None:
                kwargs[key] = _parse_int(name, v)
        return cls(**kwargs)  # type: ignore[arg-type]


def parse_channels(value: str) -> tuple[str, ...]:
    """Parse a comma-separated channel list; raises ConfigError."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise ConfigError(f"channel list {value!r} is empty")
    if len(set(names)) != len(names):
        raise ConfigError(f"channel list repeats a channel: {value!r}")
    return names


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {value!r})") from None


def _parse_float(name: str, value: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {value!r})") from None
