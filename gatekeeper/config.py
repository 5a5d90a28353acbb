"""Settings: one frozen value read once from the environment in the composition root.

`Settings` holds what is global (the instance folder, the database, the deployment mode, the
template keys) and one part per subject, each a frozen value that checks its own rules:
`policy` (what the consent decision applies), `faces` (the face engine), `media` (image limits and
published sizes), `retention`, `queue` (background jobs), `web`, `storage` and `mail` (the SMTP
server and what messages say about the organisation). A service that reads
only one subject takes only its part. `ENV` names each setting's variable and parser.

Every setting has a default that works on a laptop: an instance folder holding a SQLite file and
local folders. Parsers are strict: a value that does not parse is an error at start-up, never a
silent fallback.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
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
class PolicySettings:
    """What the consent decision applies: channels, thresholds, the age rule and the UK rules
    (gatekeeper.consent.state.policy_for makes the decision's Policy of it)."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    cover_channels: tuple[str, ...] = ()
    # Face distances (dlib 128-d, Euclidean). Chosen from the corpus measurement in docs/faces.md.
    accept_distance: float = policy.ACCEPT_DISTANCE
    review_distance: float = policy.REVIEW_DISTANCE
    margin: float = policy.MARGIN
    age_threshold: int = 18
    # UK rules (docs/uk-rules.md).
    biometric_rules: str = "pofa"
    reconsent_grace_days: int = 30
    lawful_bases: tuple[tuple[str, str], ...] = ()
    unknown_faces: str = "block"
    # False: faces are matched without a recorded DPIA (tests and demos only).
    dpia_required: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the decision's rules; raises ConfigError."""
        if not 0 < self.accept_distance <= self.review_distance <= 1.0:
            raise ConfigError(
                "thresholds must satisfy 0 < accept_distance <= review_distance <= 1.0 "
                f"(got accept={self.accept_distance}, review={self.review_distance})"
            )
        if not 0 <= self.margin < 1.0:
            raise ConfigError(f"margin must be in [0, 1) (got {self.margin})")
        if self.age_threshold not in AGE_THRESHOLDS:
            raise ConfigError(f"age threshold must be one of {AGE_THRESHOLDS} (got {self.age_threshold})")
        if not self.channels:
            raise ConfigError("at least one channel must be configured")
        for name in self.channels:
            if not _CHANNEL_RE.match(name):
                raise ConfigError(f"invalid channel name {name!r}: lower-case letters, digits, '_', one ':'")
        for name in self.cover_channels:
            if name not in self.channels:
                raise ConfigError(f"cover channel {name!r} is not in the channel list {self.channels}")
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


@dataclass(frozen=True)
class FaceSettings:
    """The face engine's options (gatekeeper.runtime.face_engine builds the engine of them)."""

    # Faces with a shorter side (px of the analysed copy) go to review, not matching.
    min_face_px: int = policy.MIN_FACE_PX
    # Faces down to this width (px of the copy that will be published) are searched for, at any angle.
    min_detect_px: int = policy.MIN_DETECT_PX
    probe_step: int = policy.PROBE_STEP
    max_faces: int = policy.MAX_FACES
    # Seconds of analysis per photo.
    time_limit: float = policy.FACE_TIME_LIMIT_S
    # Processes one photo's analysis may use inside a `gatekeeper worker` (the command line: every core).
    worker_cores: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the engine's options; raises ConfigError."""
        if self.worker_cores < 1:
            raise ConfigError(f"GATEKEEPER_WORKER_FACE_CORES must be at least 1 (got {self.worker_cores})")
        if self.probe_step not in policy.PROBE_STEPS:
            raise ConfigError(
                f"probe step must be one of {policy.PROBE_STEPS} degrees (got {self.probe_step})"
            )
        if not 8 <= self.min_detect_px <= self.min_face_px:
            raise ConfigError(
                f"min_detect_px must be 8..min_face_px ({self.min_face_px}) (got {self.min_detect_px})"
            )
        if not self.time_limit > 0:
            raise ConfigError(f"face_time_limit must be positive (got {self.time_limit})")
        _require_positive(("min_face_px", self.min_face_px), ("max_faces", self.max_faces))


@dataclass(frozen=True)
class MediaSettings:
    """What images are taken in, and how published copies are written."""

    # Images above this many pixels are refused before decoding; files above this many bytes unread.
    max_pixels: int = 50_000_000
    max_bytes: int = 100 * 1024 * 1024
    # Where pixels must be re-encoded (HEIC/TIFF to JPEG).
    jpeg_quality: int = 92
    output_sizes: tuple[tuple[str, int], ...] = DEFAULT_OUTPUT_SIZES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the limits and sizes (Settings checks the sizes' channels); raises ConfigError."""
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"JPEG quality must be 1..100 (got {self.jpeg_quality})")
        for name, edge in self.output_sizes:
            if (name, edge) not in DEFAULT_OUTPUT_SIZES and edge != 0 and edge < 256:
                raise ConfigError(f"output size for {name!r} must be at least 256 px, or 0 for full size")
        _require_positive(("max_pixels", self.max_pixels), ("max_bytes", self.max_bytes))

    def long_edge(self, channel: str) -> int | None:
        """The longest edge of a copy on `channel` (else its parent's); None: full size."""
        sizes = dict(self.output_sizes)
        edge = sizes.get(channel, sizes.get(policy.Channel(channel).base))
        return edge or None


@dataclass(frozen=True)
class RetentionSettings:
    """How long things are kept, in days of the organisation's calendar, and when the purge runs
    (gatekeeper.retention.purge.schedule_for makes the retention Schedule of it; see
    gatekeeper/retention/deadlines.py for the reasons)."""

    blocked_days: int = 30
    review_days: int = 90
    grace_days: int = 30
    taken_down_days: int = 30
    template_days: int = 0
    request_days: int = 30
    # The organisation's time zone: where its days begin.
    timezone: str = "Europe/London"
    purge_schedule: str = "30 2 * * *"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the periods, the time zone and the purge's crontab; raises ConfigError."""
        _require_crontab("GATEKEEPER_PURGE_SCHEDULE", self.purge_schedule)
        for label, days in (
            ("GATEKEEPER_RETENTION_BLOCKED_DAYS", self.blocked_days),
            ("GATEKEEPER_RETENTION_REVIEW_DAYS", self.review_days),
            ("GATEKEEPER_RETENTION_GRACE_DAYS", self.grace_days),
            ("GATEKEEPER_RETENTION_TAKEN_DOWN_DAYS", self.taken_down_days),
            ("GATEKEEPER_RETENTION_TEMPLATE_DAYS", self.template_days),
            ("GATEKEEPER_RETENTION_REQUEST_DAYS", self.request_days),
        ):
            if days < 0:
                raise ConfigError(f"{label} must not be negative (got {days})")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.timezone!r} (GATEKEEPER_TIMEZONE)") from None


