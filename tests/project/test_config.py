"""Settings are read once from the environment with strict parsers."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from gatekeeper.config import DEV_SECRET, ENV, PARTS, MediaSettings, PolicySettings, Settings
from gatekeeper.errors import ConfigError


def test_defaults_work_on_a_laptop(tmp_path: Path) -> None:
    settings = Settings.from_env({"GATEKEEPER_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'gatekeeper.db'}"
    assert settings.storage.originals_url == str(tmp_path / "originals")
    assert settings.policy.channels == ("website", "social_media", "print", "press", "internal")
    policy = settings.policy
    assert (policy.age_threshold, policy.accept_distance, policy.review_distance) == (18, 0.55, 0.65)


def test_every_variable_is_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_DATABASE_URL": "postgresql://db/gk",
            "GATEKEEPER_CHANNELS": "website, prospectus ,social_media",
            "GATEKEEPER_AGE_THRESHOLD": "16",
            "GATEKEEPER_ACCEPT_DISTANCE": "0.5",
            "GATEKEEPER_REVIEW_DISTANCE": "0.6",
            "GATEKEEPER_MARGIN": "0.1",
            "GATEKEEPER_MIN_FACE_PX": "32",
            "GATEKEEPER_MAX_PIXELS": "1000",
            "GATEKEEPER_MAX_BYTES": "2000",
            "GATEKEEPER_JPEG_QUALITY": "85",
        }
    )
    assert settings.database_url == "postgresql://db/gk"
    assert settings.policy.channels == ("website", "prospectus", "social_media")
    policy = settings.policy
    assert (policy.age_threshold, policy.accept_distance, policy.review_distance, policy.margin) == (
        16,
        0.5,
        0.6,
        0.1,
    )
    media = settings.media
    assert (settings.faces.min_face_px, media.max_pixels, media.max_bytes, media.jpeg_quality) == (
        32,
        1000,
        2000,
        85,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEKEEPER_AGE_THRESHOLD": "17"}, "age threshold must be one of"),
        ({"GATEKEEPER_AGE_THRESHOLD": "eighteen"}, "must be a whole number"),
        ({"GATEKEEPER_ACCEPT_DISTANCE": "0.7"}, "accept_distance <= review_distance"),
        ({"GATEKEEPER_ACCEPT_DISTANCE": "close"}, "must be a number"),
        ({"GATEKEEPER_MARGIN": "-0.1"}, "margin"),
        ({"GATEKEEPER_CHANNELS": " , "}, "empty"),
        ({"GATEKEEPER_CHANNELS": "website,website"}, "repeats"),
        ({"GATEKEEPER_COVER_CHANNELS": "billboards"}, "not in the channel list"),
        ({"GATEKEEPER_CHANNELS": "Web Site"}, "invalid channel name"),
        ({"GATEKEEPER_MAX_PIXELS": "0"}, "max_pixels must be positive"),
        ({"GATEKEEPER_MAX_FACES": "0"}, "max_faces must be positive"),
        ({"GATEKEEPER_FACE_TIME_LIMIT": "0"}, "face_time_limit must be positive"),
        ({"GATEKEEPER_JPEG_QUALITY": "101"}, "JPEG quality"),
        ({"GATEKEEPER_ENV": "staging"}, "GATEKEEPER_ENV"),
        (
            {"GATEKEEPER_ENV": "production", "GATEKEEPER_SECRET_KEY": "dev-only-not-secret"},
            "development secret",
        ),
        ({"GATEKEEPER_TEMPLATE_KEY": "c2hvcnQ="}, "must be 32 bytes in base64"),
        ({"GATEKEEPER_TEMPLATE_KEY": "not base64 at all!"}, "must be 32 bytes in base64"),
        ({"GATEKEEPER_PROBE_STEP": "30"}, "probe step must be one of"),
        ({"GATEKEEPER_MIN_DETECT_PX": "48"}, "min_detect_px must be 8..min_face_px"),
        ({"GATEKEEPER_OUTPUT_SIZES": "website"}, "expected channel=PX"),
        ({"GATEKEEPER_OUTPUT_SIZES": "billboards=4000"}, "not in the channel list"),
        ({"GATEKEEPER_OUTPUT_SIZES": "website=100"}, "at least 256 px"),
    ],
)
def test_bad_values_stop_start_up_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"GATEKEEPER_HOME": str(tmp_path), **env})


def test_each_channel_has_its_largest_copy_and_sub_channels_follow_their_parent(tmp_path: Path) -> None:
    defaults = Settings.from_env({"GATEKEEPER_HOME": str(tmp_path)})
    changed = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_OUTPUT_SIZES": "website=1600, print=3000, social_media=0",
        }
    )

    assert [defaults.media.long_edge(c) for c in ("website", "social_media:instagram", "print", "press")] == [
        2048,
        2048,
        None,
        None,
    ]
    # Given channels change; the others keep their defaults (internal stays 2048).
    assert [changed.media.long_edge(c) for c in ("website", "social_media", "print", "internal")] == [
        1600,
        None,
        3000,
        2048,
    ]
    assert (defaults.faces.min_detect_px, defaults.faces.probe_step) == (32, 45)


def test_production_runs_with_a_real_secret(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"GATEKEEPER_HOME": str(tmp_path), "GATEKEEPER_ENV": "production", "GATEKEEPER_SECRET_KEY": "s3cr3t"}
    )
    assert settings.web.secret_key != DEV_SECRET


def test_queue_and_schedule_settings_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_QUEUE_URL": "redis://127.0.0.1:6379/2",
            "GATEKEEPER_QUEUE_NAME": "school",
            "GATEKEEPER_JOB_RETRIES": "3",
            "GATEKEEPER_JOB_RETRY_DELAY": "0.5",
            "GATEKEEPER_RECHECK_SCHEDULE": "0 * * * *",
            "GATEKEEPER_TIMEZONE": "Europe/Dublin",
            "GATEKEEPER_JOB_LEASE": "30",
            "GATEKEEPER_JOB_SWEEP_INTERVAL": "2.5",
            "GATEKEEPER_JOB_MAX_ATTEMPTS": "7",
        }
    )
    queue = settings.queue
    assert (queue.job_lease, queue.job_sweep_interval, queue.job_max_attempts) == (30.0, 2.5, 7)
    defaults = Settings(home=tmp_path).queue
    assert (defaults.job_lease, defaults.job_sweep_interval, defaults.job_max_attempts) == (20.0, 5.0, 5)
    assert (queue.url, queue.name, queue.job_retries, queue.job_retry_delay) == (
        "redis://127.0.0.1:6379/2",
        "school",
        3,
        0.5,
    )
    assert (settings.queue.recheck_schedule, settings.retention.timezone) == ("0 * * * *", "Europe/Dublin")
    assert Settings(home=tmp_path).retention.timezone == "Europe/London"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GATEKEEPER_QUEUE_URL", "amqp://broker", "redis://"),
        ("GATEKEEPER_RECHECK_SCHEDULE", "hourly", "crontab"),
        ("GATEKEEPER_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("GATEKEEPER_JOB_RETRIES", "-1", "must not be negative"),
        ("GATEKEEPER_JOB_LEASE", "0", "must be positive"),
        ("GATEKEEPER_JOB_SWEEP_INTERVAL", "-1", "must be positive"),
        ("GATEKEEPER_JOB_MAX_ATTEMPTS", "0", "at least 1"),
    ],
)
def test_bad_queue_settings_stop_start_up(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"GATEKEEPER_HOME": str(tmp_path), name: value})


def test_mail_settings_are_read_and_default_to_nothing_sent(tmp_path: Path) -> None:
    laptop = Settings.from_env({"GATEKEEPER_HOME": str(tmp_path)}).mail
    assert not laptop.configured
    assert (laptop.timeout, laptop.retry_schedule, laptop.digest_schedule) == (
        30.0,
        "*/5 * * * *",
        "0 7 * * *",
    )
    settings = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_SMTP_URL": "smtp://mail.school.example",
            "GATEKEEPER_SMTP_USER": "gatekeeper",
            "GATEKEEPER_SMTP_PASSWORD": "p@ss word",
            "GATEKEEPER_MAIL_FROM": "photos@school.example",
            "GATEKEEPER_ORG_NAME": "Hilltop School",
            "GATEKEEPER_ORG_ADDRESS": "1 Hill Road, Leeds LS1 1AA",
            "GATEKEEPER_PRIVACY_CONTACT": "dpo@school.example",
            "GATEKEEPER_SMTP_TIMEOUT": "10",
            "GATEKEEPER_MAIL_RETRY_SCHEDULE": "*/2 * * * *",
            "GATEKEEPER_STAFF_DIGEST_SCHEDULE": "30 6 * * 1-5",
        }
    ).mail
    assert settings.configured and settings.starttls_required and not settings.implicit_tls
    assert (settings.host, settings.port, settings.smtp_user, settings.smtp_password) == (
        "mail.school.example",
        587,
        "gatekeeper",
        "p@ss word",
    )
    assert (settings.from_address, settings.sender_domain, settings.org_name) == (
        "photos@school.example",
        "school.example",
        "Hilltop School",
    )
    assert (settings.org_address, settings.privacy_contact) == (
        "1 Hill Road, Leeds LS1 1AA",
        "dpo@school.example",
    )
    assert (settings.timeout, settings.retry_schedule) == (10.0, "*/2 * * * *")
    assert settings.digest_schedule == "30 6 * * 1-5"
    smtps = Settings(home=tmp_path).with_(
        mail={"smtp_url": "smtps://mail.example:2465", "from_address": "a@b"}
    )
    assert (smtps.mail.implicit_tls, smtps.mail.port, smtps.mail.starttls_required) == (True, 2465, False)
    local = Settings(home=tmp_path).with_(mail={"smtp_url": "smtp://127.0.0.1:2525", "from_address": "a@b"})
    assert (local.mail.port, local.mail.starttls_required) == (2525, False)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEKEEPER_SMTP_URL": "mail.example:25", "GATEKEEPER_MAIL_FROM": "a@b"}, "smtp://host"),
        ({"GATEKEEPER_SMTP_URL": "http://mail.example", "GATEKEEPER_MAIL_FROM": "a@b"}, "smtp://host"),
        (
            {"GATEKEEPER_SMTP_URL": "smtp://u:p@mail.example", "GATEKEEPER_MAIL_FROM": "a@b"},
            "GATEKEEPER_SMTP_USER",
        ),
        ({"GATEKEEPER_SMTP_URL": "smtp://mail.example:port", "GATEKEEPER_MAIL_FROM": "a@b"}, "bad port"),
        ({"GATEKEEPER_SMTP_URL": "smtp://mail.example/x", "GATEKEEPER_MAIL_FROM": "a@b"}, "only a scheme"),
        ({"GATEKEEPER_SMTP_URL": "smtp://mail.example"}, "GATEKEEPER_MAIL_FROM must be set"),
        ({"GATEKEEPER_SMTP_USER": "gatekeeper"}, "set together"),
        ({"GATEKEEPER_MAIL_FROM": "Hilltop <photos@school.example>"}, "one plain address"),
        ({"GATEKEEPER_SMTP_TIMEOUT": "0"}, "GATEKEEPER_SMTP_TIMEOUT must be positive"),
        ({"GATEKEEPER_MAIL_RETRY_SCHEDULE": "often"}, "crontab"),
        (
            {"GATEKEEPER_STAFF_DIGEST_SCHEDULE": "7am"},
            "GATEKEEPER_STAFF_DIGEST_SCHEDULE must be a 5-field crontab",
        ),
    ],
)
def test_bad_mail_settings_stop_start_up(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"GATEKEEPER_HOME": str(tmp_path), **env})


def test_every_setting_is_read_from_one_variable_of_its_own() -> None:
    settings = [f"{part}.{f.name}" for part, cls in PARTS.items() for f in fields(cls)]
    settings += [f.name for f in fields(Settings) if f.name not in PARTS]
    assert sorted(setting for setting, _, _ in ENV) == sorted(settings)
    names = [name for _, name, _ in ENV]
    assert len(set(names)) == len(names)
    assert all(name.startswith("GATEKEEPER_") for name in names)


def test_each_part_checks_its_own_values_and_settings_the_rules_between_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="age threshold must be one of"):
        PolicySettings(age_threshold=17)
    with pytest.raises(ConfigError, match="at least 256 px"):
        MediaSettings(output_sizes=(("website", 100),))
    # A size for a channel the organisation does not have: only the whole settings can tell.
    sizes = MediaSettings(output_sizes=(("website", 1600),))
    with pytest.raises(ConfigError, match="not in the channel list"):
        Settings(home=tmp_path, policy=PolicySettings(channels=("print",)), media=sizes)


def test_with_changes_some_fields_of_a_part_and_checks_them_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    changed = settings.with_(policy={"unknown_faces": "review"}, env="production")

    assert (changed.policy.unknown_faces, changed.env) == ("review", "production")
    assert changed.policy.channels == settings.policy.channels
    assert (changed.web, changed.storage, changed.database_url) == (
        settings.web,
        settings.storage,
        settings.database_url,
    )
    with pytest.raises(ConfigError, match="age threshold must be one of"):
        settings.with_(policy={"age_threshold": 17})
    with pytest.raises(ConfigError, match="development secret"):
        changed.with_(web={"secret_key": DEV_SECRET})
