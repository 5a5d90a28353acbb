"""Settings: one frozen value read once from the environment in the composition root.

Every setting has a default that works on a laptop: an instance folder holding a SQLite file and
local folders. Parsers are strict: a value that does not parse is an error at start-up, never a
silent fallback.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gatekeeper import policy
from gatekeeper.errors import ConfigError
from gatekeeper.policy import BIOMETRIC_RULES, LAWFUL_BASES, UNKNOWN_FACES

DEFAULT_CHANNELS = ("website", "social_media", "print", "press", "internal")
AGE_THRESHOLDS = (13, 16, 18)
DEV_SECRET = "dev-only-not-secret"
# Where `gatekeeper serve` listens by default, and so what links say when nothing else is known.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
# The longest edge of a published copy, per channel: a website or a feed shows about 2,000 px;
# a channel not listed (print, press) gets the full size. Sub-channels follow their parent.
DEFAULT_OUTPUT_SIZES = (("website", 2048), ("social_media", 2048), ("internal", 2048))
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9_]+)?$")


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The instance folder when GATEKEEPER_HOME is not set, the same wherever the command starts.

    Run from a checkout (the scripts, `uv run`): its `instance/` folder. Installed as a package:
    `consent-gatekeeper/instance` in the user's data folder ($XDG_DATA_HOME or ~/.local/share).
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "migrations").is_dir():
        return checkout / "instance"
    env = os.environ if environ is None else environ
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "consent-gatekeeper" / "instance"


@dataclass(frozen=True)
class Settings:
    """Everything the gatekeeper can be configured with (see the README's table)."""

    home: Path = field(default_factory=default_home)
    database_url: str = ""
    originals_url: str = ""
    published_url: str = ""
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    cover_channels: tuple[str, ...] = ()
    # Face distances (dlib 128-d, Euclidean). Chosen from the corpus measurement in docs/faces.md.
    accept_distance: float = policy.ACCEPT_DISTANCE
    review_distance: float = policy.REVIEW_DISTANCE
    margin: float = policy.MARGIN
    min_face_px: int = policy.MIN_FACE_PX
    max_faces: int = policy.MAX_FACES
    face_time_limit: float = policy.FACE_TIME_LIMIT_S
    age_threshold: int = 18
    max_pixels: int = 50_000_000
    max_bytes: int = 100 * 1024 * 1024
    jpeg_quality: int = 92
    # Faces down to this width (px of the copy that will be published) are searched for, at any angle.
    min_detect_px: int = policy.MIN_DETECT_PX
    probe_step: int = policy.PROBE_STEP
    output_sizes: tuple[tuple[str, int], ...] = DEFAULT_OUTPUT_SIZES
    env: str = "development"
    # Empty: the secret in the instance's secret file, made on first start (DEV_SECRET: a fixed,
    # published secret that production refuses and development announces on every start).
    secret_key: str = ""
    secret_key_file: str = ""
    # Face templates are encrypted with the first of these keys (base64 of 32 bytes, comma-separated;
    # the others still decrypt, for a rotation); empty: the instance's key file, made on first use.
    template_key: str = ""
    template_key_file: str = ""
    # Background jobs: empty queue_url means SqliteHuey in the instance folder.
    queue_url: str = ""
    queue_name: str = "gatekeeper"
    job_retries: int = 5
    job_retry_delay: float = 2.0
    # A running job's lease (renewed while it runs) and how often lapsed or unsent jobs are re-sent.
    job_lease: float = 20.0
    job_sweep_interval: float = 5.0
    # A job whose process died this many times while running it is failed, not run again.
    job_max_attempts: int = 5
    recheck_schedule: str = "*/15 * * * *"
    timezone: str = "Europe/London"
    # Retention (days of the organisation's calendar; see gatekeeper/retention.py for the reasons).
    purge_schedule: str = "30 2 * * *"
    retention_blocked_days: int = 30
    retention_review_days: int = 90
    retention_grace_days: int = 30
    retention_taken_down_days: int = 30
    retention_template_days: int = 0
    retention_request_days: int = 30
    worker_face_cores: int = 1
    # The web app: where people reach it (withdrawal links), idle session timeout, rate limits.
    # Empty: not configured; `serve` derives it from its --host/--port (see public_address).
    public_url: str = ""
    session_minutes: int = 30
    rate_limit_url: str = "memory://"
    withdraw_rate_limit: str = "5 per minute;30 per hour"
    public_page_rate_limit: str = "60 per minute"
    # Counted per account name tried (sign-in), per API token and per staff account; see web/limits.py.
    login_rate_limit: str = "10 per minute;100 per hour"
    login_address_rate_limit: str = "100 per minute;1000 per hour"
    api_rate_limit: str = "600 per minute"
    staff_rate_limit: str = "1200 per minute"
    # How long the API keeps the answer to a request sent with an Idempotency-Key.
    idempotency_hours: int = 24
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (0: none).
    proxy_hops: int = 0
    # UK rules (docs/uk-rules.md).
    biometric_rules: str = "pofa"
    reconsent_grace_days: int = 30
    lawful_bases: tuple[tuple[str, str], ...] = ()
    unknown_faces: str = "block"
    dpia_required: bool = True

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
        if self.template_key:
            parse_template_keys(self.template_key)
        if not self.channels:
            raise ConfigError("at least one channel must be configured")
        if self.public_url and not re.match(r"^https?://[^/\s]+", self.public_url):
            raise ConfigError(f"GATEKEEPER_PUBLIC_URL must be an http(s) URL (got {self.public_url!r})")
        if not re.match(r"^(memory|redis|rediss)://", self.rate_limit_url):
            raise ConfigError(
                f"GATEKEEPER_RATE_LIMIT_URL must be memory:// or a redis:// URL (got {self.rate_limit_url!r})"
            )
        for name in self.channels:
            if not _CHANNEL_RE.match(name):
                raise ConfigError(f"invalid channel name {name!r}: lower-case letters, digits, '_', one ':'")
        for name in self.cover_channels:
            if name not in self.channels:
                raise ConfigError(f"cover channel {name!r} is not in the channel list {self.channels}")
        if not 1 <= self.idempotency_hours <= 24 * 30:
            raise ConfigError(f"GATEKEEPER_IDEMPOTENCY_HOURS must be 1..720 (got {self.idempotency_hours})")
        if not 0 <= self.proxy_hops <= 5:
            raise ConfigError(f"GATEKEEPER_PROXY_HOPS must be 0..5 (got {self.proxy_hops})")
        if self.biometric_rules not in BIOMETRIC_RULES:
            raise ConfigError(
                f"biometric rules must be one of {BIOMETRIC_RULES} (got {self.biometric_rules!r})"
            )
        if self.unknown_faces not in UNKNOWN_FACES:
            raise ConfigError(f"unknown faces must be one of {UNKNOWN_FACES} (got {self.unknown_faces!r})")
        if self.reconsent_grace_days < 0:
            raise ConfigError(f"reconsent grace days must not be negative (got {self.reconsent_grace_days})")
        for name, basis in self.lawful_bases:
            if name not in self.channels:
                raise ConfigError(f"lawful basis given for {name!r}, which is not in the channel list")
            if basis not in LAWFUL_BASES:
                raise ConfigError(f"lawful basis of {name!r} must be one of {LAWFUL_BASES} (got {basis!r})")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"JPEG quality must be 1..100 (got {self.jpeg_quality})")
        if self.queue_url and not self.queue_url.startswith(("redis://", "rediss://")):
            raise ConfigError(
                f"GATEKEEPER_QUEUE_URL must be a redis:// URL or empty (got {self.queue_url!r})"
            )
        if self.job_retries < 0 or self.job_retry_delay < 0:
            raise ConfigError("job retries and retry delay must not be negative")
        if not (self.job_lease > 0 and self.job_sweep_interval > 0 and self.job_max_attempts >= 1):
            raise ConfigError("the job lease and sweep interval must be positive, max attempts at least 1")
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
            ("GATEKEEPER_RETENTION_REQUEST_DAYS", self.retention_request_days),
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
        for name, edge in self.output_sizes:
            if (name, edge) in DEFAULT_OUTPUT_SIZES:
                continue  # a default for a channel this organisation may not use
            if policy.Channel(name).base not in self.channels and name not in self.channels:
                raise ConfigError(f"output size for {name!r}: not in the channel list {self.channels}")
            if edge != 0 and edge < 256:
                raise ConfigError(f"output size for {name!r} must be at least 256 px, or 0 for full size")
        if self.probe_step not in policy.PROBE_STEPS:
            raise ConfigError(
                f"probe step must be one of {policy.PROBE_STEPS} degrees (got {self.probe_step})"
            )
        if not 8 <= self.min_detect_px <= self.min_face_px:
            raise ConfigError(
                f"min_detect_px must be 8..min_face_px ({self.min_face_px}) (got {self.min_detect_px})"
            )
        if not self.face_time_limit > 0:
            raise ConfigError(f"face_time_limit must be positive (got {self.face_time_limit})")
        for label, value in (
            ("min_face_px", self.min_face_px),
            ("max_faces", self.max_faces),
            ("max_pixels", self.max_pixels),
            ("max_bytes", self.max_bytes),
            ("session_minutes", self.session_minutes),
        ):
            if value <= 0:
                raise ConfigError(f"{label} must be positive (got {value})")

    def long_edge(self, channel: str) -> int | None:
        """The longest edge of a copy on `channel` (else its parent's); None: full size."""
        sizes = dict(self.output_sizes)
        edge = sizes.get(channel, sizes.get(policy.Channel(channel).base))
        return edge or None

    @property
    def public_address(self) -> str:
        """The address links carry: the configured public URL, else serve's default address."""
        return self.public_url or DEFAULT_PUBLIC_URL

    @property
    def instance_path(self) -> Path:
        """The instance folder, absolute."""
        return self.home.resolve()

    @property
    def secret_key_path(self) -> Path:
        """Where the web app's secret is kept when GATEKEEPER_SECRET_KEY is not set."""
        return Path(self.secret_key_file) if self.secret_key_file else self.instance_path / "secret_key"

    @property
    def template_key_path(self) -> Path:
        """Where the template keys are kept when GATEKEEPER_TEMPLATE_KEY is not set."""
        return (
            Path(self.template_key_file) if self.template_key_file else self.instance_path / "template_keys"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read GATEKEEPER_* variables; raises ConfigError on any value that does not parse."""
        env = os.environ if environ is None else environ
        get = env.get
        kwargs: dict[str, object] = {}
        home = get("GATEKEEPER_HOME")
        kwargs["home"] = Path(home) if home else default_home(env)
        for key, name in (
            ("database_url", "GATEKEEPER_DATABASE_URL"),
            ("originals_url", "GATEKEEPER_ORIGINALS_URL"),
            ("published_url", "GATEKEEPER_PUBLISHED_URL"),
            ("env", "GATEKEEPER_ENV"),
            ("secret_key", "GATEKEEPER_SECRET_KEY"),
            ("secret_key_file", "GATEKEEPER_SECRET_KEY_FILE"),
            ("template_key", "GATEKEEPER_TEMPLATE_KEY"),
            ("template_key_file", "GATEKEEPER_TEMPLATE_KEY_FILE"),
            ("queue_url", "GATEKEEPER_QUEUE_URL"),
            ("queue_name", "GATEKEEPER_QUEUE_NAME"),
            ("recheck_schedule", "GATEKEEPER_RECHECK_SCHEDULE"),
            ("timezone", "GATEKEEPER_TIMEZONE"),
            ("purge_schedule", "GATEKEEPER_PURGE_SCHEDULE"),
            ("public_url", "GATEKEEPER_PUBLIC_URL"),
            ("rate_limit_url", "GATEKEEPER_RATE_LIMIT_URL"),
            ("withdraw_rate_limit", "GATEKEEPER_WITHDRAW_RATE_LIMIT"),
            ("public_page_rate_limit", "GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT"),
            ("login_rate_limit", "GATEKEEPER_LOGIN_RATE_LIMIT"),
            ("login_address_rate_limit", "GATEKEEPER_LOGIN_ADDRESS_RATE_LIMIT"),
            ("api_rate_limit", "GATEKEEPER_API_RATE_LIMIT"),
            ("staff_rate_limit", "GATEKEEPER_STAFF_RATE_LIMIT"),
        ):
            if (v := get(name)) is not None and v != "":
                kwargs[key] = v
        if (v := get("GATEKEEPER_BIOMETRIC_RULES")) is not None and v.strip():
            kwargs["biometric_rules"] = v.strip()
        if (v := get("GATEKEEPER_UNKNOWN_FACES")) is not None and v.strip():
            kwargs["unknown_faces"] = v.strip()
        if (v := get("GATEKEEPER_LAWFUL_BASES")) is not None and v.strip():
            kwargs["lawful_bases"] = parse_lawful_bases(v)
        if (v := get("GATEKEEPER_DPIA_REQUIRED")) is not None:
            kwargs["dpia_required"] = _parse_bool("GATEKEEPER_DPIA_REQUIRED", v)
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
            ("job_lease", "GATEKEEPER_JOB_LEASE"),
            ("job_sweep_interval", "GATEKEEPER_JOB_SWEEP_INTERVAL"),
        ):
            if (v := get(name)) is not None:
                kwargs[key] = _parse_float(name, v)
        if (v := get("GATEKEEPER_OUTPUT_SIZES")) is not None:
            # Given channels override the defaults; the others keep theirs.
            kwargs["output_sizes"] = tuple(
                {**dict(DEFAULT_OUTPUT_SIZES), **dict(parse_output_sizes(v))}.items()
            )
        for key, name in (
            ("min_detect_px", "GATEKEEPER_MIN_DETECT_PX"),
            ("probe_step", "GATEKEEPER_PROBE_STEP"),
            ("min_face_px", "GATEKEEPER_MIN_FACE_PX"),
            ("max_faces", "GATEKEEPER_MAX_FACES"),
            ("age_threshold", "GATEKEEPER_AGE_THRESHOLD"),
            ("max_pixels", "GATEKEEPER_MAX_PIXELS"),
            ("max_bytes", "GATEKEEPER_MAX_BYTES"),
            ("jpeg_quality", "GATEKEEPER_JPEG_QUALITY"),
            ("job_retries", "GATEKEEPER_JOB_RETRIES"),
            ("job_max_attempts", "GATEKEEPER_JOB_MAX_ATTEMPTS"),
            ("retention_blocked_days", "GATEKEEPER_RETENTION_BLOCKED_DAYS"),
            ("retention_review_days", "GATEKEEPER_RETENTION_REVIEW_DAYS"),
            ("retention_grace_days", "GATEKEEPER_RETENTION_GRACE_DAYS"),
            ("retention_taken_down_days", "GATEKEEPER_RETENTION_TAKEN_DOWN_DAYS"),
            ("retention_template_days", "GATEKEEPER_RETENTION_TEMPLATE_DAYS"),
            ("retention_request_days", "GATEKEEPER_RETENTION_REQUEST_DAYS"),
            ("worker_face_cores", "GATEKEEPER_WORKER_FACE_CORES"),
            ("session_minutes", "GATEKEEPER_SESSION_MINUTES"),
            ("proxy_hops", "GATEKEEPER_PROXY_HOPS"),
            ("reconsent_grace_days", "GATEKEEPER_RECONSENT_GRACE_DAYS"),
            ("idempotency_hours", "GATEKEEPER_IDEMPOTENCY_HOURS"),
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


def parse_output_sizes(value: str) -> tuple[tuple[str, int], ...]:
    """Parse `channel=PX,...` (0: full size); raises ConfigError."""
    sizes = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, px = item.partition("=")
        if not sep or not _CHANNEL_RE.match(name.strip()):
            raise ConfigError(f"GATEKEEPER_OUTPUT_SIZES: expected channel=PX, got {item!r}")
        sizes.append((name.strip(), _parse_int("GATEKEEPER_OUTPUT_SIZES", px.strip())))
    return tuple(sizes)


def parse_lawful_bases(value: str) -> tuple[tuple[str, str], ...]:
    """Parse `channel=basis,channel=basis`; raises ConfigError."""
    pairs = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        name, sep, basis = part.partition("=")
        if not sep:
            raise ConfigError(f"lawful basis {part!r} must be written channel=basis")
        pairs.append((name.strip(), basis.strip()))
    return tuple(pairs)


TEMPLATE_KEY_BYTES = 32


def parse_template_keys(value: str) -> tuple[bytes, ...]:
    """Parse comma-separated base64 AES-256 keys (the first encrypts); raises ConfigError."""
    keys = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        try:
            key = base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != TEMPLATE_KEY_BYTES:
            raise ConfigError(
                f"GATEKEEPER_TEMPLATE_KEY: each key must be {TEMPLATE_KEY_BYTES} bytes in base64 "
                "(make one with `gatekeeper keys new`)"
            )
        keys.append(key)
    if not keys:
        raise ConfigError("GATEKEEPER_TEMPLATE_KEY holds no key")
    return tuple(keys)


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (got {value!r})")


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