@dataclass(frozen=True)
class QueueSettings:
    """Background jobs: the queue, retries, leases and the periodic re-check."""

    # Empty: SqliteHuey in the instance folder.
    url: str = ""
    name: str = "gatekeeper"
    job_retries: int = 5
    job_retry_delay: float = 2.0
    # A running job's lease (renewed while it runs) and how often lapsed or unsent jobs are re-sent.
    job_lease: float = 20.0
    job_sweep_interval: float = 5.0
    # A job whose process died this many times while running it is failed, not run again.
    job_max_attempts: int = 5
    recheck_schedule: str = "*/15 * * * *"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the queue's URL, retries, lease and schedule; raises ConfigError."""
        if self.url and not self.url.startswith(("redis://", "rediss://")):
            raise ConfigError(f"GATEKEEPER_QUEUE_URL must be a redis:// URL or empty (got {self.url!r})")
        if self.job_retries < 0 or self.job_retry_delay < 0:
            raise ConfigError("job retries and retry delay must not be negative")
        if not (self.job_lease > 0 and self.job_sweep_interval > 0 and self.job_max_attempts >= 1):
            raise ConfigError("the job lease and sweep interval must be positive, max attempts at least 1")
        _require_crontab("GATEKEEPER_RECHECK_SCHEDULE", self.recheck_schedule)


