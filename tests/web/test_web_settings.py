"""The web app's settings are read from the environment with strict parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper import create_app
from gatekeeper.cli import main
from gatekeeper.config import Settings, WebSettings
from gatekeeper.errors import ConfigError


def test_the_web_settings_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "GATEKEEPER_HOME": str(tmp_path),
            "GATEKEEPER_PUBLIC_URL": "https://photos.school.example",
            "GATEKEEPER_SESSION_MINUTES": "15",
            "GATEKEEPER_RATE_LIMIT_URL": "redis://127.0.0.1:6379/2",
            "GATEKEEPER_WITHDRAW_RATE_LIMIT": "3 per minute",
            "GATEKEEPER_PROXY_HOPS": "1",
            "GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT": "100 per minute",
        }
    )
    assert (settings.web.public_url, settings.web.session_minutes, settings.web.proxy_hops) == (
        "https://photos.school.example",
        15,
        1,
    )
    assert (settings.web.rate_limit_url, settings.web.withdraw_rate_limit) == (
        "redis://127.0.0.1:6379/2",
        "3 per minute",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEKEEPER_PUBLIC_URL": "photos.school.example"}, "must be an http"),
        ({"GATEKEEPER_SESSION_MINUTES": "0"}, "session_minutes must be positive"),
        ({"GATEKEEPER_SESSION_MINUTES": "half an hour"}, "whole number"),
        ({"GATEKEEPER_RATE_LIMIT_URL": "postgresql://db"}, "memory:// or a redis://"),
        ({"GATEKEEPER_PROXY_HOPS": "9"}, "0..5"),
    ],
)
def test_bad_web_settings_stop_start_up_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"GATEKEEPER_HOME": str(tmp_path), **env})


def test_a_rate_limit_that_does_not_parse_stops_the_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEKEEPER_WITHDRAW_RATE_LIMIT"):
        create_app(Settings(home=tmp_path, web=WebSettings(withdraw_rate_limit="lots")))
    with pytest.raises(ConfigError, match="GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT"):
        create_app(Settings(home=tmp_path, web=WebSettings(public_page_rate_limit="many per day")))


def test_the_web_commands_exist() -> None:
    assert {"serve", "users"} <= set(main.commands)
    assert {"add", "token", "list"} <= set(main.commands["users"].commands)  # type: ignore[attr-defined]
    assert "link" in main.commands["people"].commands  # type: ignore[attr-defined]