@dataclass(frozen=True)
class WebSettings:
    """The web app: where people reach it (withdrawal links), its secret, sessions and rate limits."""

    # Empty: not configured; `serve` derives it from its --host/--port (see public_address).
    public_url: str = ""
    # Empty: the secret in the instance's secret file, made on first start (DEV_SECRET: a fixed,
    # published secret that production refuses and development announces on every start).
    secret_key: str = ""
    secret_key_file: str = ""
    # Idle session timeout.
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the address, rate-limit store and bounds (web/limits.py parses the limits); raises
        ConfigError."""
        if self.public_url and not re.match(r"^https?://[^/\s]+", self.public_url):
            raise ConfigError(f"GATEKEEPER_PUBLIC_URL must be an http(s) URL (got {self.public_url!r})")
        if not re.match(r"^(memory|redis|rediss)://", self.rate_limit_url):
            raise ConfigError(
                f"GATEKEEPER_RATE_LIMIT_URL must be memory:// or a redis:// URL (got {self.rate_limit_url!r})"
            )
        if not 1 <= self.idempotency_hours <= 24 * 30:
            raise ConfigError(f"GATEKEEPER_IDEMPOTENCY_HOURS must be 1..720 (got {self.idempotency_hours})")
        if not 0 <= self.proxy_hops <= 5:
            raise ConfigError(f"GATEKEEPER_PROXY_HOPS must be 0..5 (got {self.proxy_hops})")
        _require_positive(("session_minutes", self.session_minutes))

    @property
    def public_address(self) -> str:
        """The address links carry: the configured public URL, else serve's default address."""
        return self.public_url or DEFAULT_PUBLIC_URL


@dataclass(frozen=True)
class StorageSettings:
    """The blob stores: a folder path, `file:///folder` or `s3://bucket/prefix` each (empty: a folder
    of the instance, filled in by Settings)."""

    originals_url: str = ""
    published_url: str = ""


# Hosts an `smtp://` URL may reach without STARTTLS (a relay on this machine).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_ADDRESS_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


@dataclass(frozen=True)
class MailSettings:
    """Email: the SMTP server messages are sent through, and who they are from.

    `smtp_url` is `smtp://host[:port]` (port 587 by default; STARTTLS is required, except to a
    relay on this machine, localhost or 127.0.0.1, where it is used when offered) or
    `smtps://host[:port]` (TLS from the start, port 465 by default). The user name and password
    are never part of the URL: they are `smtp_user` and `smtp_password`, both or neither. Empty
    `smtp_url`: nothing is sent, and messages stay queued until a server is configured.
    """

    smtp_url: str = ""
    smtp_user: str = ""
    smtp_password: str = ""
    # The address messages are from (required with an SMTP server); the organisation's name is
    # its display name.
    from_address: str = ""
    org_name: str = ""
    org_address: str = ""
    # Who to write to about privacy (an email address or a web page), in every message's footer.
    privacy_contact: str = ""
    # Seconds each step of the SMTP conversation may take.
    timeout: float = 30.0
    # When messages that could not be sent yet (a server that was down) are tried again.
    retry_schedule: str = "*/5 * * * *"
    # When consent admins (and admins, for takedowns) get the daily digest of what has waited
    # more than a day (crontab, UTC); it goes out at most once a day, and only when something waits.
    digest_schedule: str = "0 7 * * *"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the server's URL, the credentials, the sender and the schedule; raises ConfigError."""
        if self.smtp_url:
            parts = urlsplit(self.smtp_url)
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ConfigError(
                    f"GATEKEEPER_SMTP_URL must be smtp://host[:port] or smtps://host[:port] "
                    f"(got {self.smtp_url!r})"
                )
            if parts.username is not None or parts.password is not None:
                raise ConfigError(
                    "GATEKEEPER_SMTP_URL must not hold a user name or password: "
                    "set GATEKEEPER_SMTP_USER and GATEKEEPER_SMTP_PASSWORD"
                )
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ConfigError(
                    f"GATEKEEPER_SMTP_URL must be only a scheme, host and port (got {self.smtp_url!r})"
                )
            try:
                parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
            except ValueError:
                raise ConfigError(f"GATEKEEPER_SMTP_URL has a bad port (got {self.smtp_url!r})") from None
            if not self.from_address:
                raise ConfigError("GATEKEEPER_MAIL_FROM must be set when GATEKEEPER_SMTP_URL is")
        if bool(self.smtp_user) != bool(self.smtp_password):
            raise ConfigError(
                "GATEKEEPER_SMTP_USER and GATEKEEPER_SMTP_PASSWORD are set together, or neither"
            )
        if self.from_address and not _ADDRESS_RE.match(self.from_address):
            raise ConfigError(
                f"GATEKEEPER_MAIL_FROM must be one plain address, name@domain (got {self.from_address!r})"
            )
        if not self.timeout > 0:
            raise ConfigError(f"GATEKEEPER_SMTP_TIMEOUT must be positive (got {self.timeout})")
        _require_crontab("GATEKEEPER_MAIL_RETRY_SCHEDULE", self.retry_schedule)
        _require_crontab("GATEKEEPER_STAFF_DIGEST_SCHEDULE", self.digest_schedule)

    @property
    def configured(self) -> bool:
        """True when messages can be sent (an SMTP server is set)."""
        return bool(self.smtp_url)

    @property
    def implicit_tls(self) -> bool:
        """True for `smtps://`: TLS from the first byte."""
        return urlsplit(self.smtp_url).scheme == "smtps"

    @property
    def host(self) -> str:
        """The SMTP server's host name or address."""
        return urlsplit(self.smtp_url).hostname or ""

    @property
    def port(self) -> int:
        """The SMTP server's port: as given, else 465 for smtps:// and 587 for smtp://."""
        return urlsplit(self.smtp_url).port or (465 if self.implicit_tls else 587)

    @property
    def starttls_required(self) -> bool:
        """True when an `smtp://` server must offer STARTTLS (any server not on this machine)."""
        return not self.implicit_tls and self.host not in LOCAL_HOSTS

    @property
    def sender_domain(self) -> str:
        """The domain of the sender's address (Message-IDs are made in it)."""
        return self.from_address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class FormSettings:
    """The online consent form: how long a personal link opens it, when reminders go out before a
    deadline, how long an answer given on it holds, and the organisation's wording."""

    link_days: int = 30
    # Days before a consent ends (or a parent's consent lapses at the age threshold) that a request
    # goes out, once each.
    reminder_days: tuple[int, ...] = (30, 7)
    reminder_schedule: str = "0 7 * * *"
    # Days a consent given on the form holds (0: until withdrawn).
    valid_days: int = 365
    # A text file with the organisation's consent wording (empty: the built-in wording); its
    # version, recorded with every answer, is the file's name and the start of its sha256.
    wording_file: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the periods and the reminders' crontab; raises ConfigError."""
        if not 1 <= self.link_days <= 366:
            raise ConfigError(f"GATEKEEPER_CONSENT_LINK_DAYS must be 1 to 366 (got {self.link_days})")
        if any(days < 1 or days > 366 for days in self.reminder_days):
            raise ConfigError(
                f"GATEKEEPER_REMINDER_DAYS must be whole days from 1 to 366 (got {self.reminder_days})"
            )
        if self.valid_days < 0:
            raise ConfigError(f"GATEKEEPER_CONSENT_VALID_DAYS must not be negative (got {self.valid_days})")
        _require_crontab("GATEKEEPER_REMINDER_SCHEDULE", self.reminder_schedule)


@dataclass(frozen=True)
class ScanSettings:
    """Scanning what is already public (gatekeeper/scan/): manners towards a website, the caps of one
    scan, how long its downloaded images are kept, and when watched sources are scanned again."""

    # Requests per second to one website (robots.txt's Crawl-delay slows it further).
    rate: float = 2.0
    max_pages: int = 500
    max_images: int = 2000
    # Seconds to connect and between bytes of one response.
    timeout: float = 10.0
    # A page larger than this is not read (images have the upload limit, media.max_bytes).
    max_page_bytes: int = 5 * 1024 * 1024
    user_agent: str = "ConsentGatekeeperScan/1.0 (+consent gatekeeper: checks school photos against consent)"
    # Originals downloaded by a scan are deleted this many days after the scan that last found them
    # (the decision, its faces and the placements stay, so withdrawals still open takedown tasks).
    keep_days: int = 30
    rescan_schedule: str = "0 3 * * 1"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the rate, caps, time-out, keeping period and schedule; raises ConfigError."""
        if not 0 < self.rate <= 100:
            raise ConfigError(f"GATEKEEPER_SCAN_RATE must be above 0 and at most 100 (got {self.rate})")
        if not self.timeout > 0:
            raise ConfigError(f"GATEKEEPER_SCAN_TIMEOUT must be positive (got {self.timeout})")
        if self.keep_days < 0:
            raise ConfigError(f"GATEKEEPER_SCAN_KEEP_DAYS must not be negative (got {self.keep_days})")
        if not self.user_agent.strip() or any(c in self.user_agent for c in "\r\n"):
            raise ConfigError("GATEKEEPER_SCAN_USER_AGENT must be one line of text")
        _require_positive(
            ("max_pages", self.max_pages),
            ("max_images", self.max_images),
            ("max_page_bytes", self.max_page_bytes),
        )
        _require_crontab("GATEKEEPER_SCAN_SCHEDULE", self.rescan_schedule)


@dataclass(frozen=True)
class Settings:
    """Everything the gatekeeper can be configured with (see the README's table): the global values
    and one part per subject."""

    home: Path = field(default_factory=default_home)
    # Empty: a SQLite file in the instance folder.
    database_url: str = ""
    env: str = "development"
    # Face templates are encrypted with the first of these keys (base64 of 32 bytes, comma-separated;
    # the others still decrypt, for a rotation); empty: the instance's key file, made on first use.
    template_key: str = ""
    template_key_file: str = ""
    policy: PolicySettings = field(default_factory=PolicySettings)
    faces: FaceSettings = field(default_factory=FaceSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    web: WebSettings = field(default_factory=WebSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    forms: FormSettings = field(default_factory=FormSettings)
    scan: ScanSettings = field(default_factory=ScanSettings)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{(self.home / 'gatekeeper.db').resolve()}")
        if not (self.storage.originals_url and self.storage.published_url):
            stores = replace(
                self.storage,
                originals_url=self.storage.originals_url or str((self.home / "originals").resolve()),
                published_url=self.storage.published_url or str((self.home / "published").resolve()),
            )
            object.__setattr__(self, "storage", stores)
        self.validate()

    def validate(self) -> None:
        """Check the global values and the rules between parts (each part checks its own); raises
        ConfigError."""
        if self.env not in ("development", "production"):
            raise ConfigError(f"GATEKEEPER_ENV must be 'development' or 'production' (got {self.env!r})")
        if self.env == "production" and self.web.secret_key == DEV_SECRET:
            raise ConfigError("refusing to run in production with the development secret key")
        if self.template_key:
            parse_template_keys(self.template_key)
        channels = self.policy.channels
        for name, edge in self.media.output_sizes:
            if (name, edge) in DEFAULT_OUTPUT_SIZES:
                continue  # a default for a channel this organisation may not use
            if policy.Channel(name).base not in channels and name not in channels:
                raise ConfigError(f"output size for {name!r}: not in the channel list {channels}")

    def with_(self, **changes: Any) -> Settings:
        """A copy with `changes`: global values, whole parts, or some fields of a part given as a
        mapping (`settings.with_(policy={"unknown_faces": "review"}, env="production")`)."""
        values = {
            name: replace(getattr(self, name), **value) if isinstance(value, Mapping) else value
            for name, value in changes.items()
        }
        return replace(self, **values)

    @property
    def instance_path(self) -> Path:
        """The instance folder, absolute."""
        return self.home.resolve()

    @property
    def secret_key_path(self) -> Path:
        """Where the web app's secret is kept when GATEKEEPER_SECRET_KEY is not set."""
        file = self.web.secret_key_file
        return Path(file) if file else self.instance_path / "secret_key"

    @property
    def template_key_path(self) -> Path:
        """Where the template keys are kept when GATEKEEPER_TEMPLATE_KEY is not set."""
        return (
            Path(self.template_key_file) if self.template_key_file else self.instance_path / "template_keys"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read GATEKEEPER_* variables (see ENV); raises ConfigError on any value that does not parse."""
        env = os.environ if environ is None else environ
        values: dict[str, dict[str, object]] = {"": {}}
        for setting, name, parse in ENV:
            raw = env.get(name)
            if raw is None or (value := parse(name, raw)) is None:
                continue
            part, _, key = setting.rpartition(".")
            values.setdefault(part, {})[key] = value
        top = values.pop("")
        top.setdefault("home", default_home(env))
        parts = {part: PARTS[part](**fields) for part, fields in values.items()}
        return cls(**top, **parts)  # type: ignore[arg-type]


# Each part of Settings by its field name.
PARTS: dict[str, type[Any]] = {
    "policy": PolicySettings,
    "faces": FaceSettings,
    "media": MediaSettings,
    "retention": RetentionSettings,
    "queue": QueueSettings,
    "web": WebSettings,
    "storage": StorageSettings,
    "mail": MailSettings,
    "forms": FormSettings,
    "scan": ScanSettings,
}


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


def _require_positive(*values: tuple[str, float]) -> None:
    for label, value in values:
        if value <= 0:
            raise ConfigError(f"{label} must be positive (got {value})")


def _require_crontab(label: str, schedule: str) -> None:
    if len(schedule.split()) != 5:
        raise ConfigError(f"{label} must be a 5-field crontab (got {schedule!r})")


# A parser takes the variable's name (for its message) and its value; None keeps the default.
Parser = Callable[[str, str], object]


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


def _text(name: str, value: str) -> str | None:
    """The value as given; empty: the default."""
    return value or None


def _word(name: str, value: str) -> str | None:
    """The value without surrounding blanks; blank: the default."""
    return value.strip() or None


def _path(name: str, value: str) -> Path | None:
    return Path(value) if value else None


def _channels(name: str, value: str) -> tuple[str, ...]:
    return parse_channels(value)


def _some_channels(name: str, value: str) -> tuple[str, ...] | None:
    """A channel list; blank: none given, the default."""
    return parse_channels(value) if value.strip() else None


def _lawful_bases(name: str, value: str) -> tuple[tuple[str, str], ...] | None:
    return parse_lawful_bases(value) if value.strip() else None


def _reminder_days(name: str, value: str) -> tuple[int, ...]:
    days = [part.strip() for part in value.split(",") if part.strip()]
    if not days or not all(part.isdigit() for part in days):
        raise ConfigError(f"{name} must be whole days before a deadline, comma-separated (got {value!r})")
    return tuple(sorted({int(part) for part in days}, reverse=True))


def _output_sizes(name: str, value: str) -> tuple[tuple[str, int], ...]:
    """Given channels override the defaults; the others keep theirs."""
    return tuple({**dict(DEFAULT_OUTPUT_SIZES), **dict(parse_output_sizes(value))}.items())


# Every setting (`part.field`, or `field` for a global one), its environment variable and its
# parser. A variable that is not set leaves the default (GATEKEEPER_HOME: default_home()).
ENV: tuple[tuple[str, str, Parser], ...] = (
    ("home", "GATEKEEPER_HOME", _path),
    ("database_url", "GATEKEEPER_DATABASE_URL", _text),
    ("env", "GATEKEEPER_ENV", _text),
    ("template_key", "GATEKEEPER_TEMPLATE_KEY", _text),
    ("template_key_file", "GATEKEEPER_TEMPLATE_KEY_FILE", _text),
    ("policy.channels", "GATEKEEPER_CHANNELS", _channels),
    ("policy.cover_channels", "GATEKEEPER_COVER_CHANNELS", _some_channels),
    ("policy.accept_distance", "GATEKEEPER_ACCEPT_DISTANCE", _parse_float),
    ("policy.review_distance", "GATEKEEPER_REVIEW_DISTANCE", _parse_float),
    ("policy.margin", "GATEKEEPER_MARGIN", _parse_float),
    ("policy.age_threshold", "GATEKEEPER_AGE_THRESHOLD", _parse_int),
    ("policy.biometric_rules", "GATEKEEPER_BIOMETRIC_RULES", _word),
    ("policy.reconsent_grace_days", "GATEKEEPER_RECONSENT_GRACE_DAYS", _parse_int),
    ("policy.lawful_bases", "GATEKEEPER_LAWFUL_BASES", _lawful_bases),
    ("policy.unknown_faces", "GATEKEEPER_UNKNOWN_FACES", _word),
    ("policy.dpia_required", "GATEKEEPER_DPIA_REQUIRED", _parse_bool),
    ("faces.min_face_px", "GATEKEEPER_MIN_FACE_PX", _parse_int),
    ("faces.min_detect_px", "GATEKEEPER_MIN_DETECT_PX", _parse_int),
    ("faces.probe_step", "GATEKEEPER_PROBE_STEP", _parse_int),
    ("faces.max_faces", "GATEKEEPER_MAX_FACES", _parse_int),
    ("faces.time_limit", "GATEKEEPER_FACE_TIME_LIMIT", _parse_float),
    ("faces.worker_cores", "GATEKEEPER_WORKER_FACE_CORES", _parse_int),
    ("media.max_pixels", "GATEKEEPER_MAX_PIXELS", _parse_int),
    ("media.max_bytes", "GATEKEEPER_MAX_BYTES", _parse_int),
    ("media.jpeg_quality", "GATEKEEPER_JPEG_QUALITY", _parse_int),
    ("media.output_sizes", "GATEKEEPER_OUTPUT_SIZES", _output_sizes),
    ("retention.blocked_days", "GATEKEEPER_RETENTION_BLOCKED_DAYS", _parse_int),
    ("retention.review_days", "GATEKEEPER_RETENTION_REVIEW_DAYS", _parse_int),
    ("retention.grace_days", "GATEKEEPER_RETENTION_GRACE_DAYS", _parse_int),
    ("retention.taken_down_days", "GATEKEEPER_RETENTION_TAKEN_DOWN_DAYS", _parse_int),
    ("retention.template_days", "GATEKEEPER_RETENTION_TEMPLATE_DAYS", _parse_int),
    ("retention.request_days", "GATEKEEPER_RETENTION_REQUEST_DAYS", _parse_int),
    ("retention.timezone", "GATEKEEPER_TIMEZONE", _text),
    ("retention.purge_schedule", "GATEKEEPER_PURGE_SCHEDULE", _text),
    ("queue.url", "GATEKEEPER_QUEUE_URL", _text),
    ("queue.name", "GATEKEEPER_QUEUE_NAME", _text),
    ("queue.job_retries", "GATEKEEPER_JOB_RETRIES", _parse_int),
    ("queue.job_retry_delay", "GATEKEEPER_JOB_RETRY_DELAY", _parse_float),
    ("queue.job_lease", "GATEKEEPER_JOB_LEASE", _parse_float),
    ("queue.job_sweep_interval", "GATEKEEPER_JOB_SWEEP_INTERVAL", _parse_float),
    ("queue.job_max_attempts", "GATEKEEPER_JOB_MAX_ATTEMPTS", _parse_int),
    ("queue.recheck_schedule", "GATEKEEPER_RECHECK_SCHEDULE", _text),
    ("web.public_url", "GATEKEEPER_PUBLIC_URL", _text),
    ("web.secret_key", "GATEKEEPER_SECRET_KEY", _text),
    ("web.secret_key_file", "GATEKEEPER_SECRET_KEY_FILE", _text),
    ("web.session_minutes", "GATEKEEPER_SESSION_MINUTES", _parse_int),
    ("web.rate_limit_url", "GATEKEEPER_RATE_LIMIT_URL", _text),
    ("web.withdraw_rate_limit", "GATEKEEPER_WITHDRAW_RATE_LIMIT", _text),
    ("web.public_page_rate_limit", "GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT", _text),
    ("web.login_rate_limit", "GATEKEEPER_LOGIN_RATE_LIMIT", _text),
    ("web.login_address_rate_limit", "GATEKEEPER_LOGIN_ADDRESS_RATE_LIMIT", _text),
    ("web.api_rate_limit", "GATEKEEPER_API_RATE_LIMIT", _text),
    ("web.staff_rate_limit", "GATEKEEPER_STAFF_RATE_LIMIT", _text),
    ("web.idempotency_hours", "GATEKEEPER_IDEMPOTENCY_HOURS", _parse_int),
    ("web.proxy_hops", "GATEKEEPER_PROXY_HOPS", _parse_int),
    ("storage.originals_url", "GATEKEEPER_ORIGINALS_URL", _text),
    ("storage.published_url", "GATEKEEPER_PUBLISHED_URL", _text),
    ("mail.smtp_url", "GATEKEEPER_SMTP_URL", _word),
    ("mail.smtp_user", "GATEKEEPER_SMTP_USER", _text),
    ("mail.smtp_password", "GATEKEEPER_SMTP_PASSWORD", _text),
    ("mail.from_address", "GATEKEEPER_MAIL_FROM", _word),
    ("mail.org_name", "GATEKEEPER_ORG_NAME", _word),
    ("mail.org_address", "GATEKEEPER_ORG_ADDRESS", _word),
    ("mail.privacy_contact", "GATEKEEPER_PRIVACY_CONTACT", _word),
    ("mail.timeout", "GATEKEEPER_SMTP_TIMEOUT", _parse_float),
    ("mail.retry_schedule", "GATEKEEPER_MAIL_RETRY_SCHEDULE", _text),
    ("forms.link_days", "GATEKEEPER_CONSENT_LINK_DAYS", _parse_int),
    ("forms.reminder_days", "GATEKEEPER_REMINDER_DAYS", _reminder_days),
    ("forms.reminder_schedule", "GATEKEEPER_REMINDER_SCHEDULE", _text),
    ("forms.valid_days", "GATEKEEPER_CONSENT_VALID_DAYS", _parse_int),
    ("forms.wording_file", "GATEKEEPER_CONSENT_WORDING_FILE", _text),
    ("mail.digest_schedule", "GATEKEEPER_STAFF_DIGEST_SCHEDULE", _text),
    ("scan.rate", "GATEKEEPER_SCAN_RATE", _parse_float),
    ("scan.max_pages", "GATEKEEPER_SCAN_MAX_PAGES", _parse_int),
    ("scan.max_images", "GATEKEEPER_SCAN_MAX_IMAGES", _parse_int),
    ("scan.timeout", "GATEKEEPER_SCAN_TIMEOUT", _parse_float),
    ("scan.max_page_bytes", "GATEKEEPER_SCAN_MAX_PAGE_BYTES", _parse_int),
    ("scan.user_agent", "GATEKEEPER_SCAN_USER_AGENT", _word),
    ("scan.keep_days", "GATEKEEPER_SCAN_KEEP_DAYS", _parse_int),
    ("scan.rescan_schedule", "GATEKEEPER_SCAN_SCHEDULE", _text),
)
